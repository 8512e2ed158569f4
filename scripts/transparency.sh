#!/bin/bash
# transparency.sh — runs the test suites that real projects ship, bare and with
# libsluice.so preloaded, and compares their outcomes test by test. Everything
# that passes bare (twice, so flaky tests are known) must pass preloaded: once
# with no settings at all, once with every gate on but never binding.
#
# Suites (installed here when missing; Debian packages need root):
#   python  CPython's own tests (libpython3.11-testsuite): sockets, asyncio,
#           selectors, subprocess, os, file I/O, signals, servers
#   gtest   GLib/GIO's installed tests (libglib2.0-tests: sockets, main loop,
#           subprocesses, files, D-Bus peer) and libsoup's (libsoup-3.0-tests:
#           an HTTP server and client, websockets, timeouts)
#   node    fastify's own tests (npm registry), node's built-in test runner:
#           HTTP/1, HTTP/2 and HTTPS servers and clients on loopback, streams
#
# Environment: TRANSPARENCY_QUICK=1 runs a subset (about 2-3 minutes);
# TRANSPARENCY_SUITES="python gtest" picks suites; TRANSPARENCY_OUT is where
# results and logs go (default build/transparency); SLUICE_LIB the library.
# Exit status: 0 no regression, 1 regressions, 2 a suite could not be run.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/tests/transparency
LIB=${SLUICE_LIB:-$ROOT/build/libsluice.so}
OUT=${TRANSPARENCY_OUT:-$ROOT/build/transparency}
QUICK=${TRANSPARENCY_QUICK:-0}
SUITES=${TRANSPARENCY_SUITES:-python gtest node}
PY=/usr/bin/python3

# Bare means bare: nothing of sluice in the environment we start from.
unset LD_PRELOAD
for v in $(env | sed -n 's/^\(SLUICE_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

[ -r "$LIB" ] || { echo "transparency: $LIB not built (run make)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT/stats" && chmod 1777 "$OUT/stats"

# Every gate on, none binding: limits far above what any test reaches.
# SLUICE_STATS comes last: each suite points it at a directory of its own.
GATES=(SLUICE_CONN_MAX=100000 SLUICE_CONN_IDLE=free SLUICE_WRITE_HIGH=64M
       SLUICE_HOLD_READS=1 SLUICE_FS_MAX=100000 "SLUICE_STATS=$OUT/stats/%p.prom")
PLAIN=()
LABELS=(bare1 bare2 plain gates)
status=0

need() {    # need PACKAGE...: install what is missing, or say what to install
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "transparency: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >"$OUT/apt.log" 2>&1 ||
            { apt-get update -qq >>"$OUT/apt.log" 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                  "${missing[@]}" >>"$OUT/apt.log" 2>&1; } && return 0
        echo "transparency: could not install ${missing[*]} (see $OUT/apt.log)" >&2
    else
        echo "transparency: missing packages; as root: apt-get install -y ${missing[*]}" >&2
    fi
    return 1
}

# with LABEL CMD...: run CMD bare or preloaded, as LABEL says.
with() {
    local label=$1; shift
    case $label in
        bare*) env "$@" ;;
        plain*) env LD_PRELOAD="$LIB" "${PLAIN[@]}" "$@" ;;
        gates*) env LD_PRELOAD="$LIB" "${GATES[@]}" "$@" ;;
    esac
}

# settings LABEL: the NAME=VALUE words a label puts in the environment.
settings() {
    case $1 in
        bare*) ;;
        plain*) echo "LD_PRELOAD=$LIB" "${PLAIN[@]}" ;;
        gates*) echo "LD_PRELOAD=$LIB" "${GATES[@]}" ;;
    esac
}

# ---- CPython's test suite ---------------------------------------------------
# test_asyncio runs as its modules, so that they spread over the workers.
py_asyncio() {
    (cd /usr/lib/python3.11/test && ls test_asyncio/test_*.py) 2>/dev/null |
        sed 's|/|.|; s|\.py$||' | grep -v windows
}
PY_MODULES="test_socket test_selectors test_subprocess test_os test_fileio
test_poll test_epoll test_select test_io test_signal test_eintr test_ssl test_httplib
test_urllib2_localnet test_ftplib test_smtplib test_pty test_shutil test_tempfile test_mmap
test_fcntl test_threading test_file test_pipes test_telnetlib test_asyncore test_asynchat
test_httpservers test_xmlrpc test_wsgiref test_imaplib test_poplib test_logging"
PY_QUICK="test_selectors test_epoll test_poll test_select test_fileio test_os test_fcntl
test_pty test_asyncio.test_sock_lowlevel test_asyncio.test_streams test_asyncio.test_subprocess"
# test_socketserver needs the 'network' resource although it serves on
# localhost only; it runs alone so no other module gets that resource.
PY_LOCALNET="test_socketserver"
# VSOCK tests block in accept() where the host offers vsock without a peer.
PY_IGNORE='*VSOCK*'
PY_JOBS=4

