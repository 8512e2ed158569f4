#!/bin/sh
# deb.sh DIR — checks the Debian package `make deb` left in DIR: lintian finds
# no error or warning; installed, the launcher governs a real program from
# /usr/bin, the man pages render, pkg-config and bash completion find theirs;
# removed with `dpkg -r`, nothing of it is left. Run as root (it installs).
set -eu
dir=$1
deb=$(ls "$dir"/sluice_*.deb | head -n 1)
changes=$(ls "$dir"/sluice_*.changes | head -n 1)
version=$(dpkg-deb -f "$deb" Version)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-deb.XXXXXX")
installed=0
fail() { echo "package-check: FAIL: $*" >&2; exit 1; }
cleanup() {
    [ "$installed" = 0 ] || dpkg -P sluice >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# dpkg's lock may be held by another installer for a while.
with_dpkg() {
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do
        if "$@" > "$work/dpkg.log" 2>&1; then return 0; fi
        grep -q 'lock' "$work/dpkg.log" || { cat "$work/dpkg.log" >&2; return 1; }
        sleep 5
    done
    cat "$work/dpkg.log" >&2
    return 1
}

[ "$(id -u)" = 0 ] || fail "run as root: it installs the package"
[ "$version" = "$(sed -n 's/^#define SLUICE_VERSION "\(.*\)"/\1/p' include/sluice.h)" ] ||
    fail "package version $version differs from include/sluice.h"
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'ok installed'; then
    fail "a sluice package is already installed; remove it first"
fi

echo "package-check: lintian"
lintian --fail-on error,warning "$changes" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$changes" >/dev/null 2>&1 || fail "lintian reports errors or warnings"

echo "package-check: install $deb"
with_dpkg dpkg -i "$deb" || fail "dpkg -i"
installed=1
dpkg -L sluice | sort > "$work/files"

lib=/usr/lib/$ma/sluice/libsluice.so
[ -f "$lib" ] || fail "$lib missing"
[ "$(/usr/bin/sluice --version)" = "sluice $version" ] || fail "sluice --version"
/usr/bin/sluice --print-env --conn-max 4 | grep -qx "LD_PRELOAD=$lib" || fail "--print-env names $lib"

# A real program from /usr/bin under the installed launcher: the file gate
# counts its reads and the output is the bare program's.
head -c 3000000 /dev/urandom > "$work/data"
bare=$(/usr/bin/sha256sum < "$work/data")
governed=$(/usr/bin/sluice --fs-max 2 --stats "$work/stats.prom" -- /usr/bin/sha256sum < "$work/data")
[ "$bare" = "$governed" ] || fail "sha256sum under sluice gave $governed, bare $bare"
grep -qx 'sluice_fs_tokens_limit 2' "$work/stats.prom" || fail "no fs limit in the stats: $(cat "$work/stats.prom")"
/usr/bin/sluice -- /usr/bin/env | grep -qx "LD_PRELOAD=$lib" || fail "the launcher does not preload $lib"
/usr/bin/sluice --check -- /usr/bin/sha256sum >/dev/null || fail "--check on sha256sum"

# The man pages, pkg-config and bash completion.
MANPAGER="cat" man 1 sluice 2>/dev/null | grep -q -- 'print-env' || fail "man 1 sluice"
MANPAGER="cat" man 7 sluice 2>/dev/null | grep -q 'SLUICE_CONN_MAX' || fail "man 7 sluice"
[ "$(pkg-config --modversion sluice)" = "$version" ] || fail "pkg-config --modversion"
[ "$(pkg-config --variable=preload sluice)" = "$lib" ] || fail "pkg-config --variable=preload"
cat > "$work/gauges.c" <<'C'
#include <dlfcn.h>
#include <stdio.h>
#include <sluice.h>
int main(void)
{
    int (*snap)(struct sluice_gauges *, size_t) =
        (int (*)(struct sluice_gauges *, size_t)) dlsym(RTLD_DEFAULT, "sluice_gauges");
    struct sluice_gauges g;
    if (snap == NULL || snap(&g, sizeof g) != 0)
        return 1;
    printf("%u\n", g.conn_limit);
    return 0;
}
C
# shellcheck disable=SC2046
cc $(pkg-config --cflags sluice) -o "$work/gauges" "$work/gauges.c" -ldl || fail "compiling against sluice.pc"
[ "$(LD_PRELOAD=$(pkg-config --variable=preload sluice) SLUICE_CONN_MAX=3 "$work/gauges")" = 3 ] ||
    fail "a program built with sluice.pc does not see the preloaded gauges"
bash -c '. /usr/share/bash-completion/completions/sluice && COMP_WORDS=(sluice --conn-mode "") COMP_CWORD=2 && _sluice && [ "${COMPREPLY[*]}" = "pause shed" ]' ||
    fail "bash completion"
[ -f /usr/share/doc/sluice/README.md.gz ] || fail "README not in /usr/share/doc/sluice"

echo "package-check: remove"
with_dpkg dpkg -r sluice || fail "dpkg -r"
left=""
while IFS= read -r f; do
    [ -d "$f" ] && continue
    [ -e "$f" ] || [ -L "$f" ] || continue
    left="$left $f"
done < "$work/files"
[ -z "$left" ] || fail "left behind after dpkg -r:$left"
for d in "/usr/lib/$ma/sluice" /usr/share/doc/sluice; do
    [ ! -e "$d" ] || fail "$d left behind"
done
! command -v sluice >/dev/null 2>&1 || [ "$(command -v sluice)" != /usr/bin/sluice ] || fail "/usr/bin/sluice left"
with_dpkg dpkg -P sluice || fail "dpkg -P"
installed=0
echo "package-check: ok ($(wc -l < "$work/files") paths installed and removed)"
