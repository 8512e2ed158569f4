#!/bin/sh
# run.sh — `make bench`: every figure of the spec, measured side by side in one
# run: what the library costs a program, and what its gates do under load.
#  1. Instructions a wrapped read()/write() adds (callgrind, Ir), bare against
#     preloaded; per call = extra Ir between two loop lengths / extra calls, so
#     that start-up cancels out. Target: at most ~20.
#  2. redis-benchmark (-t set,get -n 100000 -q, 127.0.0.1) against redis-server
#     bare, preloaded with no settings, and with every gate on but not binding;
#     runs alternate; ratio = median of the rounds' ratios. Targets: >= 0.98
#     and >= 0.95 of bare.
#     Server and client are pinned to different CPUs when there are two or
#     more; the server's CPU time per 1000 requests is shown too, a figure a
#     busy machine disturbs less than throughput.
#  3. wrk on nginx, the same three ways (nginx.sh).
#  4. CPU of a paused server with 1,000 clients waiting (paused.sh).
#  5. Shed answers per second against nginx's limit_conn (shed.sh).
#  6. The filesystem gate not binding: instructions and system calls per
#     uncontended read, a cat/sort workload in host scope (fs.sh).
#  7. The host-scope connection budget: instructions and system calls per
#     accept+close against process scope; CPU of 4 paused workers with 1,000
#     clients waiting (connhost.sh).
#  8. The waiting queue: hand-off latency, paused CPU with 1,000 queued, 20 s
#     of 3x overload bare pause against SLUICE_QUEUE_TIMEOUT (queue.sh).
# Every figure goes into one Markdown table, printed and written to
# $BUILD/bench.md. About 5 minutes, then SLUICE_CONN_MAX=auto on a latency-bound
# service (autolimit.sh, its own section, about 3 minutes).
# BENCH_ROUNDS (default 5) sets the number of alternating rounds,
# BENCH_REDIS_N (default 100000) the requests of each redis-benchmark test.
set -eu

BUILD=${BUILD:-build}
ROUNDS=${BENCH_ROUNDS:-5}
REDIS_N=${BENCH_REDIS_N:-100000}
BENCH_START=$(date +%s)
TIMES=""
took() {  # took SECTION: notes how long the run has taken so far
    TIMES="$TIMES $1 $(($(date +%s) - BENCH_START))s,"
}
export BUILD BENCH_ROUNDS=$ROUNDS
HERE=$(dirname "$0")
. "$HERE/lib.sh"
IO=$BUILD/helpers/fwd_bench_io
OUT=$BUILD/bench.md
GATES="SLUICE_CONN_MAX=1000 SLUICE_WRITE_HIGH=16M SLUICE_FS_MAX=1000"

need valgrind redis-server redis-benchmark redis-cli nginx wrk
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

took callgrind
# --- 2. redis-benchmark ------------------------------------------------------------
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap "exit 130" INT TERM HUP PIPE   # the EXIT trap then cleans up

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
    rates=$($PIN_CLIENT redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$REDIS_N" -q 2>/dev/null |
        tr '\r' '\n' |
        awk '/^SET: [0-9.]+ requests per second/ { set = $2 }
             /^GET: [0-9.]+ requests per second/ { get = $2 }
             END { printf "%s %s\n", set, get }')
    ticks_after=$(cpu_ticks "$SERVER_PID")
    stop_server
    echo "$rates $(awk -v t=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" \
        -v n="$REDIS_N" 'BEGIN { printf "%.3f", t * 1000 / hz / (2 * n / 1000) }')"
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

took redis
# --- 3. wrk on nginx --------------------------------------------------------------
eval "$("$HERE/nginx.sh")"
took nginx

# --- 4. paused CPU with 1,000 waiting clients --------------------------------------
eval "$("$HERE/paused.sh")"
took paused

# --- 5. shed rate against nginx's limit_conn ---------------------------------------
eval "$("$HERE/shed.sh")"
took shed

# --- 6. filesystem gate, not binding --------------------------------------------------
eval "$("$HERE/fs.sh")"
took fs

