#!/bin/sh
# run.sh — `make bench`: what the library costs a program with no settings.
#  1. Instructions a wrapped read()/write() adds (callgrind, Ir), bare against
#     preloaded; per call = extra Ir between two loop lengths / extra calls, so
#     that start-up cancels out. Target: at most ~20.
#  2. redis-benchmark (-t set,get -n 200000 -q, 127.0.0.1) against redis-server
#     bare, preloaded with no settings, and with every gate on but not binding;
#     runs alternate, medians compared. Targets: >= 0.98 and >= 0.95 of bare.
#     The server's CPU time per 1000 requests is shown too, a figure a busy
#     machine disturbs less than throughput.
#  3. wrk (-t2 -c50 -d2s) against nginx serving a 1 KiB file, same three modes.
# Prints a Markdown table and writes it to $BUILD/bench.md. About 2 minutes on
# an idle machine. BENCH_ROUNDS (default 5) and BENCH_NGINX_ROUNDS (default 3)
# set the number of alternating rounds.
set -eu

BUILD=${BUILD:-build}
ROUNDS=${BENCH_ROUNDS:-5}
NGINX_ROUNDS=${BENCH_NGINX_ROUNDS:-3}
LIB=$(cd "$BUILD" && pwd -P)/libsluice.so
IO=$BUILD/helpers/fwd_bench_io
OUT=$BUILD/bench.md
GATES="SLUICE_CONN_MAX=1000 SLUICE_WRITE_HIGH=16M SLUICE_FS_MAX=1000"

for tool in valgrind redis-server redis-benchmark redis-cli nginx wrk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is missing (make deps)" >&2; exit 1; }
done
[ -f "$LIB" ] && [ -x "$IO" ] || { echo "bench: build first (make all and helpers)" >&2; exit 1; }

# --- 1. instructions per wrapped call -----------------------------------------
instructions() {  # instructions PRELOAD ARGS...
    preload=$1
    shift
    env LD_PRELOAD="$preload" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

N1=20000
N2=220000
per_call() {  # per_call OP -> "bare preloaded extra startup_bare startup_preloaded"
    b1=$(instructions "" "$IO" "$1" $N1)
    b2=$(instructions "" "$IO" "$1" $N2)
    p1=$(instructions "$LIB" "$IO" "$1" $N1)
    p2=$(instructions "$LIB" "$IO" "$1" $N2)
    awk -v b1="$b1" -v b2="$b2" -v p1="$p1" -v p2="$p2" -v n=$((N2 - N1)) -v n1=$N1 'BEGIN {
        bare = (b2 - b1) / n; pre = (p2 - p1) / n;
        printf "%.1f %.1f %.1f %.0f %.0f\n", bare, pre, pre - bare, b1 - bare * n1, p1 - pre * n1 }'
}

echo "bench: counting instructions with callgrind..." >&2
set -- $(per_call read)
read_bare=$1 read_pre=$2 read_extra=$3 start_bare=$4 start_pre=$5
set -- $(per_call write)
write_bare=$1 write_pre=$2 write_extra=$3

# --- 2. redis-benchmark ------------------------------------------------------------
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# BENCH_PIN=1: server on CPU 0, client on CPU 1. As root, both run at a
# higher priority than the rest of the machine, which steadies the figures.
PIN_SERVER="" PIN_CLIENT=""
if [ "${BENCH_PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    PIN_SERVER="taskset -c 0" PIN_CLIENT="taskset -c 1"
fi
if [ "$(id -u)" = 0 ]; then
    PIN_SERVER="nice -n -10 $PIN_SERVER" PIN_CLIENT="nice -n -10 $PIN_CLIENT"
fi

# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() {
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# bench_redis MODE -> "SET_RPS GET_RPS SERVER_CPU_MS_PER_1000"; MODE is bare,
# preloaded or gated.
bench_redis() {
    port=$(free_port)
    case "$1" in
        bare) env -u LD_PRELOAD $PIN_SERVER redis-server --port "$port" --bind 127.0.0.1 --save '' \
                  --appendonly no >/dev/null 2>&1 & ;;
        preloaded) env LD_PRELOAD="$LIB" $PIN_SERVER redis-server --port "$port" --bind 127.0.0.1 --save '' \
                  --appendonly no >/dev/null 2>&1 & ;;
        gated) env LD_PRELOAD="$LIB" $GATES $PIN_SERVER redis-server --port "$port" --bind 127.0.0.1 \
                  --save '' --appendonly no >/dev/null 2>&1 & ;;
    esac
    SERVER_PID=$!
    tries=0
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { echo "bench: redis-server did not start" >&2; exit 1; }
        sleep 0.05
    done
    ticks_before=$(cpu_ticks "$SERVER_PID")
    rates=$($PIN_CLIENT redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n 200000 -q 2>/dev/null |
        tr '\r' '\n' |
        awk '/^SET: [0-9.]+ requests per second/ { set = $2 }
             /^GET: [0-9.]+ requests per second/ { get = $2 }
             END { printf "%s %s\n", set, get }')
    ticks_after=$(cpu_ticks "$SERVER_PID")
    stop_server
    echo "$rates $(awk -v t=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.3f", t * 1000 / hz / 400 }')"
}

median() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print 0; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bare_set="" bare_get="" pre_set="" pre_get="" gated_set="" gated_get=""
bare_cpu="" pre_cpu="" gated_cpu=""
round=1
while [ $round -le "$ROUNDS" ]; do
    echo "bench: redis round $round/$ROUNDS..." >&2
    # Alternate the order so that drift (heat, other load) falls on every mode.
    if [ $((round % 2)) -eq 1 ]; then order="bare preloaded gated"; else order="gated preloaded bare"; fi
    for mode in $order; do
        set -- $(bench_redis "$mode")
        case "$mode" in
            bare) bare_set="$bare_set $1" bare_get="$bare_get $2" bare_cpu="$bare_cpu $3" ;;
            preloaded) pre_set="$pre_set $1" pre_get="$pre_get $2" pre_cpu="$pre_cpu $3" ;;
            gated) gated_set="$gated_set $1" gated_get="$gated_get $2" gated_cpu="$gated_cpu $3" ;;
        esac
    done
    round=$((round + 1))
done

m_bare_set=$(echo "$bare_set" | median)
m_bare_get=$(echo "$bare_get" | median)
m_pre_set=$(echo "$pre_set" | median)
m_pre_get=$(echo "$pre_get" | median)
m_gated_set=$(echo "$gated_set" | median)
m_gated_get=$(echo "$gated_get" | median)
m_bare_cpu=$(echo "$bare_cpu" | median)
m_pre_cpu=$(echo "$pre_cpu" | median)
m_gated_cpu=$(echo "$gated_cpu" | median)
# --- 3. wrk on nginx --------------------------------------------------------------
WEB=$(mktemp -d /tmp/sluice-bench-nginx.XXXXXX)
trap 'stop_server; rm -rf "$WEB"' EXIT
trap 'stop_server; rm -rf "$WEB"; exit 130' INT TERM
chmod 755 "$WEB"
mkdir "$WEB/www"
head -c 1024 /dev/zero | tr '\0' x > "$WEB/www/index.html"
chmod -R a+rX "$WEB/www"

# bench_nginx MODE -> "REQUESTS_PER_S NON_2XX"
bench_nginx() {
    port=$(free_port)
    cat > "$WEB/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WEB/nginx.pid;
error_log $WEB/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen 127.0.0.1:$port; location / { root $WEB/www; } }
}
EOF
    case "$1" in
        bare) env -u LD_PRELOAD $PIN_SERVER nginx -e "$WEB/error.log" -p "$WEB" -c "$WEB/nginx.conf" & ;;
        preloaded) env LD_PRELOAD="$LIB" $PIN_SERVER nginx -e "$WEB/error.log" -p "$WEB" \
                       -c "$WEB/nginx.conf" & ;;
        gated) env LD_PRELOAD="$LIB" $GATES $PIN_SERVER nginx -e "$WEB/error.log" -p "$WEB" \
                   -c "$WEB/nginx.conf" & ;;
    esac
    SERVER_PID=$!
    tries=0
    until /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" \
            2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { echo "bench: nginx did not start" >&2; exit 1; }
        sleep 0.05
    done
    $PIN_CLIENT wrk -t2 -c50 -d2s "http://127.0.0.1:$port/index.html" 2>/dev/null |
        awk '/^Requests\/sec:/ { rps = $2 } /Non-2xx/ { bad = $NF }
             END { printf "%s %d\n", rps, bad }'
    stop_server
}

