#!/usr/bin/python3
"""compare.py — compares one suite's outcomes test by test: two bare runs
(which tests pass reliably, which are flaky) against runs with the library
preloaded. Prints the counts and the regressions; exit status 1 if any.

Result files hold "ID<TAB>pass|fail|skip[<TAB>seconds]" lines. A test missing
from a run (its module crashed or timed out) has not passed in it.

  compare.py --suite NAME --bare F1 --bare F2 --pre LABEL=F ... \
             [--rerun LABEL=F ...] [--candidates DIR]

A test that passed in both bare runs and did not pass preloaded is a
candidate. With --candidates the candidates of each label are written to
DIR/LABEL.ids (for the caller to run again) and nothing is judged yet. With
--rerun, a candidate that passed in every rerun of its label counts as
intermittent (reported, not a regression); one that failed again is a
regression. Without reruns every candidate is a regression.
"""
import argparse
import os
import sys


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                res[parts[0]] = parts[1]
    return res


def labelled(items):
    out = []
    for item in items:
        label, _, path = item.partition("=")
        out.append((label, path))
    return out


def counts(res):
    c = {"pass": 0, "fail": 0, "skip": 0}
    for status in res.values():
        c[status] = c.get(status, 0) + 1
    return c


def show(names, limit=40):
    names = sorted(names)
    lines = ["      " + n for n in names[:limit]]
    if len(names) > limit:
        lines.append("      ... and %d more" % (len(names) - limit))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--bare", action="append", required=True)
    ap.add_argument("--pre", action="append", default=[])
    ap.add_argument("--rerun", action="append", default=[])
    ap.add_argument("--candidates")
    args = ap.parse_args()

    bare = [load(p) for p in args.bare]
    pre = [(label, load(p)) for label, p in labelled(args.pre)]
    reruns = {}
    for label, p in labelled(args.rerun):
        reruns.setdefault(label, []).append(load(p) if os.path.exists(p) else {})

    every = set()
    for r in bare + [r for _, r in pre]:
        every |= set(r)
    passed_bare = {t for t in every if all(r.get(t) == "pass" for r in bare)}
    flaky = {t for t in every
             if any(r.get(t) == "pass" for r in bare) and t not in passed_bare}

    print("== %s: %d tests" % (args.suite, len(every)))
    for i, r in enumerate(bare, 1):
        c = counts(r)
        print("  bare run %d:%s %6d run, %6d passed, %4d failed, %5d skipped"
              % (i, " " * 13, len(r), c["pass"], c["fail"], c["skip"]))
    print("  passed bare (both runs): %6d    flaky bare (passed once): %d"
          % (len(passed_bare), len(flaky)))
    if flaky:
        print(show(flaky, 15))

    regressions = {}
    intermittent = {}
    for label, r in pre:
        c = counts(r)
        kept = sum(1 for t in passed_bare if r.get(t) == "pass")
        cand = sorted(t for t in passed_bare if r.get(t) != "pass")
        print("  preloaded, %-14s %6d run, %6d passed, %4d failed, %5d skipped;"
              " %d of the %d passed bare"
              % (label + ":", len(r), c["pass"], c["fail"], c["skip"], kept, len(passed_bare)))
        if args.candidates:
            with open(os.path.join(args.candidates, label + ".ids"), "w") as f:
                f.write("".join(t + "\n" for t in cand))
            continue
        again = reruns.get(label, [])
        if again:
            intermittent[label] = [t for t in cand if all(x.get(t) == "pass" for x in again)]
            regressions[label] = [t for t in cand if t not in intermittent[label]]
        else:
            regressions[label] = cand
        gained = sum(1 for t in every if r.get(t) == "pass" and t not in passed_bare)
        if gained:
            print("      (%d passed here that did not pass in both bare runs)" % gained)

    if args.candidates:
        return 0
    total = sum(len(v) for v in regressions.values())
    for label, ts in intermittent.items():
        if ts:
            print("  failed once %s, then passed %d reruns (intermittent, not counted): %d"
                  % (label, len(reruns[label]), len(ts)))
            print(show(ts))
    for label, ts in regressions.items():
        if ts:
            print("  REGRESSIONS %s (passed bare twice, not preloaded): %d" % (label, len(ts)))
            print(show(ts))
    print("  regressions: %d" % total)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
