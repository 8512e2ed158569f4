#!/usr/bin/python3
"""node_run.py — runs the test files an npm package ships (node's built-in
runner, node:test) one file per node process, and records each test's outcome
for the transparency comparison.

Each file runs under node directly with the JUnit reporter writing to its own
file: run together, node's reporters drop the file names, and one crashing
file would take others with it. A test's ID is its file and the names of the
tests enclosing it.

Output: one line per test, "FILE > NAME > ...<TAB>pass|fail|skip<TAB>seconds".
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def cases(xml_path, prefix):
    """Yield (id, status, seconds) for every leaf test in node's JUnit XML."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return
    seen = {}

    def walk(elem, names):
        for child in elem:
            if child.tag == "testsuite":
                walk(child, names + [child.get("name", "?")])
            elif child.tag == "testcase":
                ident = " > ".join(names + [child.get("name", "?")])
                seen[ident] = seen.get(ident, 0) + 1
                if seen[ident] > 1:
                    ident += " #%d" % seen[ident]
                tags = {c.tag for c in child}
                if "failure" in tags or "error" in tags or child.get("failure"):
                    status = "fail"
                elif "skipped" in tags:
                    status = "skip"
                else:
                    status = "pass"
                yield ident, status, float(child.get("time") or 0)
            else:
                yield from walk(child, names)
    yield from walk(root, [prefix])


def run_file(pkgdir, rel, env, timeout, workdir, logdir):
    xml = os.path.join(workdir, re.sub(r"[^A-Za-z0-9_.-]", "_", rel) + ".xml")
    cmd = ["node", "--test-reporter=junit", "--test-reporter-destination=" + xml, rel]
    try:
        proc = subprocess.run(cmd, cwd=pkgdir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout,
                              start_new_session=True)
        text, rc = proc.stdout.decode(errors="replace"), proc.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = (e.stdout or b"").decode(errors="replace") + "\n# TIMEOUT\n", -1
    results = list(cases(xml, rel))
    if rc != 0 and logdir:
        with open(os.path.join(logdir, os.path.basename(xml)[:-4] + ".log"), "w") as f:
            f.write("# exit status %d\n%s" % (rc, text))
    if rc != 0 and not any(s == "fail" for _, s, _ in results):
        # The file failed outside any test (crash, timeout, unhandled error).
        results.append((rel + " > (file)", "fail", 0.0))
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="the package's directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("--logdir")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--exclude", action="append", default=[], help="skip files under this path")
    ap.add_argument("--match", help="run only files whose path matches this regular expression")
    ap.add_argument("--set", action="append", default=[],
                    help="NAME=VALUE put in the tests' environment only")
    ap.add_argument("--only", help="file of test IDs: run only the files they are in")
    args = ap.parse_args()

    files = []
    for base, dirs, names in os.walk(os.path.join(args.dir, "test")):
        dirs.sort()
        for n in sorted(names):
            if n.endswith(".test.js") or n.endswith(".test.mjs"):
                rel = os.path.relpath(os.path.join(base, n), args.dir)
                if any(rel.startswith(x) for x in args.exclude):
                    continue
                if args.match is None or re.search(args.match, rel):
                    files.append(rel)
    if args.only:
        with open(args.only) as f:
            wanted = {line.split(" > ")[0] for line in f if line.strip()}
        files = [x for x in files if x in wanted]

    tmp = tempfile.mkdtemp(prefix="sluice-transp-node-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLUICE_") and k != "LD_PRELOAD" and not k.startswith("NODE_")}
    env.update(TMPDIR=tmp, HOME=tmp, NODE_ENV="test")
    for kv in args.set:
        k, _, v = kv.partition("=")
        env[k] = v
    if args.logdir:
        os.makedirs(args.logdir, exist_ok=True)
    workdir = os.path.join(tmp, "xml")
    os.makedirs(workdir)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = [pool.submit(run_file, args.dir, rel, env, args.timeout, workdir, args.logdir)
                for rel in files]
        with open(args.out, "w") as out:
            for fut in futs:
                for ident, status, secs in fut.result():
                    out.write("%s\t%s\t%.2f\n" % (ident.replace("\t", " ").replace("\n", " "),
                                                  status, secs))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
