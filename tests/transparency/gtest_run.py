#!/usr/bin/python3
"""gtest_run.py — runs GLib-style installed tests (GTest binaries) one test
case per process and records each outcome, for the transparency comparison.

GTest aborts a binary at its first failed assertion, so one failure would hide
every later case; running each path alone (-p PATH) keeps outcomes independent.
Each case runs as an unprivileged user: as root some cases write where they
expect to be refused (one creates directories under /usr).

Output: one line per case, "BINARY:PATH<TAB>pass|fail|skip<TAB>seconds".
Failing cases leave their output in LOGDIR.
"""
import argparse
import concurrent.futures
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time

OK = re.compile(r"^ok \d+ (\S+)(.*)$", re.M)


def drop_privileges(user):
    """Popen arguments that run a child as USER (only when we are root)."""
    if os.getuid() != 0 or not user:
        return {}
    pw = pwd.getpwnam(user)
    return dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])


def list_cases(binary, env, priv):
    out = subprocess.run([binary, "-l"], env=env, capture_output=True, text=True,
                         timeout=60, **priv, cwd=env["HOME"])
    return [line.strip() for line in out.stdout.splitlines() if line.startswith("/")]


def run_case(binary, path, env, priv, timeout, logdir):
    name = os.path.basename(binary) + ":" + path
    # A home of its own per case: some cases leave fixed names behind
    # (live-g-file's testdir_live-g-file), which would fail the next one.
    home = tempfile.mkdtemp(prefix="case-", dir=env["HOME"])
    if priv:
        os.chown(home, priv["user"], priv["group"])
    env = dict(env, HOME=home, TMPDIR=home, XDG_RUNTIME_DIR=home)
    start = time.monotonic()
    try:
        proc = subprocess.run([binary, "-p", path, "--tap"], env=env, cwd=home,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, **priv,
                              start_new_session=True)
        text = proc.stdout.decode(errors="replace")
        rc = proc.returncode
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode(errors="replace") + "\n# TIMEOUT after %ds\n" % timeout
        rc = -1
    secs = time.monotonic() - start
    shutil.rmtree(home, ignore_errors=True)
    status = "fail"
    for m in OK.finditer(text):
        if m.group(1) == path:
            status = "skip" if "# SKIP" in m.group(2) else "pass"
    if rc != 0:
        status = "fail"
    if status == "fail" and logdir:
        with open(os.path.join(logdir, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".log"), "w") as f:
            f.write("# exit status %d\n" % rc)
            f.write(text)
    return name, status, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--logdir")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=90)
    ap.add_argument("--user", default="nobody")
    ap.add_argument("--set", action="append", default=[],
                    help="NAME=VALUE put in the tests' environment only")
    ap.add_argument("--only", help="file of BINARY:PATH names to run (default: all)")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()

    priv = drop_privileges(args.user)
    home = tempfile.mkdtemp(prefix="sluice-transp-gtest-")
    if priv:
        os.chown(home, priv["user"], priv["group"])
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLUICE_") and k != "LD_PRELOAD"}
    env.update(HOME=home, TMPDIR=home, XDG_RUNTIME_DIR=home, LC_ALL="C.UTF-8",
               G_DEBUG="", G_MESSAGES_DEBUG="")
    bare_env = dict(env)
    for kv in args.set:
        k, _, v = kv.partition("=")
        env[k] = v
    if args.logdir:
        os.makedirs(args.logdir, exist_ok=True)
    only = None
    if args.only:
        with open(args.only) as f:
            only = {line.strip() for line in f if line.strip()}

    jobs = []
    for binary in args.binaries:
        # Listing is not under test: list bare so both runs see the same cases.
        for path in list_cases(binary, bare_env, priv):
            name = os.path.basename(binary) + ":" + path
            if only is None or name in only:
                jobs.append((binary, path))

    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = [pool.submit(run_case, b, p, env, priv, args.timeout, args.logdir) for b, p in jobs]
        for fut in futs:
            results.append(fut.result())
    with open(args.out, "w") as f:
        for name, status, secs in results:
            f.write("%s\t%s\t%.2f\n" % (name, status, secs))
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
