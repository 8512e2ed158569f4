#!/bin/sh
# fs.sh — what the filesystem gate costs when it does not bind.
#  1. Instructions a read() of a regular file adds with SLUICE_FS_MAX=1000
#     (process scope, uncontended) over the library preloaded with no settings
#     (callgrind; per call = extra Ir between two loop lengths / extra calls).
#  2. System calls per read() with and without the gate (strace -f -c, the
#     difference between two loop lengths): the uncontended token takes none.
#  3. A cat/sort workload (xargs -P2 over 96 text files of 128 KiB: cat them
#     all, then sort them 16 at a time) bare against SLUICE_FS_SCOPE=host
#     SLUICE_FS_MAX=1000 with a key of its own; wall time, alternating rounds,
#     medians (4 rounds more than the others: each is short and noisy);
#     throughput ratio = bare time / sluice time.
#  4. make -j8 of this project (a copy of HEAD) bare against a host budget that
#     binds (SLUICE_FS_MAX=2, and 8), with a bare-over-bare control; outputs
#     must be identical.
# Prints shell assignments (fs_*=...) for run.sh.
set -eu

BUILD=${BUILD:-build}
ROUNDS=${BENCH_ROUNDS:-5}
HERE=$(dirname "$0")
. "$HERE/lib.sh"
need valgrind callgrind_annotate strace xargs sort
READER=$BUILD/helpers/bench_fs_read
[ -x "$READER" ] || { echo "bench: build first (make all and helpers)" >&2; exit 1; }

DIR=$(mktemp -d)
KEY=bench-$$
trap 'rm -rf "$DIR"; rm -f "/dev/shm/sluice-$(id -u)/fs-$KEY"' EXIT
trap "exit 130" INT TERM HUP PIPE   # the EXIT trap then cleans up

N1=20000
N2=220000
head -c $N2 /dev/zero > "$DIR/data"

# --- 1. instructions per read --------------------------------------------------------
instructions() {  # instructions N ENV... -> Ir of bench_fs_read N under ENV
    n=$1
    shift
    env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$READER" "$DIR/data" "$n" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
echo "bench: fs: counting instructions with callgrind..." >&2
p1=$(instructions $N1 LD_PRELOAD="$LIB")
p2=$(instructions $N2 LD_PRELOAD="$LIB")
g1=$(instructions $N1 LD_PRELOAD="$LIB" SLUICE_FS_MAX=1000)
g2=$(instructions $N2 LD_PRELOAD="$LIB" SLUICE_FS_MAX=1000)
awk -v p1="$p1" -v p2="$p2" -v g1="$g1" -v g2="$g2" -v n=$((N2 - N1)) 'BEGIN {
    pre = (p2 - p1) / n; gated = (g2 - g1) / n
    printf "fs_read_pre=%.1f\nfs_read_gated=%.1f\nfs_read_extra=%.1f\n", pre, gated, gated - pre }'
# Of those, the token itself (fsgate_acquire + fsgate_release); the rest is the
# dispatch every gated call goes through (descriptor kind, gate_enter/leave).
env LD_PRELOAD="$LIB" SLUICE_FS_MAX=1000 valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out" \
    "$READER" "$DIR/data" $N2 >/dev/null 2>&1
callgrind_annotate --auto=no "$DIR/cg.out" 2>/dev/null | awk -v n=$N2 '
    /:fsgate_(acquire|release) / { gsub(/,/, "", $1); ir += $1 }
    END { printf "fs_read_token=%.1f\n", ir / n }'

# --- 2. system calls per read ------------------------------------------------------------
S1=1000
S2=21000
syscalls() {  # syscalls N ENV... -> system calls of bench_fs_read N under ENV
    n=$1
    shift
    env "$@" strace -f -c -o "$DIR/strace.out" "$READER" "$DIR/data" "$n" >/dev/null 2>&1
    awk '$NF == "total" { print $4 }' "$DIR/strace.out"
}
echo "bench: fs: counting system calls with strace..." >&2
s_p1=$(syscalls $S1 LD_PRELOAD="$LIB")
s_p2=$(syscalls $S2 LD_PRELOAD="$LIB")
s_g1=$(syscalls $S1 LD_PRELOAD="$LIB" SLUICE_FS_MAX=1000)
s_g2=$(syscalls $S2 LD_PRELOAD="$LIB" SLUICE_FS_MAX=1000)
awk -v p1="$s_p1" -v p2="$s_p2" -v g1="$s_g1" -v g2="$s_g2" -v n=$((S2 - S1)) 'BEGIN {
    printf "fs_sys_pre=%.3f\nfs_sys_gated=%.3f\nfs_sys_start_pre=%d\nfs_sys_start_gated=%d\n",
        (p2 - p1) / n, (g2 - g1) / n, p1 - (p2 - p1) / n * 1000, g1 - (g2 - g1) / n * 1000 }'

