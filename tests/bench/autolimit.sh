#!/bin/sh
# autolimit.sh — SLUICE_CONN_MAX=auto against a latency-bound service
# (tests/helpers/latency_server: a thread per connection, each request waits
# 20 ms then burns 5 ms of CPU; server pinned to CPU 0, the load generator to
# CPU 1 when there are two). Measured, in order:
#   capacity: closed loop, 16 in flight, bare (requests/s); the unloaded p99:
#             closed loop, one in flight, bare;
#   overload: open loop at 3x capacity for SPAN seconds, one connection per
#             request, 2 s timeout: bare (no limit), auto (shed), fixed N=2
#             (too small), N=64 (too large), N=8 (well chosen), all shed with
#             idle=free; goodput (200s per second) over capacity and the p99
#             of served requests over the unloaded p99;
#   change:   auto again, the handler's costs doubled at SPAN/2 (SIGUSR1): the
#             limit each second, and when it settled (every later second
#             within 0.5x-1.5x of the last quarter's mean);
#   no load:  open loop at half the capacity for 10 s, pause mode: auto over
#             bare goodput (and both p99s).
# Prints a Markdown section. BENCH_AUTO_SECONDS sets SPAN (default 20).
set -eu

BUILD=${BUILD:-build}
SPAN=${BENCH_AUTO_SECONDS:-20}
HERE=$(dirname "$0")
. "$HERE/lib.sh"
SERVER=$BUILD/helpers/latency_server
CLIENT=$BUILD/helpers/load_client
[ -x "$SERVER" ] && [ -x "$CLIENT" ] || { echo "autolimit bench: build the helpers first" >&2; exit 1; }
if [ "$(nproc)" -ge 2 ]; then SCPU="taskset -c 0" CCPU="taskset -c 1"; else SCPU="" CCPU=""; fi
DIR=$(mktemp -d)
SPID=""
WORKERS=""   # with a number: a master and that many workers (run's server)
KEY=bench-auto-$$
stop_server() {
    if [ -n "$SPID" ]; then
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
    fi
    SPID=""
}
trap 'stop_server; rm -rf "$DIR"; rm -f "/dev/shm/sluice-$(id -u)/conn-$KEY"' EXIT
trap "exit 130" INT TERM HUP PIPE

