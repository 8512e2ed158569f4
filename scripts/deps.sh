#!/bin/sh
# Installs what building and testing sluice needs on Debian, when it is missing.
# As root it runs apt-get; otherwise it says exactly what to install.
set -eu
# --headers HEADER=PACKAGE...: check only that the compiler ($CC) finds each
# header; if not, one line names the packages to install (nothing is
# installed). `make` runs this before it compiles anything.
if [ "${1:-}" = "--headers" ]; then
    shift
    missing=""
    for pair in "$@"; do
        # shellcheck disable=SC2086
        printf '#include <%s>\n' "${pair%%=*}" | ${CC:-cc} -E -x c - >/dev/null 2>&1 ||
            missing="$missing ${pair#*=}"
    done
    [ -z "$missing" ] && exit 0
    echo "sluice: cannot build: missing headers; install:$missing (apt-get install -y --no-install-recommends$missing, or 'make deps' as root installs everything)" >&2
    exit 1
fi
pkgs="build-essential libcriterion-dev libbsd-dev libffi-dev pkg-config iproute2 procps psmisc
strace valgrind python3 redis-server redis-tools nginx-light curl wrk
python3-fastapi python3-uvicorn python3-aiohttp clang
debhelper dpkg-dev fakeroot lintian mandoc
apache2
nodejs openjdk-17-jdk-headless ruby ruby-webrick puma lighttpd haproxy memcached python3-uvloop
gunicorn php-fpm postgresql"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "sluice: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "sluice: missing packages; run as root:" >&2
    echo "  apt-get install -y$missing" >&2
    exit 1
fi
