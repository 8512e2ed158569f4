#!/bin/sh
# The bad-default asyncio echo server and a client that does not read: the
# server's memory bare, and with SLUICE_WRITE_HIGH=64K SLUICE_HOLD_READS=1.
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 demos/echo-memory/run.py "$@"