# --- 7. host-scope connection budget ----------------------------------------------------
eval "$("$HERE/connhost.sh")"
took connhost
# --- 8. the waiting queue ----------------------------------------------------------
eval "$("$HERE/queue.sh")"
took queue

# --- the table ---------------------------------------------------------------------
row() {  # row FIGURE BARE SLUICE MEASURED TARGET DIR THRESHOLD (no DIR: no verdict)
    echo "| $1 | $2 | $3 | $4 | $5 | ${6:+$(verdict "$4" "$7" "$6")} |"
}
pre_set_r=$(pair_ratio "$bare_set" "$pre_set") pre_get_r=$(pair_ratio "$bare_get" "$pre_get")
gated_set_r=$(pair_ratio "$bare_set" "$gated_set") gated_get_r=$(pair_ratio "$bare_get" "$gated_get")
pre_cpu_r=$(pair_ratio "$pre_cpu" "$bare_cpu") gated_cpu_r=$(pair_ratio "$gated_cpu" "$bare_cpu")
{
    echo "## sluice benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r))"
    echo
    echo "Throughput: $ROUNDS rounds alternating bare and sluice${PIN_SERVER:+, server on CPU 0 and client on CPU 1};"
    echo "bare and sluice columns are medians, a ratio is the median of the rounds' own ratios."
    echo
    echo "| figure | bare | sluice | measured | target | |"
    echo "|---|---:|---:|---:|---:|---|"
    row "read(): instructions added per call, no settings (callgrind)" "$read_bare" "$read_pre" "$read_extra" "<= 20" le 20
    row "write(): instructions added per call, no settings (callgrind)" "$write_bare" "$write_pre" "$write_extra" "<= 20" le 20
    row "redis-benchmark SET req/s, no settings" "$m_bare_set" "$m_pre_set" "$pre_set_r" ">= 0.98" ge 0.98
    row "redis-benchmark GET req/s, no settings" "$m_bare_get" "$m_pre_get" "$pre_get_r" ">= 0.98" ge 0.98
    row "wrk on nginx req/s, no settings" "$nginx_bare" "$nginx_pre" "$nginx_pre_r" ">= 0.98" ge 0.98
    row "redis-benchmark SET req/s, gates on, not binding" "$m_bare_set" "$m_gated_set" "$gated_set_r" ">= 0.95" ge 0.95
    row "redis-benchmark GET req/s, gates on, not binding" "$m_bare_get" "$m_gated_get" "$gated_get_r" ">= 0.95" ge 0.95
    row "wrk on nginx req/s, gates on, not binding" "$nginx_bare" "$nginx_gated" "$nginx_gated_r" ">= 0.95" ge 0.95
    # The same cost seen as server CPU per request: a busy machine disturbs it far less than throughput.
    row "redis-server CPU ms per 1000 requests, no settings (measured: bare over sluice)" "$m_bare_cpu" "$m_pre_cpu" "$pre_cpu_r" ">= 0.98" ge 0.98
    row "nginx CPU ms per 1000 requests, no settings (measured: bare over sluice)" "$nginx_bare_cpu" "$nginx_pre_cpu" "$nginx_pre_cpu_r" ">= 0.98" ge 0.98
    row "redis-server CPU ms per 1000 requests, gates on, not binding (bare over sluice)" "$m_bare_cpu" "$m_gated_cpu" "$gated_cpu_r" ">= 0.95" ge 0.95
    row "nginx CPU ms per 1000 requests, gates on, not binding (bare over sluice)" "$nginx_bare_cpu" "$nginx_gated_cpu" "$nginx_gated_cpu_r" ">= 0.95" ge 0.95
    for server in nginx asyncio nginx_host; do
        eval "cpu=\$paused_${server}_cpu queued=\$paused_${server}_queued"
        # The figure counts only if the clients really wait in the backlog.
        [ "$queued" -ge "$paused_waiting" ] || cpu="n/a"
        what=$server
        [ "$server" != nginx_host ] || what="nginx 4 workers, SLUICE_CONN_SCOPE=host"
        row "paused ($what, SLUICE_CONN_MAX=4, 4 held): CPU % of one core with $queued clients in the accept queue" \
            "" "$cpu" "$cpu" "< 1" lt 1
    done
    # The rate counts only if curl saw the 503 (with Retry-After from sluice).
    [ "$shed_checked" = yes ] || shed_close_r="n/a" shed_keep_r="n/a"
    row "shed 503 answers/s, clients closing (Connection: close): nginx limit_conn vs sluice shed" \
        "$shed_nginx_close" "$shed_sluice_close" "$shed_close_r" ">= 1" ge 1
    row "shed 503 answers/s, keep-alive clients: nginx limit_conn vs sluice shed" \
        "$shed_nginx_keep" "$shed_sluice_keep" "$shed_keep_r" ">= 1" ge 1
    row "fs: read() of a regular file, instructions added by the uncontended process-scope token (no settings / SLUICE_FS_MAX=1000)" \
        "$fs_read_pre" "$fs_read_gated" "$fs_read_extra" "(none set)"
    sys_extra=$(awk -v a="$fs_sys_gated" -v b="$fs_sys_pre" 'BEGIN { printf "%.3f", a - b }')
    row "fs: system calls per uncontended read() (strace -c; no settings / SLUICE_FS_MAX=1000)" \
        "$fs_sys_pre" "$fs_sys_gated" "$sys_extra" "0 added" le 0
    [ "$fs_same_output" = yes ] || fs_work_r="n/a"
    row "fs: cat/sort workload (xargs -P2) wall s, host scope not binding: throughput over bare" \
        "$fs_work_bare" "$fs_work_host" "$fs_work_r" ">= 0.95" ge 0.95
    [ "${fs_make_same_output:-no}" = yes ] || fs_make_fs2_r="n/a" fs_make_fs8_r="n/a"
    row "fs: make -j8 of this project, host scope SLUICE_FS_MAX=2: wall time over bare (control: bare over bare $fs_make_control_r)" \
        "$fs_make_bare" "$fs_make_fs2" "$fs_make_fs2_r" "<= 1.15" le 1.15
    row "fs: make -j8 of this project, host scope SLUICE_FS_MAX=8: wall time over bare" \
        "$fs_make_bare" "$fs_make_fs8" "$fs_make_fs8_r" "<= 1.05" le 1.05
    row "conn: instructions per accept+close, process scope / host scope (callgrind)" \
        "$connhost_ir_process" "$connhost_ir_host" \
        "$(awk -v a="$connhost_ir_host" -v b="$connhost_ir_process" 'BEGIN { printf "%.0f", a - b }')" "(none set)"
    row "conn: system calls per accept+close (strace -c; process scope / host scope)" \
        "$connhost_sys_process" "$connhost_sys_host" \
        "$(awk -v a="$connhost_sys_host" -v b="$connhost_sys_process" 'BEGIN { printf "%.2f", a - b }')" "0 added" le 0
    [ "$connhost_paused_queued" -ge "$connhost_paused_waiting" ] || connhost_paused_cpu="n/a"
    row "paused (4 workers, host scope SLUICE_CONN_MAX=4, 4 held): CPU % of one core with $connhost_paused_queued clients in the accept queue" \
        "" "$connhost_paused_cpu" "$connhost_paused_cpu" "< 1" lt 1
    row "queue: hand-off µs, slot freed to a blocked accept's return, median (bare pause / queue)" \
        "$queue_bare_handoff_blocking_median" "$queue_handoff_blocking_median" "$queue_handoff_blocking_median" "< 100" lt 100
    row "queue: hand-off µs, p99 (bare pause / queue)" \
        "$queue_bare_handoff_blocking_p99" "$queue_handoff_blocking_p99" "$queue_handoff_blocking_p99" "< 100" lt 100
    row "queue: hand-off µs to an epoll loop's accept, median / p99" \
        "" "$queue_handoff_epoll_median" "$queue_handoff_epoll_p99" ""
    row "queue: hand-off µs to an epoll loop's accept with lifo (the doorbell), median / p99" \
        "" "$queue_handoff_lifo_epoll_median" "$queue_handoff_lifo_epoll_p99" ""
    row "queue: paused CPU % of one core, 1,032 queued (bare pause / queue)" \
        "$queue_bare_paused_cpu" "$queue_paused_cpu" "$queue_paused_cpu" "< 1" lt 1
    echo
    echo "Details:"
    echo
    echo "- start-up instructions (whole process, no calls): bare $start_bare, preloaded $start_pre."
    echo "- redis-benchmark -t set,get -n $REDIS_N -q; gates on: $GATES."
    echo "  Raw runs (SET, bare/preloaded/gated):$bare_set /$pre_set /$gated_set; (GET):$bare_get /$pre_get /$gated_get"
    echo "- wrk -t1 -c32 -d${nginx_seconds}s on nginx (1 worker, 612-byte static file); gates on: $nginx_gates."
    echo "  Raw runs: $nginx_raw"
    echo "- paused: $paused_waiting clients connected and waiting (listen backlog 2048) behind 4 held ones; CPU of"
    echo "  every server process from /proc/PID/stat over ${paused_seconds}s; queue length from ss (Recv-Q of the listener)."
    echo "- shed: nginx (1 worker) with 4 slow downloads holding the 4 places; wrk -t1 -c32 -d${shed_seconds}s, median of"
    echo "  $shed_rounds alternating rounds; \"bare\" is nginx's own limit_conn 503, \"sluice\" is nginx without limit_conn under"
    echo "  SLUICE_CONN_MAX=4 SLUICE_CONN_MODE=shed. Answers = wrk's non-2xx count over its run time; socket errors apart."
    echo "  sluice closes every connection it sheds, so a keep-alive client pays a new connection per answer where"
    echo "  nginx answers on the kept one. 503 checked with curl (Retry-After from sluice): $shed_checked."
    echo "  Server CPU ms per 1000 answers (nginx limit_conn / sluice): clients closing $shed_nginx_close_cpu / $shed_sluice_close_cpu,"
    echo "  keep-alive $shed_nginx_keep_cpu / $shed_sluice_keep_cpu."
    echo "  Raw: $shed_raw"
    echo "- fs: of the $fs_read_extra instructions a gated read() adds, the token (fsgate_acquire + fsgate_release) takes"
    echo "  $fs_read_token; the rest is the dispatch of every gated call (descriptor kind, gate enter/leave)."
    echo "  System calls at start-up (loop of 1000 reads, extrapolated to 0): no settings $fs_sys_start_pre, gated $fs_sys_start_gated."
    echo "  Workload: 96 files of 128 KiB, xargs -P2 -n8 cat then xargs -P2 -n16 sort, LC_ALL=C; $fs_host_settings;"
    echo "  median of $fs_work_rounds alternating rounds; outputs identical to bare: $fs_same_output."
    echo "  CPU s of every process (median): bare $fs_work_bare_cpu, host scope $fs_work_host_cpu (bare over host, per round: $fs_work_cpu_r)."
    echo "  Raw: $fs_work_raw"
    echo "  make -j8 (copy of the tree, default target), outputs identical to bare: $fs_make_same_output. Raw: $fs_make_raw"
    echo "  One sort of 16 of the files ($fs_sort_lines lines, one fwrite each, to /dev/null), instructions (callgrind):"
    echo "  no settings $fs_sort_pre, SLUICE_FS_MAX=1000 $fs_sort_gated: $fs_sort_per_line more per line written, though"
    echo "  /dev/null is never gated: each stdio call still goes through the gate's dispatch (fileno, the"
    echo "  descriptor's kind looked up twice, enter/leave) before the real call, whatever the stream."
    echo "- queue: uvicorn, 2 slots, 500 ms requests, open-loop 12 arrivals/s for ${queue_overload_seconds}s, backlog 64;"
    echo "  arrivals served shed resets unanswered p50_wait_ms p99_wait_ms slow_connects (SYN retransmitted):"
    echo "  bare pause: $queue_overload_bare; SLUICE_QUEUE_TIMEOUT=1s: $queue_overload_queue;"
    echo "  the same with SLUICE_QUEUE_ORDER=lifo: $queue_overload_lifo."
    echo "- time since the start, after each part:${TIMES%,}."
} > "$OUT"
cat "$OUT"
# SLUICE_CONN_MAX=auto against a latency-bound service (its own section).
sh "$HERE/autolimit.sh" | tee -a "$OUT"