# --- 3. cat/sort workload, host scope ------------------------------------------------------
echo "bench: fs: making the cat/sort workload's files..." >&2
mkdir "$DIR/files"
awk -v dir="$DIR/files" 'BEGIN {
    srand(7)
    for (f = 0; f < 96; f++) {
        name = sprintf("%s/f%02d.txt", dir, f); bytes = 0
        while (bytes < 131072) { line = sprintf("%08d %s %d", int(rand() * 1e8), f, bytes); print line > name; bytes += length(line) + 1 }
        close(name)
    }
}'
ls "$DIR"/files/*.txt > "$DIR/list"

workload() {  # workload ENV... -> "WALL_SECONDS CPU_SECONDS" (CPU: user + system of every process)
    # The runner itself runs bare; only the workload's processes get ENV.
    /usr/bin/python3 -c '
import os, resource, subprocess, sys, time
env = dict(os.environ, **dict(a.split("=", 1) for a in sys.argv[2:]))
start = time.monotonic()
for cmd in (["xargs", "-P", "2", "-n", "8", "cat"], ["xargs", "-P", "2", "-n", "16", "sort"]):
    with open(sys.argv[1]) as names:
        subprocess.run(cmd, stdin=names, stdout=subprocess.DEVNULL, env=env, check=True)
wall = time.monotonic() - start
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.4f %.4f" % (wall, ru.ru_utime + ru.ru_stime))' "$DIR/list" "$@"
}
HOST="LD_PRELOAD=$LIB SLUICE_FS_SCOPE=host SLUICE_FS_MAX=1000 SLUICE_FS_KEY=$KEY"
# The outputs must not change.
bare_sum=$(xargs -n 16 sort < "$DIR/list" | md5sum)
host_sum=$(env $HOST xargs -n 16 sort < "$DIR/list" | md5sum)
[ "$bare_sum" = "$host_sum" ] && echo "fs_same_output=yes" || echo "fs_same_output=no"

# Where the workload's extra CPU goes: instructions of one sort of 16 files
# (one fwrite per output line, to /dev/null: not a file, never gated) with no
# settings and with SLUICE_FS_MAX=1000.
sort_ir() {  # sort_ir ENV... -> Ir
    env LC_ALL=C "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        sort $(head -16 "$DIR/list") 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
echo "bench: fs: counting sort's instructions with callgrind..." >&2
sort_lines=$(cat $(head -16 "$DIR/list") | wc -l)
sort_pre=$(sort_ir LD_PRELOAD="$LIB")
sort_gated=$(sort_ir LD_PRELOAD="$LIB" SLUICE_FS_MAX=1000)
echo "fs_sort_lines=$sort_lines"
echo "fs_sort_pre=$sort_pre"
echo "fs_sort_gated=$sort_gated"
awk -v a="$sort_pre" -v b="$sort_gated" -v n="$sort_lines" 'BEGIN { printf "fs_sort_per_line=%.0f\n", (b - a) / n }'

bare="" host="" bare_cpu="" host_cpu=""
round=1
while [ $round -le $((ROUNDS + 4)) ]; do
    echo "bench: fs workload round $round/$((ROUNDS + 4))..." >&2
    if [ $((round % 2)) -eq 1 ]; then order="bare host"; else order="host bare"; fi
    for mode in $order; do
        if [ $mode = bare ]; then set -- $(workload LC_ALL=C); else set -- $(workload LC_ALL=C $HOST); fi
        eval "$mode=\"\$$mode $1\" ${mode}_cpu=\"\$${mode}_cpu $2\""
    done
    round=$((round + 1))
done
echo "fs_work_bare=$(echo "$bare" | median)"
echo "fs_work_host=$(echo "$host" | median)"
echo "fs_work_r=$(pair_ratio "$host" "$bare")"   # throughput ratio: bare time over host-scope time
echo "fs_work_cpu_r=$(pair_ratio "$host_cpu" "$bare_cpu")"
echo "fs_work_bare_cpu=$(echo "$bare_cpu" | median)"
echo "fs_work_host_cpu=$(echo "$host_cpu" | median)"
echo "fs_work_rounds=$((ROUNDS + 4))"
echo "fs_work_raw='wall s, bare:$bare / host scope:$host; CPU s, bare:$bare_cpu / host scope:$host_cpu'"
echo "fs_host_settings='SLUICE_FS_SCOPE=host SLUICE_FS_MAX=1000 SLUICE_FS_KEY=$KEY'"

# --- 4. make -j8 of this project under a host budget that binds ------------------------------
# A copy of the tree (git archive of HEAD) built with make -j8 (the default
# target), bare against SLUICE_FS_SCOPE=host with SLUICE_FS_MAX=2 and 8, rounds
# alternating; a second bare series is the control for the machine's noise.
# Ratios: sluice time over bare time (median of per-round ratios). Outputs
# (objects and library) must be byte-identical to the bare build's.
SRC=$(cd "$HERE/../.." && pwd -P)
if git -C "$SRC" rev-parse --verify -q HEAD >/dev/null; then
    mkdir "$DIR/tree"
    git -C "$SRC" archive HEAD | tar -x -C "$DIR/tree"
    make_once() {  # make_once ENV... -> "WALL_SECONDS DIGEST"
        (cd "$DIR/tree" && make -s clean >/dev/null 2>&1
         start=$(date +%s.%N)
         env "$@" make -s -j8 >/dev/null 2>&1 || echo "bench: make failed under $*" >&2
         end=$(date +%s.%N)
         echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')" \
              "$(cat build/shim/*.o build/libsluice.so | md5sum | cut -c1-16)")
    }
    mk_bare="" mk_bare2="" mk_fs2="" mk_fs8="" mk_same=yes mk_ref=""
    round=1
    while [ $round -le "$ROUNDS" ]; do
        echo "bench: fs: make -j8 round $round/$ROUNDS..." >&2
        for mode in bare fs2 bare2 fs8; do
            case $mode in
                bare|bare2) set -- $(make_once LC_ALL=C) ;;
                fs2) set -- $(make_once LC_ALL=C LD_PRELOAD="$LIB" SLUICE_FS_SCOPE=host SLUICE_FS_MAX=2 SLUICE_FS_KEY=$KEY-m2) ;;
                fs8) set -- $(make_once LC_ALL=C LD_PRELOAD="$LIB" SLUICE_FS_SCOPE=host SLUICE_FS_MAX=8 SLUICE_FS_KEY=$KEY-m8) ;;
            esac
            eval "mk_$mode=\"\$mk_$mode $1\""
            [ -n "$mk_ref" ] || mk_ref=$2
            [ "$2" = "$mk_ref" ] || mk_same=no
        done
        round=$((round + 1))
    done
    rm -f "/dev/shm/sluice-$(id -u)/fs-$KEY-m2" "/dev/shm/sluice-$(id -u)/fs-$KEY-m8"
    echo "fs_make_bare=$(echo "$mk_bare" | median)"
    echo "fs_make_fs2=$(echo "$mk_fs2" | median)"
    echo "fs_make_fs8=$(echo "$mk_fs8" | median)"
    echo "fs_make_control_r=$(pair_ratio "$mk_bare" "$mk_bare2")"
    echo "fs_make_fs2_r=$(pair_ratio "$mk_bare" "$mk_fs2")"
    echo "fs_make_fs8_r=$(pair_ratio "$mk_bare" "$mk_fs8")"
    echo "fs_make_same_output=$mk_same"
    echo "fs_make_raw='wall s, bare:$mk_bare / bare again:$mk_bare2 / fs-max 2:$mk_fs2 / fs-max 8:$mk_fs8'"
fi
