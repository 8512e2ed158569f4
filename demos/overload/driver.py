"""The headline demo: the overload scenario, bare and under sluice.

Each row starts the FastAPI service (app.py) under uvicorn inside a fresh 400 MB
memory cap, sends it 12 concurrent requests with client.py, samples the server's
memory every 100 ms, and records: requests served of 12, whether the server
survived, its peak memory, and the wall time. Prints the table, writes it as
Markdown, and draws the memory over time as an SVG.

    python3 driver.py [--lib build/libsluice.so] [--out demos/out] [--only N,...]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import memcap  # noqa: E402
import svgchart  # noqa: E402

PYTHON = "/usr/bin/python3"
LIMIT = 400 << 20          # Docker's --memory=200m with its default equal swap
CONCURRENCY = 12
ROW_DEADLINE = 75          # seconds; the slowest row (sync) takes about 30

NOPROTECT = "async_endpoint_without_backpressure"
PAUSE = {"SLUICE_CONN_MAX": "4"}
SHED = {"SLUICE_CONN_MAX": "4", "SLUICE_CONN_MODE": "shed", "SLUICE_SHED": "http429"}
AUTO = {"SLUICE_CONN_MAX": "auto", "SLUICE_LOG": os.environ.get("DEMO_AUTO_LOG", "warn")}
ROWS = [
    # (label, endpoint, sluice settings or None for bare, gate the row needs,
    #  extra client flags)
    ("sync_endpoint (def: runs in a thread pool)", "sync_endpoint", None, None, []),
    ("blocking_endpoint (sleep blocks the loop)", "blocking_endpoint", None, None, []),
    ("async, no backpressure", NOPROTECT, None, None, []),
    ("async, hand-written semaphore, 429", "async_endpoint_with_backpressure", None, None, []),
    ("async, no backpressure + sluice pause", NOPROTECT, PAUSE, "conn", []),
    ("async, no backpressure + sluice shed 429", NOPROTECT, SHED, "conn", []),
    ("async, no backpressure + sluice pause, idle free",
     NOPROTECT, dict(PAUSE, SLUICE_CONN_IDLE="free"), "idle", []),
    ("async, no backpressure + sluice shed 429, idle free",
     NOPROTECT, dict(SHED, SLUICE_CONN_IDLE="free"), "idle", []),
    # The diagnosis for the pause row's waves: the same run with a client that
    # closes each connection, so that no idle keep-alive connection holds a slot.
    ("same, sluice pause, client without keep-alive",
     NOPROTECT, PAUSE, "conn", ["--no-keepalive"]),
    # No number chosen: sluice finds the limit from the cgroup's memory, the
    # service times and pressure (SLUICE_CONN_MAX=auto).
    ("async, no backpressure + sluice auto", NOPROTECT, AUTO, "auto", []),
    ("same, sluice auto, 800 MB cap, 24 requests", NOPROTECT, AUTO, "auto", [],
     {"limit": 800 << 20, "concurrency": 24}),
]

started_pids = []
caps = []
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def spawn(argv, **kwargs):
    """Popen with the stop signals held off, so that an interrupt can never fall
    between the fork and the moment the PID is on the list to stop."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        proc = subprocess.Popen(argv, **kwargs)
        started_pids.append(proc)
        return proc
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def stop(proc, grace=3.0):
    """Stops a process this script started, by its PID."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def probe(kind, lib):
    """Whether the built library's gate works yet (see lib/probe.py)."""
    if not lib:
        return False
    env = dict(os.environ, LD_PRELOAD=lib, SLUICE_CONN_MAX="1")
    if kind == "auto":
        env["SLUICE_CONN_MAX"] = "auto:1"
        kind = "conn"
    if kind == "idle":
        env["SLUICE_CONN_IDLE"] = "free"
        if not probe("conn", lib):
            return False
    proc = spawn([PYTHON, os.path.join(HERE, "..", "lib", "probe.py"), kind],
                 env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out = proc.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        return False
    finally:
        stop(proc, grace=0.5)
    return out.strip() == "yes"


def read_limit(path):
    """The limit sluice keeps now, from its stats file (None if not yet there)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("sluice_auto_limit "):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_row(index, label, endpoint, settings, client_flags, lib, log, use_cgroup, shape):
    limit = shape.get("limit", LIMIT)
    concurrency = shape.get("concurrency", CONCURRENCY)
    if use_cgroup:
        cap = memcap.make_cap("sluice-demo-%d-%d" % (os.getpid(), index), limit)
    else:
        cap = memcap.RssWatchCap(limit, "--no-cgroup")
    caps.append(cap)
    port = free_port()
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    for key in list(env):
        if key.startswith("SLUICE_"):
            del env[key]
    stats_path = None
    if settings:
        env.update(settings)
        env["LD_PRELOAD"] = lib
        if settings.get("SLUICE_CONN_MAX", "").startswith("auto"):
            stats_path = os.path.join(os.path.abspath(os.path.dirname(log.name)),
                                      "auto-%d-%d.prom" % (os.getpid(), index))
            env["SLUICE_STATS"] = stats_path
            env["SLUICE_STATS_INTERVAL"] = "100ms"
    server = client = None
    samples = []
    limits = []
    try:
        server = spawn(
            [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=HERE, env=env, stdout=log, stderr=log,
            preexec_fn=cap.enter, start_new_session=True)
        if not wait_listening(port, server):
            return dict(label=label, served=0, survived=False, peak=cap.peak(),
                        seconds=0.0, samples=samples, note="server did not start",
                        cap=cap.describe, requests=[], limits=limits, cap_bytes=limit,
                        concurrency=concurrency)
        baseline = cap.usage(server.pid)
        client = spawn(
            [PYTHON, os.path.join(HERE, "client.py"),
             "http://127.0.0.1:%d/%s" % (port, endpoint),
             "--concurrency", str(concurrency)] + client_flags,
            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        t0 = time.monotonic()
        died_at = None
        while client.poll() is None and time.monotonic() - t0 < ROW_DEADLINE:
            now = time.monotonic() - t0
            if server.poll() is None:
                cap.watch(server.pid)
                samples.append((now, cap.usage(server.pid)))
                if stats_path:
                    lim = read_limit(stats_path)
                    if lim is not None:
                        limits.append((now, lim))
            elif died_at is None:
                # Killed between two samples: the cgroup's own peak shows where.
                died_at = now
                samples.append((now, cap.peak()))
            time.sleep(cap.sample_seconds)
        if client.poll() is None:
            stop(client)
        output = client.stdout.read()
        survived = server.poll() is None and not cap.oom_killed()
        if died_at is None and not survived:
            died_at = time.monotonic() - t0
        try:
            result = json.loads(output)
        except ValueError:
            result = {"served": 0, "seconds": time.monotonic() - t0, "requests": []}
        attempts = sum(r["attempts"] for r in result["requests"])
        return dict(label=label, served=result["served"], survived=survived,
                    killed_as=cap.killed_as,
                    peak=cap.peak(), baseline=baseline, seconds=result["seconds"],
                    samples=samples, died_at=died_at, attempts=attempts,
                    requests=result["requests"], cap=cap.describe, note="",
                    limits=limits, cap_bytes=limit, concurrency=concurrency)
    finally:
        stop(client)
        stop(server)
        cap.remove()
        if stats_path:
            try:
                os.unlink(stats_path)
            except OSError:
                pass


def mib(value):
    return "%d MiB" % round(value / (1 << 20))


def table(rows, markdown):
    head = ["run", "served", "server survived", "peak memory",
            "wall seconds", "attempts", "limit"]
    lines = []
    body = []
    for r in rows:
        survived = "yes" if r["survived"] else "no: " + r.get("killed_as", "OOM-killed")
        if r.get("note"):
            survived += " (%s)" % r["note"]
        label = r["label"] + (" *" if r.get("missing") else "")
        lims = [v for _, v in r.get("limits", [])]
        settings = r.get("settings") or {}
        limit = ("auto %d-%d" % (min(lims), max(lims)) if lims else "auto") \
            if settings.get("SLUICE_CONN_MAX", "").startswith("auto") \
            else settings.get("SLUICE_CONN_MAX", "")
        if r.get("cap_bytes", LIMIT) != LIMIT:
            label += " [cap %s]" % mib(r["cap_bytes"])
        body.append([label, "%d/%d" % (r["served"], r.get("concurrency", CONCURRENCY)), survived,
                     mib(r["peak"]), "%.1f" % r["seconds"], str(r.get("attempts", "")), limit])
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "--:" for i in range(len(head))) + "|")
        for b in body:
            lines.append("| " + " | ".join(b) + " |")
    else:
        widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
        fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths)))
        lines.append(fmt(head))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(fmt(b) for b in body)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", default="")
    parser.add_argument("--out", default=os.path.join(HERE, "..", "out"))
    parser.add_argument("--only", default="", help="row numbers, 1-based, comma-separated")
    parser.add_argument("--no-cgroup", action="store_true",
                        help="watch RSS instead of making a memory cgroup (what happens "
                             "where none can be made)")
    args = parser.parse_args()
    lib = os.path.abspath(args.lib) if args.lib and os.path.exists(args.lib) else ""
    os.makedirs(args.out, exist_ok=True)
    wanted = {int(x) for x in args.only.split(",") if x}

    load_at_start = os.getloadavg()[0]
    if load_at_start > os.cpu_count():
        print("  (the machine is busy: load average %.1f on %d CPUs; times will be longer)"
              % (load_at_start, os.cpu_count()), flush=True)
    gates = {"conn": probe("conn", lib), "idle": probe("idle", lib), "auto": probe("auto", lib)}
    rows, notes = [], []
    log_path = os.path.join(args.out, "overload-server.log")
    started = time.monotonic()
    with open(log_path, "w") as log:
        for index, (label, endpoint, settings, gate, client_flags, *more) in enumerate(ROWS, 1):
            shape = more[0] if more else {}
            if wanted and index not in wanted:
                continue
            missing = ""
            if gate and not gates[gate]:
                # Run it all the same (it proves the library loads into the
                # server), but say plainly that the gate was not there.
                if gate == "conn":
                    missing = "connection gate not available yet"
                    effect = "the server without that protection"
                elif gate == "auto":
                    missing = "SLUICE_CONN_MAX=auto not available yet"
                    effect = "the server without that protection"
                else:
                    missing = "SLUICE_CONN_IDLE=free not available yet"
                    effect = "the same mode with idle connections holding their slots"
                notes.append("* %s: %s in this build; the row shows %s."
                             % (label, missing, effect))
            log.write("=== %s\n" % label)
            log.flush()
            print("  %-55s" % label, end="", flush=True)
            row = run_row(index, label, endpoint, settings, client_flags, lib, log,
                          not args.no_cgroup, shape)
            row["settings"] = settings
            row["client_flags"] = client_flags
            row["missing"] = missing
            rows.append(row)
            print(" %2d/%d served, %s, peak %s, %.1f s%s" % (
                row["served"], row["concurrency"], "alive" if row["survived"] else row["killed_as"],
                mib(row["peak"]), row["seconds"],
                "  [%s]" % missing if missing else ""), flush=True)
    total = time.monotonic() - started

    cap_text = rows[0]["cap"] if rows else "no rows run"
    print()
    print(table(rows, markdown=False))
    for s in notes:
        print("  " + s)
    print()
    print("Memory cap: %s; %d concurrent requests, retries on 429/503 up to 10 times 0.3 s apart."
          % (cap_text, CONCURRENCY))

    md = os.path.join(args.out, "overload.md")
    with open(md, "w") as f:
        f.write("# The overload scenario, bare and under sluice\n\n")
        f.write("Measured %s on %s (%d CPUs, load average %.1f when it began); memory cap: %s.\n"
                "%d concurrent requests; the client retries on 429/503 up to 10 times, 0.3 s apart.\n"
                "Each request holds about 65 MB for 2 s and allocates 65 MB more before it answers.\n\n"
                % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), socket.gethostname(),
                   os.cpu_count(), load_at_start, cap_text, CONCURRENCY))
        f.write(table(rows, markdown=True) + "\n\n")
        for s in notes:
            f.write("%s\n\n" % s)
        f.write("Bare rows run the service as it is; sluice rows run the same, unmodified "
                "service with the library preloaded:\n\n")
        for r in rows:
            if r.get("settings"):
                f.write("- %s: `%s LD_PRELOAD=build/libsluice.so python3 -m uvicorn app:app`%s\n"
                        % (r["label"], " ".join("%s=%s" % kv for kv in r["settings"].items()),
                           "; client: `client.py %s`" % " ".join(r["client_flags"])
                           if r["client_flags"] else ""))
        by_label = {r["label"]: r for r in rows}
        kept = by_label.get("async, no backpressure + sluice pause")
        closed = by_label.get("same, sluice pause, client without keep-alive")
        freed = by_label.get("async, no backpressure + sluice pause, idle free")
        if kept and closed and not kept.get("missing") and not closed.get("missing"):
            f.write("\nIdle keep-alive connections and pause mode: %.1f s with a keep-alive "
                    "client, %.1f s with a client that closes each connection. After its "
                    "answer, a keep-alive connection stays open and idle (uvicorn keeps it "
                    "5 s) and holds its slot, so requests are served in waves."
                    % (kept["seconds"], closed["seconds"]))
            if freed and not freed.get("missing"):
                f.write(" With SLUICE_CONN_IDLE=free an idle connection gives its slot back: "
                        "%.1f s with the keep-alive client." % freed["seconds"])
            f.write("\n")
        f.write("\nWhen each served request finished (seconds after the 12 were sent):\n\n")
        for r in rows:
            done = sorted(q["seconds"] for q in r["requests"] if q["served"])
            f.write("- %s: %s\n" % (r["label"], " ".join("%.1f" % s for s in done) or "none"))
        f.write("\n![server memory over time](overload.svg)\n")
    svg = os.path.join(args.out, "overload.svg")
    svgchart.write(svg, rows, LIMIT)
    print("Wrote %s and %s (server logs: %s); the demo took %.0f s."
          % (os.path.relpath(md), os.path.relpath(svg), os.path.relpath(log_path), total))
    with open(os.path.join(args.out, "overload.json"), "w") as f:
        json.dump({"rows": rows, "notes": notes, "cap": cap_text}, f, indent=1)


def on_signal(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what the demo started", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for proc in started_pids:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for cap in caps:
            cap.remove()
