#!/bin/sh
# paused.sh — CPU of a paused server: under SLUICE_CONN_MAX=4, 4 connections
# held and 1,000 more waiting in the listen backlog (2048), the server's CPU
# (all its processes, from /proc/PID/stat) over BENCH_PAUSED_SECONDS (default
# 5) as % of one core. Servers: nginx (one worker, epoll with EPOLLEXCLUSIVE),
# nginx with 4 workers sharing one budget (SLUICE_CONN_SCOPE=host) and a Python
# asyncio server. The accept queue is read with ss to show that
# the 1,000 really wait. Prints shell assignments (paused_*=...) for run.sh.
set -eu

BUILD=${BUILD:-build}
SPAN=${BENCH_PAUSED_SECONDS:-5}
WAITING=1000
HERE=$(dirname "$0")
. "$HERE/lib.sh"
need nginx ss

DIR=$(mktemp -d)
SERVER_PID="" CLIENT_PID=""
cleanup() {
    [ -z "$CLIENT_PID" ] || { kill "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; }
    [ -z "$SERVER_PID" ] || { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    nginx_stop
    rm -rf "$DIR"
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE   # the EXIT trap then cleans up
echo x > "$DIR/index.html"

now() { date +%s.%N; }

# measure PORT PID... -> "CPU_PERCENT QUEUED" (CPU of the PIDs together)
measure() {
    port=$1
    shift
    wait_port "$port" || exit 1
    : > "$DIR/client.out"
    $PIN_CLIENT /usr/bin/python3 "$HERE/hold_clients.py" "$port" 4 $WAITING $((SPAN + 20)) \
        > "$DIR/client.out" </dev/null &
    CLIENT_PID=$!
    tries=0
    until [ -s "$DIR/client.out" ]; do
        tries=$((tries + 1))
        [ $tries -lt 300 ] || { echo "bench: paused: clients did not connect" >&2; exit 1; }
        sleep 0.05
    done
    grep -q '^ready' "$DIR/client.out" || echo "bench: paused: $(cat "$DIR/client.out")" >&2
    sleep 0.5   # let the last accepts (or none) settle
    queued=$(ss -ltnH "sport = :$port" | awk '{ print $2; exit }')
    t0=$(now)
    c0=$(ticks_of "$@")
    sleep "$SPAN"
    c1=$(ticks_of "$@")
    t1=$(now)
    kill "$CLIENT_PID" 2>/dev/null || true
    wait "$CLIENT_PID" 2>/dev/null || true
    CLIENT_PID=""
    awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" -v q="${queued:-0}" \
        'BEGIN { printf "%.2f %d\n", c / hz / (t1 - t0) * 100, q }'
}

echo "bench: paused nginx, 4 held and $WAITING waiting..." >&2
PORT=$(free_port)
nginx_conf "$DIR/nginx" "$PORT" 2048
cp "$DIR/index.html" "$DIR/nginx/html/"
nginx_start "$DIR/nginx" LD_PRELOAD="$LIB" SLUICE_CONN_MAX=4
nginx_ready "$DIR/nginx" "$PORT" || exit 1
set -- $(measure "$PORT" "$NGINX_PID" $NGINX_WORKERS)
nginx_stop
echo "paused_nginx_cpu=$1"
echo "paused_nginx_queued=$2"

echo "bench: paused nginx, 4 workers sharing one budget (host scope), 4 held and $WAITING waiting..." >&2
PORT=$(free_port)
KEY=bench-paused-$$
nginx_conf "$DIR/nginx4" "$PORT" 2048
sed -i 's/^worker_processes 1;/worker_processes 4;/' "$DIR/nginx4/nginx.conf"
cp "$DIR/index.html" "$DIR/nginx4/html/"
nginx_start "$DIR/nginx4" LD_PRELOAD="$LIB" SLUICE_CONN_MAX=4 SLUICE_CONN_SCOPE=host SLUICE_CONN_KEY=$KEY
nginx_ready "$DIR/nginx4" "$PORT" || exit 1
tries=0
until [ "$(children_of "$NGINX_PID" | wc -w)" -ge 4 ]; do   # every worker, not the first one
    tries=$((tries + 1))
    [ $tries -lt 100 ] || { echo "bench: nginx did not start its 4 workers" >&2; exit 1; }
    sleep 0.05
done
NGINX_WORKERS=$(children_of "$NGINX_PID")
set -- $(measure "$PORT" "$NGINX_PID" $NGINX_WORKERS)
nginx_stop
rm -f "/dev/shm/sluice-$(id -u)/conn-$KEY"   # the budget's file, which outlives the service
echo "paused_nginx_host_cpu=$1"
echo "paused_nginx_host_queued=$2"

echo "bench: paused asyncio server, 4 held and $WAITING waiting..." >&2
PORT=$(free_port)
env LD_PRELOAD="$LIB" SLUICE_CONN_MAX=4 $PIN_SERVER /usr/bin/python3 "$HERE/asyncio_server.py" "$PORT" &
SERVER_PID=$!
set -- $(measure "$PORT" "$SERVER_PID")
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
echo "paused_asyncio_cpu=$1"
echo "paused_asyncio_queued=$2"
echo "paused_waiting=$WAITING"
echo "paused_seconds=$SPAN"
