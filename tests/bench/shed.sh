#!/bin/sh
# shed.sh — shed rate against nginx's limit_conn. The same nginx (one worker)
# with 4 connections held busy (slow downloads of a big file, limit_rate 64k)
# while wrk (-t1 -c32) asks for a small file:
#   nginx:  bare, `limit_conn_zone $server_name zone=all:1m; limit_conn all 4;`
#           — nginx itself answers 503;
#   sluice: no limit_conn, under SLUICE_CONN_MAX=4 SLUICE_CONN_MODE=shed — the
#           holders take the 4 slots and sluice answers 503 (Retry-After).
# Answers per second = wrk's non-2xx answers over its run time; socket errors
# (connect, read, write, timeout) are counted apart, never as answers. Twice:
# with clients that send "Connection: close" (every refused request a new
# connection, as every shed is) and with keep-alive clients (nginx can answer
# 503 on a kept connection; sluice closes every connection it sheds).
# curl checks first that the answer is a 503 (with Retry-After from sluice).
# Rounds alternate; medians. Prints shell assignments (shed_*=...) for run.sh.
set -eu

BUILD=${BUILD:-build}
ROUNDS=${BENCH_SHED_ROUNDS:-3}
SPAN=${BENCH_SHED_SECONDS:-3}
HERE=$(dirname "$0")
. "$HERE/lib.sh"
need nginx wrk curl

DIR=$(mktemp -d)
HOLDERS=""
stop_holders() {
    for p in $HOLDERS; do kill "$p" 2>/dev/null || true; done
    for p in $HOLDERS; do wait "$p" 2>/dev/null || true; done
    HOLDERS=""
}
trap 'stop_holders; nginx_stop; rm -rf "$DIR"' EXIT
trap "exit 130" INT TERM HUP PIPE   # the EXIT trap then cleans up

# answers_run PORT [WRK_ARGS...] -> "ANSWERS_PER_S ERRORS SERVER_CPU_MS_PER_1000_ANSWERS"
answers_run() {
    port=$1
    shift
    t0=$(nginx_ticks)
    set -- $(wrk_run "http://127.0.0.1:$port/index.html" "${SPAN}s" "$@")
    t1=$(nginx_ticks)
    awk -v n="$2" -v e="$3" -v s="$4" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
        printf "%.0f %d %.4f\n", (s > 0 ? n / s : 0), e, (n > 0 ? t * 1000 / hz / (n / 1000) : 0) }'
}

# bench_shed nginx|sluice -> "CLOSE_RPS CLOSE_ERRORS CLOSE_CPU KEEPALIVE_RPS KEEPALIVE_ERRORS KEEPALIVE_CPU CHECKED"
bench_shed() {
    PORT=$(free_port)
    case "$1" in
        nginx)
            nginx_conf "$DIR" "$PORT" 511 'limit_conn_zone $server_name zone=all:1m; limit_conn all 4;'
            nginx_start "$DIR" ;;
        sluice)
            nginx_conf "$DIR" "$PORT"
            nginx_start "$DIR" LD_PRELOAD="$LIB" SLUICE_CONN_MAX=4 SLUICE_CONN_MODE=shed ;;
    esac
    echo hi > "$DIR/html/index.html"
    head -c 8M /dev/zero > "$DIR/html/big"   # 128 s at 64k/s: outlasts the run
    nginx_ready "$DIR" "$PORT" || exit 1
    for _ in 1 2 3 4; do
        curl -s -o /dev/null --max-time 60 "http://127.0.0.1:$PORT/big" &
        HOLDERS="$HOLDERS $!"
    done
    sleep 0.5   # let the holders take their places
    head=$(curl -s -D - -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/index.html" | tr -d '\r')
    checked=no
    if echo "$head" | grep -q '^HTTP/1.1 503'; then
        if [ "$1" = nginx ] || echo "$head" | grep -qi '^Retry-After: [0-9]'; then checked=yes; fi
    fi
    [ $checked = yes ] || echo "bench: shed ($1): the answer is not the expected 503: $(echo "$head" | head -1)" >&2
    close=$(answers_run "$PORT" -H "Connection: close")
    keep=$(answers_run "$PORT")
    stop_holders
    nginx_stop
    echo "$close $keep $checked"
}

nginx_close="" nginx_keep="" sluice_close="" sluice_keep="" errors="" checks=""
nginx_close_cpu="" nginx_keep_cpu="" sluice_close_cpu="" sluice_keep_cpu=""
round=1
while [ $round -le "$ROUNDS" ]; do
    echo "bench: shed round $round/$ROUNDS..." >&2
    if [ $((round % 2)) -eq 1 ]; then order="nginx sluice"; else order="sluice nginx"; fi
    for who in $order; do
        set -- $(bench_shed "$who")
        eval "${who}_close=\"\$${who}_close $1\" ${who}_keep=\"\$${who}_keep $4\""
        eval "${who}_close_cpu=\"\$${who}_close_cpu $3\" ${who}_keep_cpu=\"\$${who}_keep_cpu $6\""
        errors="$errors $who:$2/$5"
        checks="$checks $7"
    done
    round=$((round + 1))
done

echo "shed_nginx_close=$(echo "$nginx_close" | median)"
echo "shed_sluice_close=$(echo "$sluice_close" | median)"
echo "shed_nginx_keep=$(echo "$nginx_keep" | median)"
echo "shed_sluice_keep=$(echo "$sluice_keep" | median)"
echo "shed_nginx_close_cpu=$(echo "$nginx_close_cpu" | median)"
echo "shed_sluice_close_cpu=$(echo "$sluice_close_cpu" | median)"
echo "shed_nginx_keep_cpu=$(echo "$nginx_keep_cpu" | median)"
echo "shed_sluice_keep_cpu=$(echo "$sluice_keep_cpu" | median)"
echo "shed_close_r=$(pair_ratio "$nginx_close" "$sluice_close")"
echo "shed_keep_r=$(pair_ratio "$nginx_keep" "$sluice_keep")"
case "$checks" in *no*) echo "shed_checked=no" ;; *) echo "shed_checked=yes" ;; esac
echo "shed_raw='answers/s with Connection: close, nginx:$nginx_close / sluice:$sluice_close; keep-alive, nginx:$nginx_keep / sluice:$sluice_keep; socket errors (close/keep-alive):$errors'"
echo "shed_rounds=$ROUNDS"
echo "shed_seconds=$SPAN"