# python_run LABEL RESULTS [MATCHFILE]
python_run() {
    local label=$1 results=$2 match=${3:-} mods=$PY_MODULES localnet=$PY_LOCALNET
    local dir=$OUT/python/$label extra=()
    mkdir -p "$dir"
    mods="$(py_asyncio) $mods"
    [ "$QUICK" = 1 ] && { mods=$PY_QUICK; localnet=""; }
    if [ -n "$match" ]; then
        extra=(--matchfile "$match")
        # Only the modules the listed tests live in.
        mods=$(sed -n 's/^test\.\(test_asyncio\.test_[a-z0-9_]*\)\..*/\1/p; t
                      s/^test\.\(test_[a-z0-9_]*\)\..*/\1/p' "$match" | sort -u | tr '\n' ' ')
        localnet=$(echo " $mods " | grep -o " $PY_LOCALNET " || true)
        mods=$(echo " $mods " | sed "s/ $PY_LOCALNET / /")
    fi
    rm -f "$dir"/*.xml
    # shellcheck disable=SC2086
    if [ -n "${mods// /}" ]; then
        (cd "$dir" && with "$label" $PY -m test -j$PY_JOBS --timeout 300 -i "$PY_IGNORE" \
            "${extra[@]}" --junit-xml "$dir/main.xml" $mods >"$dir/main.log" 2>&1)
    fi
    if [ -n "${localnet// /}" ]; then
        (cd "$dir" && with "$label" $PY -m test -u network --timeout 300 "${extra[@]}" \
            --junit-xml "$dir/localnet.xml" $localnet >"$dir/localnet.log" 2>&1)
    fi
    $PY "$HERE/junit_results.py" "$dir"/*.xml >"$results"
}

python_setup() { need libpython3.11-testsuite; }

# ---- GLib/GIO and libsoup installed tests -----------------------------------
GLIB=/usr/libexec/installed-tests/glib
SOUP=/usr/libexec/installed-tests/libsoup-3.0
GLIB_TESTS="socket socket-listener socket-service socket-address credentials unix-streams
unix-fd unix gsubprocess spawn-singlethread spawn-multithreaded mainloop timeout contexts task
cancellable file fileutils g-file-info live-g-file readwrite io-stream pollable sleepy-stream
buffered-input-stream buffered-output-stream data-input-stream data-output-stream
converter-stream filter-streams async-close-output-stream async-splice-output-stream
memory-output-stream gdbus-peer gdbus-non-socket io-channel thread-pool gsocketclient-slow"
SOUP_TESTS="connection-test timeout-test unix-socket-test streaming-test
chunk-io-test context-test misc-test websocket-test range-test redirect-test session-test
multithread-test request-body-test continue-test cookies-test auth-test forms-test logger-test"
GLIB_QUICK="socket socket-service unix-streams gsubprocess spawn-singlethread mainloop
pollable fileutils"
SOUP_QUICK="connection-test unix-socket-test"

gtest_setup() { need libglib2.0-tests libsoup-3.0-tests; }

# gtest_run LABEL RESULTS [ONLYFILE]
gtest_run() {
    local label=$1 results=$2 only=${3:-} g=$GLIB_TESTS s=$SOUP_TESTS bins=() b sets=()
    [ "$QUICK" = 1 ] && { g=$GLIB_QUICK; s=$SOUP_QUICK; }
    for b in $g; do bins+=("$GLIB/$b"); done
    for b in $s; do bins+=("$SOUP/$b"); done
    for b in $(settings "$label"); do sets+=(--set "$b"); done
    $PY "$HERE/gtest_run.py" --jobs 3 --timeout 40 --out "$results" --logdir "$OUT/gtest/$label" \
        ${only:+--only "$only"} "${sets[@]}" "${bins[@]}"
}

# ---- fastify's own tests (npm; node's built-in runner) -----------------------
# fastify ships its test files in its npm tarball; they start HTTP/1, HTTP/2
# and HTTPS servers on loopback and talk to them (node's http, undici), stream
# files, and run each file in its own node process (libuv closes descriptors
# with syscall(SYS_close)). Versions pinned; installed once under build/.
NODE_PKGS="fastify@5.12.8 split2@4.2.0 fastify-plugin@6.0.1 undici@7.30.2 proxyquire@2.1.3
ajv@8.20.0 h2url@0.2.0 joi@18.3.2 fast-json-body@1.1.0 fluent-json-schema@6.0.1 yup@1.7.1
http-errors@2.0.1 ajv-merge-patch@5.0.1 ajv-errors@3.0.0 vary@1.1.2 node-forge@1.4.3
ajv-i18n@4.2.0 ajv-formats@3.0.1 JSONStream@1.3.5"
NODE_DIR=${TRANSPARENCY_NODE_DIR:-$(dirname "$OUT")/transparency-npm}
# Type checks and bundler fixtures are not run by node; one file needs eslint.
NODE_EXCLUDE="test/types test/bundler test/build/error-serializer.test.js"
NODE_QUICK='test/(close|listen\.1|http2/plain|https/https|stream\.1|404s)\.test'

node_setup() {
    command -v node >/dev/null && command -v npm >/dev/null ||
        { echo "transparency: node and npm are needed for the node suite" >&2; return 1; }
    node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
        { echo "transparency: fastify 5's tests need node 20 or later" >&2; return 1; }
    [ -f "$NODE_DIR/node_modules/fastify/package.json" ] && return 0
    mkdir -p "$NODE_DIR" && echo '{"name":"sluice-transparency-node","private":true}' >"$NODE_DIR/package.json"
    # shellcheck disable=SC2086
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
        $NODE_PKGS >"$OUT/npm.log" 2>&1) ||
        { echo "transparency: npm install failed (see $OUT/npm.log)" >&2; return 1; }
}

# node_run LABEL RESULTS [ONLYFILE]
node_run() {
    local label=$1 results=$2 only=${3:-} sets=() ex=() x match=()
    for x in $(settings "$label"); do sets+=(--set "$x"); done
    for x in $NODE_EXCLUDE; do ex+=(--exclude "$x"); done
    [ "$QUICK" = 1 ] && match=(--match "$NODE_QUICK")
    $PY "$HERE/node_run.py" --dir "$NODE_DIR/node_modules/fastify" --jobs 3 --timeout 120 \
        --out "$results" --logdir "$OUT/node/$label" ${only:+--only "$only"} \
        "${ex[@]}" "${match[@]}" "${sets[@]}"
}

# ---- driver -----------------------------------------------------------------
start=$(date +%s)
echo "transparency: library $LIB; gates on: ${GATES[*]}"
[ "$QUICK" = 1 ] && echo "transparency: quick subset (TRANSPARENCY_QUICK=1)"
summary=$OUT/summary.txt
: >"$summary"
for suite in $SUITES; do
    if ! declare -F "${suite}_run" >/dev/null; then
        echo "transparency: no suite named $suite" >&2; status=2; continue
    fi
    if ! "${suite}_setup"; then
        echo "== $suite: NOT RUN (packages missing)" | tee -a "$summary"; status=2; continue
    fi
    dir=$OUT/$suite && mkdir -p "$dir" "$OUT/stats/$suite" && chmod 1777 "$OUT/stats/$suite"
    GATES[${#GATES[@]}-1]="SLUICE_STATS=$OUT/stats/$suite/%p.prom"
    for label in "${LABELS[@]}"; do
        t0=$(date +%s)
        "${suite}_run" "$label" "$dir/$label.txt"
        echo "transparency: $suite $label: $(wc -l <"$dir/$label.txt") results in $(( $(date +%s) - t0 ))s"
    done
    cmp=(--suite "$suite" --bare "$dir/bare1.txt" --bare "$dir/bare2.txt"
         --pre "no settings=$dir/plain.txt" --pre "gates on=$dir/gates.txt")
    # Candidates (passed bare twice, not preloaded) get two more preloaded
    # runs: a failure that does not come back is reported as intermittent.
    mkdir -p "$dir/cand"
    $PY "$HERE/compare.py" "${cmp[@]}" --candidates "$dir/cand" >/dev/null
    reruns=()
    for pair in "plain:no settings" "gates:gates on"; do
        label=${pair%%:*} name=${pair#*:}
        ids="$dir/cand/$name.ids"
        [ -s "$ids" ] || continue
        echo "transparency: $suite: $(wc -l <"$ids") candidate regressions ($name), running them again"
        for i in 1 2; do
            "${suite}_run" "${label}-rerun$i" "$dir/$label-rerun$i.txt" "$ids"
            reruns+=(--rerun "$name=$dir/$label-rerun$i.txt")
        done
    done
    $PY "$HERE/compare.py" "${cmp[@]}" "${reruns[@]}" | tee -a "$summary"
    rc=${PIPESTATUS[0]}
    # Proof that the gates were on, not merely set: what they counted.
    cat "$OUT/stats/$suite"/*.prom 2>/dev/null | awk '
        /^sluice_(accepted|fs_operations|held_reads|write_waits)_total / { s[$1] += $2 }
        END { printf "  gates on, summed over %d stats files: accepted %d, fs operations %d, held reads %d, write waits %d\n",
              files, s["sluice_accepted_total"], s["sluice_fs_operations_total"],
              s["sluice_held_reads_total"], s["sluice_write_waits_total"] }
    ' files="$(ls "$OUT/stats/$suite" | wc -l)" | tee -a "$summary"
    [ "$rc" != 0 ] && [ "$status" = 0 ] && status=1
done
echo "transparency: wall time $(( $(date +%s) - start ))s; results and logs in $OUT" | tee -a "$summary"
exit $status
