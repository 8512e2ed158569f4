#!/bin/sh
# drain_bench.sh BUILD_DIR — drain-before-write figures for `make bench`:
#   1 GB at a 1 KiB mark with odd write sizes, TCP and UNIX: identical bytes;
#   loopback throughput bare vs gate on but not binding (SLUICE_WRITE_HIGH=4M),
#   alternating rounds, median ratio.
# Throughput rounds send the same bytes over and over and only count them, so
# the generator's cost does not hide the library's.
set -eu
B=${1:-build}
H=$B/helpers
LIB=$(cd "$B" && pwd)/libsluice.so
TMP=$(mktemp -d /tmp/sluice-drain-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# transfer WHERE BYTES MODE [ENV...]: one run (MODE check|fast), prints the reader's line
transfer() {
    where=$1; bytes=$2; mode=$3; shift 3
    fast=""
    [ "$mode" = fast ] && fast=fast
    "$H/drain_reader" "$where" $fast > "$TMP/out" &
    rpid=$!
    for _ in $(seq 50); do grep -q listening "$TMP/out" 2>/dev/null && break; sleep 0.05; done
    if [ $# -gt 0 ]; then
        env LD_PRELOAD="$LIB" "$@" "$H/drain_writer" "$where" "$bytes" $fast > /dev/null
    else
        "$H/drain_writer" "$where" "$bytes" $fast > /dev/null
    fi
    wait "$rpid"
    tail -n 1 "$TMP/out"
}

echo "== 1 GB at SLUICE_WRITE_HIGH=1K, odd write sizes"
echo "tcp:  $(transfer "$(port)" 1073741824 check SLUICE_WRITE_HIGH=1K)"
echo "unix: $(transfer "$TMP/sock" 1073741824 check SLUICE_WRITE_HIGH=1K)"

echo "== throughput, 2 GB per round, bare vs SLUICE_WRITE_HIGH=4M (not binding)"
bare="" gated=""
for round in $(seq 9); do
    b=$(transfer "$(port)" 2147483648 fast | awk '{print $3}')
    g=$(transfer "$(port)" 2147483648 fast SLUICE_WRITE_HIGH=4M | awk '{print $3}')
    bare="$bare $b"; gated="$gated $g"
    echo "round $round: bare $b MB/s, gated $g MB/s"
done
med() { echo "$@" | tr ' ' '\n' | grep . | sort -n | sed -n 5p; }
mb=$(med $bare); mg=$(med $gated)
echo "median: bare $mb MB/s, gated $mg MB/s, ratio $(awk "BEGIN{printf \"%.3f\", $mg/$mb}")"
