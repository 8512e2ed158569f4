"""in_memcap.py LIMIT_MIB NAME -- COMMAND [ARG...]: runs COMMAND in a fresh
memory cgroup of LIMIT_MIB (v1 or v2, through demos/lib/memcap.py), prints
"pid N" once it started, passes SIGTERM on, and when COMMAND ends prints
"exit STATUS oom_killed yes|no peak_mib N" and removes the cgroup. Prints
"no cgroup" and exits 3 where none can be made (the caller skips).
"""
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "demos", "lib"))
import memcap  # noqa: E402


def main():
    limit = int(sys.argv[1]) << 20
    name = "%s-%d" % (sys.argv[2], os.getpid())
    argv = sys.argv[4:]
    cap = memcap.make_cap(name, limit)
    if not isinstance(cap, memcap.CgroupCap):
        print("no cgroup", flush=True)
        return 3
    proc = None
    try:
        proc = subprocess.Popen(argv, preexec_fn=cap.enter)
        print("pid %d" % proc.pid, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
        status = proc.wait()
        print("exit %d oom_killed %s peak_mib %d" % (
            status, "yes" if cap.oom_killed() else "no", cap.peak() >> 20), flush=True)
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        cap.remove()


if __name__ == "__main__":
    sys.exit(main())