web_bare="" web_pre="" web_gated="" web_errors=0
round=1
while [ $round -le "$NGINX_ROUNDS" ]; do
    echo "bench: nginx round $round/$NGINX_ROUNDS..." >&2
    if [ $((round % 2)) -eq 1 ]; then order="bare preloaded gated"; else order="gated preloaded bare"; fi
    for mode in $order; do
        set -- $(bench_nginx "$mode")
        web_errors=$((web_errors + $2))
        case "$mode" in
            bare) web_bare="$web_bare $1" ;;
            preloaded) web_pre="$web_pre $1" ;;
            gated) web_gated="$web_gated $1" ;;
        esac
    done
    round=$((round + 1))
done
m_web_bare=$(echo "$web_bare" | median)
m_web_pre=$(echo "$web_pre" | median)
m_web_gated=$(echo "$web_gated" | median)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN {
    if (v == "n/a") print "?"; else if ((dir == "le" && v <= t) || (dir == "ge" && v >= t)) print "ok"; else print "MISSED" }'; }

{
    echo "## sluice benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r))"
    echo
    echo "| measure | bare | preloaded, no settings | added | target | |"
    echo "|---|---:|---:|---:|---:|---|"
    echo "| read(): instructions per call (callgrind) | $read_bare | $read_pre | $read_extra | <= 20 | $(verdict "$read_extra" 20 le) |"
    echo "| write(): instructions per call (callgrind) | $write_bare | $write_pre | $write_extra | <= 20 | $(verdict "$write_extra" 20 le) |"
    echo "| start-up instructions (whole process, N=0) | $start_bare | $start_pre | $(awk -v a="$start_pre" -v b="$start_bare" 'BEGIN { printf "%.0f", a - b }') | | |"
    echo
    echo "redis-benchmark -t set,get -n 200000 -q against redis-server on 127.0.0.1, median of $ROUNDS alternating rounds (requests/s)${PIN_SERVER:+, run as: $PIN_SERVER (server) / $PIN_CLIENT (client)}:"
    echo
    echo "| test | bare | preloaded, no settings | ratio (target >= 0.98) | gates on, not binding | ratio (target >= 0.95) |"
    echo "|---|---:|---:|---:|---:|---:|"
    r=$(ratio "$m_pre_set" "$m_bare_set"); g=$(ratio "$m_gated_set" "$m_bare_set")
    echo "| SET | $m_bare_set | $m_pre_set | $r $(verdict "$r" 0.98 ge) | $m_gated_set | $g $(verdict "$g" 0.95 ge) |"
    r=$(ratio "$m_pre_get" "$m_bare_get"); g=$(ratio "$m_gated_get" "$m_bare_get")
    echo "| GET | $m_bare_get | $m_pre_get | $r $(verdict "$r" 0.98 ge) | $m_gated_get | $g $(verdict "$g" 0.95 ge) |"
    r=$(ratio "$m_pre_cpu" "$m_bare_cpu"); g=$(ratio "$m_gated_cpu" "$m_bare_cpu")
    echo "| server CPU ms per 1000 requests (lower is better) | $m_bare_cpu | $m_pre_cpu | $r | $m_gated_cpu | $g |"
    echo
    echo "wrk -t2 -c50 -d2s against nginx (1 worker, 1 KiB file), median of $NGINX_ROUNDS alternating rounds (requests/s); non-2xx answers in all runs: $web_errors"
    echo
    echo "| test | bare | preloaded, no settings | ratio (target >= 0.98) | gates on, not binding | ratio (target >= 0.95) |"
    echo "|---|---:|---:|---:|---:|---:|"
    r=$(ratio "$m_web_pre" "$m_web_bare"); g=$(ratio "$m_web_gated" "$m_web_bare")
    echo "| GET /index.html | $m_web_bare | $m_web_pre | $r $(verdict "$r" 0.98 ge) | $m_web_gated | $g $(verdict "$g" 0.95 ge) |"
    echo
    echo "Gates on: $GATES. Raw runs (SET, bare/preloaded/gated):$bare_set /$pre_set /$gated_set; (GET):$bare_get /$pre_get /$gated_get; (server CPU ms/1000):$bare_cpu /$pre_cpu /$gated_cpu; nginx:$web_bare /$web_pre /$web_gated"
} > "$OUT"
cat "$OUT"
