#!/bin/sh
# queue.sh — the waiting queue: (1) the hand-off of a queued connection, from
# the close that frees the only slot to the waiting thread's accept returning
# (queue_handoff: blocking accept and epoll, BENCH_QUEUE_ROUNDS rounds, median
# and p99 in µs), with the queue on and bare pause; (2) the CPU of that process
# paused with 1,032 clients queued, over 5 s; (3) sustained overload: uvicorn
# (2 slots, 500 ms requests: 4 a second) with open-loop arrivals at 12 a second
# for BENCH_QUEUE_SECONDS (default 20), a listen backlog of 64, bare pause
# against SLUICE_QUEUE_TIMEOUT=1s, fifo and lifo. Prints shell assignments (queue_*=...).
set -eu

BUILD=${BUILD:-build}
ROUNDS=${BENCH_QUEUE_ROUNDS:-1000}
SPAN=${BENCH_QUEUE_SECONDS:-20}
HERE=$(dirname "$0")
. "$HERE/lib.sh"
HELPER=$BUILD/helpers/queue_handoff
SRC=$(cd "$HERE/../.." && pwd)

handoff() {  # handoff MODE ENV... -> "median p99 cpu"
    mode=$1
    shift
    env LD_PRELOAD="$LIB" SLUICE_CONN_MAX=1 "$@" "$HELPER" "$mode" "$ROUNDS" |
        awk '/^handoff/ { m = $3; p = $4 } /^paused_cpu/ { c = $2 } END { print m, p, c }'
}
set -- $(handoff blocking SLUICE_QUEUE_TIMEOUT=60s)
echo "queue_handoff_blocking_median=$1 queue_handoff_blocking_p99=$2 queue_paused_cpu=$3"
set -- $(handoff epoll SLUICE_QUEUE_TIMEOUT=60s)
echo "queue_handoff_epoll_median=$1 queue_handoff_epoll_p99=$2 queue_paused_cpu_epoll=$3"
set -- $(handoff epoll SLUICE_QUEUE_TIMEOUT=60s SLUICE_QUEUE_ORDER=lifo)
echo "queue_handoff_lifo_epoll_median=$1 queue_handoff_lifo_epoll_p99=$2 queue_paused_cpu_lifo=$3"
set -- $(handoff blocking)
echo "queue_bare_handoff_blocking_median=$1 queue_bare_handoff_blocking_p99=$2 queue_bare_paused_cpu=$3"

overload() {  # overload ENV... -> the client's line
    port=$(free_port)
    env LD_PRELOAD="$LIB" SLUICE_CONN_MAX=2 SLUICE_BACKLOG=64 QUEUE_SLOW_MS=500 "$@" \
        /usr/bin/python3 -m uvicorn --loop asyncio --app-dir "$SRC/tests/helpers" queue_slow_asgi:app \
        --host 127.0.0.1 --port "$port" --log-level warning >/dev/null 2>&1 &
    pid=$!
    wait_port "$port" || exit 1
    QUEUE_SLOW_MS=500 /usr/bin/python3 "$HERE/queue_overload.py" "$port" 12 "$SPAN"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# arrivals served shed resets unanswered p50 p99 slow_connects
echo "queue_overload_bare='$(overload)'"
echo "queue_overload_queue='$(overload SLUICE_QUEUE_TIMEOUT=1s)'"
echo "queue_overload_lifo='$(overload SLUICE_QUEUE_TIMEOUT=1s SLUICE_QUEUE_ORDER=lifo)'"
echo "queue_overload_seconds=$SPAN"
