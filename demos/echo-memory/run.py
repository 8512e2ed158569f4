"""The echo server and a client that sends but never reads: the server's memory
without sluice, and with SLUICE_WRITE_HIGH=64K SLUICE_HOLD_READS=1, which hold the
server's reads while its answers cannot drain, so that TCP stops the client.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PYTHON = "/usr/bin/python3"
LIB = os.environ.get("SLUICE_LIB") or os.path.join(ROOT, "build", "libsluice.so")
SEND_BYTES = 300 << 20     # what the client tries to send
SEND_SECONDS = 10.0        # ... for at most this long
STALL_SECONDS = 2.0        # a send blocked this long means TCP has stopped it
SETTINGS = {"SLUICE_WRITE_HIGH": "64K", "SLUICE_HOLD_READS": "1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def connect(port, deadline=10.0):
    end = time.monotonic() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def run(settings):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and k != "LD_PRELOAD"}
    if settings:
        env.update(settings, LD_PRELOAD=LIB)
    server = subprocess.Popen([PYTHON, os.path.join(HERE, "echo_server.py"), str(port)], env=env)
    sent = [0]
    stalled = [False]
    try:
        client = connect(port)
        client.settimeout(STALL_SECONDS)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        chunk = b"x" * 65536

        def send_without_reading():
            end = time.monotonic() + SEND_SECONDS
            try:
                while sent[0] < SEND_BYTES and time.monotonic() < end:
                    sent[0] += client.send(chunk)
            except socket.timeout:
                stalled[0] = True
            except OSError:
                pass

        sender = threading.Thread(target=send_without_reading, daemon=True)
        started = time.monotonic()
        sender.start()
        peak = 0
        while sender.is_alive():
            peak = max(peak, rss(server.pid))
            time.sleep(0.05)
        seconds = time.monotonic() - started
        # The server may still be reading what the kernel holds for it.
        settle = time.monotonic() + 0.5
        while time.monotonic() < settle:
            peak = max(peak, rss(server.pid))
            time.sleep(0.05)
        client.close()
        return peak, sent[0], stalled[0], seconds
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def drain_gate_works():
    env = dict(os.environ, LD_PRELOAD=LIB, **SETTINGS)
    out = subprocess.run([PYTHON, os.path.join(ROOT, "demos", "lib", "probe.py"), "drain"],
                         env=env, capture_output=True, text=True, timeout=10).stdout
    return out.strip() == "yes"


def main():
    if not os.path.exists(LIB):
        sys.exit("echo-memory: %s is missing; run make first" % LIB)
    print("An asyncio echo server that writes without drain(); a client sends up to "
          "%d MiB in %.0f s and never reads." % (SEND_BYTES >> 20, SEND_SECONDS))
    works = drain_gate_works()
    rows = [("bare", None), ("sluice " + " ".join("%s=%s" % kv for kv in SETTINGS.items()), SETTINGS)]
    print("%-52s %16s %16s  %s" % ("run", "server peak RSS", "client sent", "client"))
    for label, settings in rows:
        peak, sent, stalled, seconds = run(settings)
        print("%-52s %12.1f MiB %12.1f MiB  %s after %.1f s" % (
            label, peak / 2**20, sent / 2**20,
            "stopped by TCP" if stalled else "sent all it could", seconds), flush=True)
    if not works:
        print("note: the drain gate (SLUICE_WRITE_HIGH, SLUICE_HOLD_READS) is not available "
              "yet in this build, so the sluice row shows the server unprotected.")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
