#!/bin/sh
# A host-wide file I/O cap on a real tool: xargs -P8 gzip, bare and with
# SLUICE_FS_SCOPE=host SLUICE_FS_MAX=2; prints concurrency and wall time.
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 demos/fs-cap/run.py "$@"
