#!/bin/sh
# nginx.sh — wrk on nginx: requests/s of one nginx worker serving a small
# static file, bare, preloaded with no settings, and with every gate on but not
# binding; rounds alternate the order, medians are compared.
# Prints shell assignments (nginx_*=...) on stdout for run.sh; progress on stderr.
# BENCH_ROUNDS (default 5) rounds of BENCH_WRK_SECONDS (default 4) per mode.
set -eu

BUILD=${BUILD:-build}
ROUNDS=${BENCH_ROUNDS:-5}
SECONDS_EACH=${BENCH_WRK_SECONDS:-4}
. "$(dirname "$0")/lib.sh"
need nginx wrk
GATES="SLUICE_CONN_MAX=100000 SLUICE_WRITE_HIGH=16M SLUICE_FS_MAX=100000"

DIR=$(mktemp -d)
trap 'nginx_stop; rm -rf "$DIR"' EXIT
trap "exit 130" INT TERM HUP PIPE   # the EXIT trap then cleans up

bench_nginx() {  # bench_nginx bare|preloaded|gated -> "REQUESTS_PER_S SERVER_CPU_MS_PER_1000"
    PORT=$(free_port)
    nginx_conf "$DIR" "$PORT"
    head -c 612 /dev/zero | tr '\0' 'x' > "$DIR/html/index.html"   # the size of nginx's welcome page
    case "$1" in
        bare) nginx_start "$DIR" ;;
        preloaded) nginx_start "$DIR" LD_PRELOAD="$LIB" ;;
        gated) nginx_start "$DIR" LD_PRELOAD="$LIB" $GATES ;;
    esac
    nginx_ready "$DIR" "$PORT" || exit 1
    ticks_before=$(nginx_ticks)
    set -- $(wrk_run "http://127.0.0.1:$PORT/index.html" "${SECONDS_EACH}s")
    ticks_after=$(nginx_ticks)
    kill -0 "$NGINX_PID" 2>/dev/null || { echo "bench: nginx died:" >&2; cat "$DIR/error.log" >&2; exit 1; }
    nginx_stop
    [ "$2" -eq 0 ] && [ "$3" -eq 0 ] || echo "bench: nginx: $2 non-2xx answers, $3 socket errors" >&2
    echo "$1 $(awk -v t=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" -v n="$5" \
        'BEGIN { if (n > 0) printf "%.4f", t * 1000 / hz / (n / 1000); else print 0 }')"
}

bare="" pre="" gated="" bare_cpu="" pre_cpu="" gated_cpu=""
round=1
while [ $round -le "$ROUNDS" ]; do
    echo "bench: nginx round $round/$ROUNDS..." >&2
    if [ $((round % 2)) -eq 1 ]; then order="bare preloaded gated"; else order="gated preloaded bare"; fi
    for mode in $order; do
        set -- $(bench_nginx "$mode")
        case "$mode" in
            bare) bare="$bare $1" bare_cpu="$bare_cpu $2" ;;
            preloaded) pre="$pre $1" pre_cpu="$pre_cpu $2" ;;
            gated) gated="$gated $1" gated_cpu="$gated_cpu $2" ;;
        esac
    done
    round=$((round + 1))
done

echo "nginx_bare=$(echo "$bare" | median)"
echo "nginx_pre=$(echo "$pre" | median)"
echo "nginx_gated=$(echo "$gated" | median)"
echo "nginx_pre_r=$(pair_ratio "$bare" "$pre")"
echo "nginx_gated_r=$(pair_ratio "$bare" "$gated")"
echo "nginx_pre_cpu_r=$(pair_ratio "$pre_cpu" "$bare_cpu")"     # bare CPU per request over sluice's
echo "nginx_gated_cpu_r=$(pair_ratio "$gated_cpu" "$bare_cpu")"
echo "nginx_bare_cpu=$(echo "$bare_cpu" | median)"
echo "nginx_pre_cpu=$(echo "$pre_cpu" | median)"
echo "nginx_gated_cpu=$(echo "$gated_cpu" | median)"
echo "nginx_raw='bare:$bare / preloaded:$pre / gated:$gated; server CPU ms/1000 requests, bare:$bare_cpu / preloaded:$pre_cpu / gated:$gated_cpu'"
echo "nginx_gates='$GATES'"
echo "nginx_rounds=$ROUNDS"
echo "nginx_seconds=$SECONDS_EACH"
