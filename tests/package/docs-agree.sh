#!/bin/sh
# docs-agree.sh SOURCE_DIR LAUNCHER — the launcher's --help, sluice(1), the
# README and the bash completion name the same flags; each flag sets the same
# variable in the launcher, sluice(1) and the README; the library's parser,
# sluice(7) and the README name the same variables; the stats the library
# writes are the ones sluice(7) lists; and mandoc finds nothing to warn about.
# shellcheck disable=SC2016  # the backquotes in sed patterns are the README's
set -eu
src=$1
launcher=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0

same() {
    # $1 what, $2 and $3 the files of two sources (one item a line), $4 $5 their names
    sort -u "$2" > "$work/a"
    sort -u "$3" > "$work/b"
    if ! cmp -s "$work/a" "$work/b"; then
        echo "$1: $4 and $5 differ (< only in $4, > only in $5):"
        diff "$work/a" "$work/b" | grep '^[<>]'
        status=1
    fi
    [ -s "$work/a" ] || { echo "$1: none found in $4"; status=1; }
}

readme_launcher=$(sed -n '/^## The launcher/,/^## Running as a service/p' "$src/README.md")

# Flags.
"$launcher" --help | grep -o -- '--[a-z][a-z-]*' > "$work/help.flags"
grep -o 'Fl \\-[a-z\\-]*' "$src/man/sluice.1" | sed 's/^Fl /-/; s/\\-/-/g' | grep -- '^--.' > "$work/man.flags"
printf '%s\n' "$readme_launcher" | grep -o -- '--[a-z][a-z-]*' > "$work/readme.flags"
sed -n '/^_sluice_flags="/,/"$/p' "$src/scripts/sluice-completion.bash" | tr -d '"' |
    sed 's/^_sluice_flags=//' | tr ' ' '\n' | grep -- '^--' > "$work/completion.flags"
same "flags" "$work/help.flags" "$work/man.flags" "--help" "sluice(1)"
same "flags" "$work/help.flags" "$work/readme.flags" "--help" "README (The launcher)"
same "flags" "$work/help.flags" "$work/completion.flags" "--help" "bash completion"

# Which variable each flag sets.
sed -n -e 's/^ *\(--[a-z-]*\)) var=\(SLUICE_[A-Z_]*\) ;;$/\1 \2/p' \
    -e 's/^ *\(--[a-z-]*\)) add \(SLUICE_[A-Z_]*\) 1 .*/\1 \2/p' "$src/scripts/sluice" > "$work/launcher.map"
awk '/^\.It Fl \\-/ { flag = $3; gsub(/\\-/, "-", flag); flag = "-" flag; next }
     /^\.(It|El|Ss|Sh)/ { flag = "" }
     flag != "" && match($0, /Ev SLUICE_[A-Z_]+/) {
         print flag, substr($0, RSTART + 3, RLENGTH - 3); flag = "" }' "$src/man/sluice.1" > "$work/man.map"
sed -n 's/^| `\(SLUICE_[A-Z_]*\)` | `\(--[a-z-]*\).*/\2 \1/p' "$src/README.md" > "$work/readme.map"
same "flag to variable" "$work/launcher.map" "$work/man.map" "the launcher" "sluice(1)"
same "flag to variable" "$work/launcher.map" "$work/readme.map" "the launcher" "README (Settings)"

# Variables.
sed -n 's/^ *[SD]("\(SLUICE_[A-Z_]*\)".*/\1/p' "$src/shim/config.c" > "$work/parser.vars"
sed -n 's/^\.It Ev \(SLUICE_[A-Z_]*\).*/\1/p' "$src/man/sluice.7" > "$work/man.vars"
sed -n 's/^| `\(SLUICE_[A-Z_]*\)` |.*/\1/p' "$src/README.md" > "$work/readme.vars"
same "variables" "$work/parser.vars" "$work/man.vars" "shim/config.c" "sluice(7)"
same "variables" "$work/parser.vars" "$work/readme.vars" "shim/config.c" "README (Settings)"

# Statistics.
sed -n 's/.*[XH]([a-z_]*, *"\(sluice_[a-z_]*\)".*/\1/p' "$src/shim/stats.h" > "$work/lib.stats"
sed -n 's/^#define HISTOGRAM "\(sluice_[a-z_]*\)".*/\1/p' "$src/shim/queue_stats.c" >> "$work/lib.stats"
sed -n 's/^\.It Li \(sluice_[a-z_]*\)\( , \(sluice_[a-z_]*\)\)\{0,1\}.*/\1\n\3/p' "$src/man/sluice.7" | grep . > "$work/man.stats"
same "statistics" "$work/lib.stats" "$work/man.stats" "shim/stats.h" "sluice(7)"

# The man pages themselves.
for page in "$src/man/sluice.1" "$src/man/sluice.7"; do
    if ! lint=$(mandoc -Tlint -W warning "$page" 2>&1) || [ -n "$lint" ]; then
        echo "mandoc -Tlint: $lint"
        status=1
    fi
done
exit "$status"
