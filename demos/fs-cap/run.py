"""A host-wide file I/O cap on real tools: `xargs -P8 gzip` over generated files,
bare and with SLUICE_FS_SCOPE=host SLUICE_FS_MAX=2, which makes every gzip process
share one budget of 2 file operations in flight.

Concurrency is observed from outside: each run is repeated under strace, and the
most file reads, writes and opens (on the demo's files) in progress at one instant
is counted from the traced entry and exit times. Wall time comes from the
untraced runs.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
LIB = os.environ.get("SLUICE_LIB") or os.path.join(ROOT, "build", "libsluice.so")
FILES = 16
FILE_BYTES = 6 << 20
PARALLEL = 8
FS_MAX = 2

CALL = re.compile(r"^(\d+\.\d+) (openat|read|write|pread64|pwrite64)\((.*) <(\d+\.\d+)>$")


def make_files(directory):
    # Compressible but not trivial: repeated random words.
    seed = os.urandom(1 << 16).hex().encode()
    block = b"\n".join(seed[i:i + 12] for i in range(0, len(seed), 12))
    for i in range(FILES):
        with open(os.path.join(directory, "part%02d.txt" % i), "wb") as f:
            written = 0
            while written < FILE_BYTES:
                f.write(block)
                written += len(block)


def settings(key):
    return {"SLUICE_FS_SCOPE": "host", "SLUICE_FS_MAX": str(FS_MAX), "SLUICE_FS_KEY": key}


def command(directory):
    files = sorted(glob.glob(os.path.join(directory, "part*.txt")))
    return (["xargs", "-P%d" % PARALLEL, "-n1", "gzip", "-1", "-k", "-f"],
            "\n".join(files) + "\n")


def clean_outputs(directory):
    for path in glob.glob(os.path.join(directory, "*.gz")):
        os.unlink(path)


def timed_run(directory, env_extra):
    clean_outputs(directory)
    argv, stdin = command(directory)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and k != "LD_PRELOAD"}
    env.update(env_extra)
    started = time.monotonic()
    subprocess.run(argv, input=stdin, text=True, env=env, check=True)
    return time.monotonic() - started


def traced_run(directory, env_extra, trace_dir):
    """The most file operations on our files in progress at once, under strace.
    The settings go to the traced programs only (strace -E), never to strace."""
    clean_outputs(directory)
    argv, stdin = command(directory)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and k != "LD_PRELOAD"}
    strace = ["strace", "-f", "-ff", "-qq", "-ttt", "-T", "-y",
              "-e", "trace=openat,read,write,pread64,pwrite64",
              "-o", os.path.join(trace_dir, "t")]
    for key, value in env_extra.items():
        strace += ["-E", "%s=%s" % (key, value)]
    subprocess.run(strace + ["--"] + argv, input=stdin, text=True, env=env, check=True)
    events = []
    ops = 0
    for path in glob.glob(os.path.join(trace_dir, "t.*")):
        with open(path) as f:
            for line in f:
                m = CALL.match(line.rstrip("\n"))
                if not m or directory not in m.group(3):
                    continue
                start, duration = float(m.group(1)), float(m.group(4))
                events.append((start, 1))
                events.append((start + duration, -1))
                ops += 1
        os.unlink(path)
    events.sort(key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, delta in events:
        now += delta
        most = max(most, now)
    return most, ops


def main():
    if shutil.which("strace") is None:
        sys.exit("fs-cap: needs strace (make deps installs it)")
    if not os.path.exists(LIB):
        sys.exit("fs-cap: %s is missing; run make first" % LIB)
    work = tempfile.mkdtemp(prefix="sluice-fs-cap-")
    try:
        data = os.path.join(work, "data")
        traces = os.path.join(work, "traces")
        os.mkdir(data)
        os.mkdir(traces)
        make_files(data)
        key = "demo-fs-cap-%d" % os.getpid()
        sluice = dict(settings(key), LD_PRELOAD=LIB)
        print("xargs -P%d gzip -1 over %d files of %d MiB; %d CPUs." % (
            PARALLEL, FILES, FILE_BYTES >> 20, os.cpu_count()))
        rows = []
        for label, extra in (("bare", {}),
                             ("sluice SLUICE_FS_SCOPE=host SLUICE_FS_MAX=%d" % FS_MAX, sluice)):
            seconds = min(timed_run(data, extra) for _ in range(2))
            most, ops = traced_run(data, extra, traces)
            rows.append((label, most, ops, seconds))
        print("%-44s %28s %12s %14s" % ("run", "file ops in flight (most)", "ops traced",
                                         "wall seconds"))
        for label, most, ops, seconds in rows:
            print("%-44s %28d %12d %14.2f" % (label, most, ops, seconds))
        if rows[1][1] > FS_MAX:
            print("note: more than %d file operations were in flight under sluice: the fs gate "
                  "is not available yet in this build." % FS_MAX)
        else:
            print("Under sluice no more than %d of the %d gzip processes were in a file "
                  "operation at any instant; the others waited for a token, host-wide."
                  % (FS_MAX, PARALLEL))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
