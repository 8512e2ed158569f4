#!/usr/bin/python3
"""junit_results.py — turns the JUnit XML that CPython's regrtest writes
(--junit-xml) into the transparency result format: one line per test case,
"ID<TAB>pass|fail|skip<TAB>seconds".

A test module that crashed or timed out leaves no cases in the XML; the
comparison counts a case missing from a run as not passed.
"""
import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = case.get("name")
        tags = {child.tag for child in case}
        if "failure" in tags or "error" in tags:
            status = "fail"
        elif "skipped" in tags:
            status = "skip"
        else:
            status = "pass"
        yield name, status, float(case.get("time") or 0)


def main():
    out = sys.stdout
    for path in sys.argv[1:]:
        try:
            for name, status, secs in outcomes(path):
                out.write("%s\t%s\t%.2f\n" % (name, status, secs))
        except (OSError, ET.ParseError) as e:
            sys.stderr.write("junit_results: %s: %s\n" % (path, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
