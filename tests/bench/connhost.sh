#!/bin/sh
# connhost.sh — what the host-scope connection budget costs.
#  1. Instructions (callgrind) and system calls (strace -f -c) per accept+close
#     of one connection, SLUICE_CONN_MAX=1000 in process scope against
#     SLUICE_CONN_SCOPE=host (uncontended; per cycle = the difference between
#     two loop lengths / the extra cycles, so start-up cancels out).
#  2. CPU of a paused 4-worker server (epoll, one shared listener, backlog
#     2048) under a host budget of 4: 4 connections held, 1,000 more waiting;
#     every process's CPU from /proc/PID/stat over BENCH_PAUSED_SECONDS
#     (default 5), as % of one core.
# Prints shell assignments (connhost_*=...) for run.sh.
set -eu

BUILD=${BUILD:-build}
SPAN=${BENCH_PAUSED_SECONDS:-5}
WAITING=1000
HERE=$(dirname "$0")
. "$HERE/lib.sh"
need valgrind strace
COST=$BUILD/helpers/conn_cost
WORKERS=$BUILD/helpers/conn_workers
[ -x "$COST" ] && [ -x "$WORKERS" ] || { echo "bench: build first (make all and helpers)" >&2; exit 1; }

DIR=$(mktemp -d)
KEY=bench-$$
SERVER_PID="" CLIENT_PID=""
cleanup() {
    [ -z "$CLIENT_PID" ] || { kill "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; }
    [ -z "$SERVER_PID" ] || { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    rm -rf "$DIR"
    rm -f "/dev/shm/sluice-$(id -u)/conn-$KEY" "/dev/shm/sluice-$(id -u)/conn-$KEY-paused"
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP PIPE   # the EXIT trap then cleans up

PROCESS="SLUICE_CONN_MAX=1000"
HOST="SLUICE_CONN_MAX=1000 SLUICE_CONN_SCOPE=host SLUICE_CONN_KEY=$KEY"
N1=1000
N2=5000

# --- 1. per accept+close -------------------------------------------------------------
instructions() {  # instructions N SETTINGS -> Ir of conn_cost N
    # shellcheck disable=SC2086  # SETTINGS are words
    env LD_PRELOAD="$LIB" $2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$COST" "$1" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
syscalls() {  # syscalls N SETTINGS -> system calls of conn_cost N
    # shellcheck disable=SC2086
    env LD_PRELOAD="$LIB" $2 strace -f -c -o "$DIR/sc" "$COST" "$1" >/dev/null 2>&1
    awk '$NF == "total" { print $4 }' "$DIR/sc"
}
echo "bench: connhost: counting instructions and system calls per accept+close..." >&2
for scope in process host; do
    case $scope in
        process) settings=$PROCESS ;;
        *) settings=$HOST ;;
    esac
    i1=$(instructions $N1 "$settings") i2=$(instructions $N2 "$settings")
    s1=$(syscalls $N1 "$settings") s2=$(syscalls $N2 "$settings")
    awk -v i1="$i1" -v i2="$i2" -v s1="$s1" -v s2="$s2" -v n=$((N2 - N1)) -v scope="$scope" 'BEGIN {
        printf "connhost_ir_%s=%.0f\nconnhost_sys_%s=%.2f\n", scope, (i2 - i1) / n, scope, (s2 - s1) / n }'
done

# --- 2. paused CPU, 4 workers, 1,000 waiting ------------------------------------------
echo "bench: connhost: 4 workers paused, 4 held and $WAITING waiting..." >&2
PORT=$(free_port)
env LD_PRELOAD="$LIB" SLUICE_CONN_MAX=4 SLUICE_CONN_SCOPE=host SLUICE_CONN_KEY="$KEY-paused" \
    $PIN_SERVER "$WORKERS" "$PORT" level 4 2048 > "$DIR/server.out" &
SERVER_PID=$!
wait_port "$PORT" || exit 1
$PIN_CLIENT /usr/bin/python3 "$HERE/hold_clients.py" "$PORT" 4 $WAITING $((SPAN + 20)) > "$DIR/client.out" </dev/null &
CLIENT_PID=$!
tries=0
until grep -q '^ready' "$DIR/client.out" 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -lt 300 ] || { echo "bench: connhost: clients did not connect" >&2; exit 1; }
    sleep 0.05
done
sleep 0.5
queued=$(ss -ltnH "sport = :$PORT" | awk '{ print $2; exit }')
# shellcheck disable=SC2046  # the workers' pids are words
set -- "$SERVER_PID" $(children_of "$SERVER_PID")
t0=$(date +%s.%N)
c0=$(ticks_of "$@")
sleep "$SPAN"
c1=$(ticks_of "$@")
t1=$(date +%s.%N)
awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "connhost_paused_cpu=%.2f\n", c / hz / (t1 - t0) * 100 }'
echo "connhost_paused_queued=${queued:-0}"
echo "connhost_paused_waiting=$WAITING"
