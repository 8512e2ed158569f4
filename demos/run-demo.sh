#!/bin/sh
# make demo: the overload scenario — an unmodified FastAPI service under a 400 MB
# memory cap, 12 concurrent requests, bare and under sluice. Prints the table and
# writes demos/out/overload.md and demos/out/overload.svg.
# Every process it starts is stopped by its PID, also on Ctrl-C (see driver.py).
set -eu
cd "$(dirname "$0")/.."
py=/usr/bin/python3
if ! "$py" -c 'import fastapi, uvicorn, aiohttp' 2>/dev/null; then
    echo "demo: needs python3-fastapi python3-uvicorn python3-aiohttp (make deps installs them)" >&2
    exit 1
fi
lib=${SLUICE_LIB:-build/libsluice.so}
[ -f "$lib" ] || { echo "demo: $lib is missing; run make first" >&2; exit 1; }
echo "sluice demo: the overload scenario (about 2 minutes)"
exec "$py" demos/overload/driver.py --lib "$lib" --out demos/out "$@"
