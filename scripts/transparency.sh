#!/bin/bash
# transparency.sh — runs the test suites that real projects ship, bare and with
# libsluice.so preloaded, and compares their outcomes test by test. Everything
# that passes bare (twice, so flaky tests are known) must pass preloaded: once
# with no settings at all, once with every gate on but never binding.
#
# Suites (Debian packages, installed here when missing and run as root):
#   python  CPython's own tests (libpython3.11-testsuite): sockets, asyncio,
#           selectors, subprocess, os, file I/O, signals, servers
#   gtest   GLib/GIO's installed tests (libglib2.0-tests: sockets, main loop,
#           subprocesses, files, D-Bus peer) and libsoup's (libsoup-3.0-tests:
#           an HTTP server and client, websockets, timeouts)
#
# Environment: TRANSPARENCY_QUICK=1 runs a subset (about 2 minutes);
# TRANSPARENCY_SUITES="python gtest" picks suites; TRANSPARENCY_OUT is where
# results and logs go (default build/transparency); SLUICE_LIB the library.
# Exit status: 0 no regression, 1 regressions, 2 a suite could not be run.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/tests/transparency
LIB=${SLUICE_LIB:-$ROOT/build/libsluice.so}
OUT=${TRANSPARENCY_OUT:-$ROOT/build/transparency}
QUICK=${TRANSPARENCY_QUICK:-0}
SUITES=${TRANSPARENCY_SUITES:-python gtest}
PY=/usr/bin/python3

# Bare means bare: nothing of sluice in the environment we start from.
unset LD_PRELOAD
for v in $(env | sed -n 's/^\(SLUICE_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

[ -r "$LIB" ] || { echo "transparency: $LIB not built (run make)" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT/stats" && chmod 1777 "$OUT/stats"

# Every gate on, none binding: limits far above what any test reaches.
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
PY_MODULES="test_socket test_asyncio test_selectors test_subprocess test_os test_fileio
test_poll test_epoll test_select test_io test_signal test_eintr test_ssl test_httplib
test_urllib2_localnet test_ftplib test_smtplib test_pty test_shutil test_tempfile test_mmap
test_fcntl test_threading test_file test_pipes test_telnetlib test_asyncore test_asynchat
test_httpservers test_xmlrpc test_wsgiref test_imaplib test_poplib test_logging"
PY_QUICK="test_socket test_selectors test_epoll test_poll test_select test_fileio
test_subprocess test_os test_pty test_fcntl"
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
    [ "$QUICK" = 1 ] && { mods=$PY_QUICK; localnet=""; }
    if [ -n "$match" ]; then
        extra=(--matchfile "$match")
        # Only the modules the listed tests live in.
        mods=$(sed -n 's/^test\.\(test_[a-z0-9_]*\)\..*/\1/p' "$match" | sort -u | tr '\n' ' ')
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
SOUP_QUICK="connection-test timeout-test"

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
    dir=$OUT/$suite && mkdir -p "$dir"
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
    [ "$rc" != 0 ] && [ "$status" = 0 ] && status=1
done
echo "transparency: wall time $(( $(date +%s) - start ))s; results and logs in $OUT" | tee -a "$summary"
exit $status
