#!/bin/sh
# Builds and runs every libFuzzer target in tests/fuzz for FUZZ_SECONDS each
# (default 60; CI runs a short pass). New inputs go to a scratch corpus; the
# committed corpus in tests/fuzz/corpus/TARGET is only read.
set -eu
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p "$out"
status=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    target=${name#fuzz_}
    clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
        -Ishim -Iinclude -o "$out/$name" "$src" $(cat "tests/fuzz/$name.sources" 2>/dev/null || echo shim/parse.c) -lbsd
    mkdir -p "$out/corpus-$target"
    echo "fuzz: $name for ${seconds}s"
    if ! "$out/$name" -max_total_time="$seconds" -print_final_stats=1 \
            "$out/corpus-$target" "tests/fuzz/corpus/$target" 2>"$out/$name.log"; then
        status=1
        tail -30 "$out/$name.log"
    fi
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$out/$name.log" | tail -2 || true
done
exit $status
