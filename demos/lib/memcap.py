"""A memory cap for one server process: a child memory cgroup (v1 or v2), or,
where none can be made, a watchdog that kills the process when its RSS reaches
the budget. The demo says which one it used.
"""
import os
import signal
import time


def _own_cgroup_dirs():
    """Candidate (version, directory) pairs for a child of our own cgroup."""
    v1_path = v2_path = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                v1_path = path
            if hid == "0" and controllers == "":
                v2_path = path
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            root, mountpoint = fields[3], fields[4]
            mounts.append((fstype, mountpoint, root, options))
    candidates = []
    for fstype, mountpoint, root, options in mounts:
        if fstype == "cgroup" and v1_path is not None and "memory" in options.split(","):
            rel = os.path.relpath(v1_path, root) if v1_path.startswith(root) else v1_path
            candidates.append(("v1", os.path.normpath(os.path.join(mountpoint, rel.lstrip("/")))))
    for fstype, mountpoint, root, options in mounts:
        if fstype == "cgroup2" and v2_path is not None:
            rel = os.path.relpath(v2_path, root) if v2_path.startswith(root) else v2_path
            own = os.path.normpath(os.path.join(mountpoint, rel.lstrip("/")))
            candidates.append(("v2", own))
            # Our own v2 cgroup holds processes, so it may not hand the memory
            # controller to children; the hierarchy's top usually does.
            if own != os.path.normpath(mountpoint):
                candidates.append(("v2", os.path.normpath(mountpoint)))
    return candidates


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CgroupCap:
    """A fresh child cgroup per run, so its peak and OOM count are this run's."""
    killed_as = "OOM-killed"
    sample_seconds = 0.1

    def __init__(self, version, directory, limit):
        self.version, self.dir, self.limit = version, directory, limit
        if version == "v1":
            _write(self._f("memory.limit_in_bytes"), str(limit))
            self.describe = "memory cgroup v1 (memory.limit_in_bytes=%d MiB)" % (limit >> 20)
        else:
            _write(self._f("memory.max"), str(limit))
            try:
                _write(self._f("memory.swap.max"), "0")
            except OSError:
                pass
            self.describe = "memory cgroup v2 (memory.max=%d MiB)" % (limit >> 20)
        self.samples_peak = 0

    def _f(self, name):
        return os.path.join(self.dir, name)

    def enter(self):
        """Runs in the child between fork and exec: moves it into the cgroup."""
        _write(self._f("cgroup.procs"), str(os.getpid()))

    def usage(self, pid):
        name = "memory.usage_in_bytes" if self.version == "v1" else "memory.current"
        value = _read_int(self._f(name)) or 0
        self.samples_peak = max(self.samples_peak, value)
        return value

    def peak(self):
        name = "memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"
        value = _read_int(self._f(name))
        return max(value or 0, self.samples_peak)

    def oom_killed(self):
        if self.version == "v1":
            try:
                with open(self._f("memory.oom_control")) as f:
                    for line in f:
                        if line.startswith("oom_kill "):
                            return int(line.split()[1]) > 0
            except OSError:
                return False
            return False
        try:
            with open(self._f("memory.events")) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1]) > 0
        except OSError:
            pass
        return False

    def watch(self, pid):
        """The kernel enforces the cap; nothing to do."""

    def remove(self):
        # The cgroup can only go once its processes have gone.
        for _ in range(50):
            try:
                os.rmdir(self.dir)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


class RssWatchCap:
    """No cgroup could be made: kill the process when its RSS reaches the budget."""
    killed_as = "killed at the budget (RSS watch)"
    sample_seconds = 0.02   # allocations of 65 MB take about 0.2 s

    def __init__(self, limit, reason):
        self.limit = limit
        self.describe = ("NO memory cgroup could be made (%s); watching RSS instead "
                         "and killing the server at %d MiB" % (reason, limit >> 20))
        self.samples_peak = 0
        self.killed = False

    def enter(self):
        pass

    def usage(self, pid):
        try:
            with open("/proc/%d/statm" % pid) as f:
                value = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return 0
        self.samples_peak = max(self.samples_peak, value)
        return value

    def watch(self, pid):
        if not self.killed and self.usage(pid) >= self.limit:
            self.killed = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def peak(self):
        return self.samples_peak

    def oom_killed(self):
        return self.killed

    def remove(self):
        pass


def make_cap(name, limit):
    """The best cap this machine allows; never raises."""
    reasons = []
    for version, parent in _own_cgroup_dirs():
        directory = os.path.join(parent, name)
        try:
            os.mkdir(directory)
        except FileExistsError:
            pass
        except OSError as error:
            reasons.append("%s: %s" % (version, error.strerror))
            continue
        try:
            if version == "v2" and not os.path.exists(os.path.join(directory, "memory.max")):
                raise OSError(0, "memory controller not enabled for child cgroups")
            return CgroupCap(version, directory, limit)
        except OSError as error:
            reasons.append("%s: %s" % (version, error.strerror))
            try:
                os.rmdir(directory)
            except OSError:
                pass
    return RssWatchCap(limit, "; ".join(reasons) or "no cgroup file system mounted")
