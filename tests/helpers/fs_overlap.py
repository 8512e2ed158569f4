#!/usr/bin/python3
"""fs_overlap.py TRACE PREFIX — the most system calls on files under PREFIX that
were in flight at once, from `strace -f -y -ttt -T` output. A call runs from the
timestamp of its entry line to that timestamp plus its -T duration, or, when
strace split it (<unfinished ...> / <... resumed>), to the resumed line's
timestamp. Also the longest run of consecutive calls (by start) from one
thread in the middle 80% of the calls (served in order: 1 or 2), and the most
calls others made between two of one thread's (served in order: about the
number of other threads). Prints "calls N max M streak S gap G"."""
import re
import sys

trace, prefix = sys.argv[1], "<" + sys.argv[2]
line_re = re.compile(r"(\d+)\s+(\d+\.\d+)\s+(.*)")
dur_re = re.compile(r"<(\d+\.\d+)>\s*$")
pending, spans = {}, []
with open(trace, errors="replace") as f:
    for line in f:
        m = line_re.match(line)
        if not m:
            continue
        pid, ts, rest = m.group(1), float(m.group(2)), m.group(3)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (ts, prefix in rest.split(",", 1)[0])
            continue
        d = dur_re.search(rest)
        if not d:
            continue
        if rest.startswith("<..."):
            start, ours = pending.pop(pid, (ts, False))
            if ours:
                spans.append((start, ts, pid))
        elif prefix in rest.split(",", 1)[0]:
            spans.append((ts, ts + float(d.group(1)), pid))
events = sorted([(a, 1) for a, _, _ in spans] + [(b, -1) for _, b, _ in spans],
                key=lambda e: (e[0], e[1]))
now = most = 0
for _, step in events:
    now += step
    most = max(most, now)
streak = run = 0
last = None
gap = 0
seen = {}
ordered = sorted(spans)
# Only the middle 80%: at the start and the end not every thread is in the race.
for i, (_, _, pid) in enumerate(ordered[len(ordered) // 10: len(ordered) * 9 // 10]):
    run = run + 1 if pid == last else 1
    last = pid
    streak = max(streak, run)
    if pid in seen:
        gap = max(gap, i - seen[pid] - 1)
    seen[pid] = i
print("calls %d max %d streak %d gap %d" % (len(spans), most, streak, gap))