# run NAME CLIENT_ARGS... -- [SLUICE_SETTINGS...]: one server, one client run;
# the client's output in $DIR/NAME.
run() {
    name=$1
    shift
    args=""
    while [ "$1" != "--" ]; do args="$args $1"; shift; done
    shift
    port=$(free_port)
    # shellcheck disable=SC2086
    if [ $# -gt 0 ]; then
        env "$@" SLUICE_STATS="$DIR/$name.prom" SLUICE_STATS_INTERVAL=100ms LD_PRELOAD="$LIB" \
            $SCPU "$SERVER" "$port" 20 5 $WORKERS > "$DIR/$name.server" 2>&1 &
    else
        $SCPU "$SERVER" "$port" 20 5 > "$DIR/$name.server" 2>&1 &
    fi
    SPID=$!
    wait_port "$port"
    # shellcheck disable=SC2086
    set -- $args
    if [ "$1" = signal ]; then
        shift
        $CCPU "$CLIENT" "$port" "$@" "$DIR/$name.prom" $((SPAN / 2)) "$SPID" > "$DIR/$name" || true
    else
        $CCPU "$CLIENT" "$port" "$@" "$DIR/$name.prom" > "$DIR/$name" || true
    fi
    stop_server
}
field() {  # field NAME KEY: a figure of the client's total line
    sed -n "s/^total .* $2 \([0-9.]*\).*/\1/p" "$DIR/$1"
}

run capacity closed 16 5 2000 --
run unloaded closed 1 5 2000 --
cap=$(field capacity goodput)
p99_0=$(field unloaded p99_ms)
rate=$(awk -v c="$cap" 'BEGIN { printf "%d", c * 3 }')
FREE="SLUICE_CONN_MODE=shed SLUICE_CONN_IDLE=free"
run bare open "$rate" "$SPAN" 2000 --
run auto open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=auto SLUICE_CONN_MODE=shed
run n2 open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=2 $FREE
run n64 open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=64 $FREE
run n8 open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=8 $FREE
WORKERS=3
run auto_workers open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=auto SLUICE_CONN_MODE=shed \
    SLUICE_CONN_SCOPE=host SLUICE_CONN_KEY="$KEY"
WORKERS=""
run auto_queue open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=auto SLUICE_QUEUE_TIMEOUT=1s
run change signal open "$rate" "$SPAN" 2000 -- SLUICE_CONN_MAX=auto SLUICE_CONN_MODE=shed
calm=$(awk -v c="$cap" 'BEGIN { printf "%d", c / 2 }')
run calm_bare open "$calm" 10 2000 --
run calm_auto open "$calm" 10 2000 -- SLUICE_CONN_MAX=auto

echo
echo "### SLUICE_CONN_MAX=auto on a latency-bound service"
echo
echo "Handler: 20 ms waiting + 5 ms CPU; capacity (closed loop, 16 in flight) $cap requests/s;"
echo "unloaded p99 (one in flight) $p99_0 ms. Open loop at $rate requests/s (3x) for $SPAN s,"
echo "one connection per request, 2 s timeout; shed mode."
echo
echo "| limit | goodput/s | of capacity | p99 served ms | of unloaded p99 | shed | late (>2 s) | limit seen |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
for r in bare auto auto_workers auto_queue n2 n64 n8; do
    case $r in
        bare) label="none" ;; auto) label="auto" ;; n2) label="N=2 (too small)" ;;
        auto_workers) label="auto, 3 workers sharing one budget" ;;
        auto_queue) label="auto with the queue (pause, 1 s; 503 counted as shed)" ;;
        n64) label="N=64 (too large)" ;; n8) label="N=8 (well chosen)" ;;
    esac
    g=$(field $r goodput)
    p=$(field $r p99_ms)
    case $r in n*) seen="${r#n} (fixed)" ;; bare) seen="-" ;; *) seen=$(awk '$1 == "sec" && $8 >= 0 { if (n == 0 || $8 < lo) lo = $8; if (n == 0 || $8 > hi) hi = $8; n++ }
                END { if (n) printf "%d-%d", lo, hi; else print "-" }' "$DIR/$r") ;; esac
    echo "| $label | $g | $(ratio "$g" "$cap") | $p | $(ratio "$p" "$p99_0") | $(field $r shed) | $(field $r late) | $seen |"
done
echo
half=$((SPAN / 2))
limits=$(awk '$1 == "sec" { printf "%s ", $8 }' "$DIR/change")
settled=$(awk -v half="$half" -v span="$SPAN" '$1 == "sec" { l[$2] = $8 }
    END { q = int(span / 4); s = 0; for (i = span - q + 1; i <= span; i++) s += l[i]; m = s / q;
          for (t = half + 1; t <= span; t++) { ok = 1; for (i = t; i <= span; i++) if (l[i] < 0.5 * m || l[i] > 1.5 * m) ok = 0;
              if (ok) { printf "%d s after the change (limit about %.0f)", t - half, m; exit } }
          print "not within the run" }' "$DIR/change")
echo "Costs doubled at ${half} s: the limit each second: $limits; settled $settled."
echo "Goodput and p99 of that run: $(field change goodput)/s, $(field change p99_ms) ms."
echo
r=$(ratio "$(field calm_auto goodput)" "$(field calm_bare goodput)")
echo "Never overloaded (open loop at half the capacity, $calm/s for 10 s, pause mode): bare $(field calm_bare goodput)/s"
echo "(p99 $(field calm_bare p99_ms) ms), auto $(field calm_auto goodput)/s (p99 $(field calm_auto p99_ms) ms): ratio $r (target >= 0.95)."
