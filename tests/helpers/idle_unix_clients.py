"""N clients of a UNIX socket: each sends "work" twice, idling 0.2 s after each
answer, and keeps its connection open; stops at LIMIT_S.
Usage: idle_unix_clients.py PATH N LIMIT_S
Prints: "done D of T wall W"."""
import os
import socket
import sys
import threading
import time

path, n, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
done, last = [], [0.0]


def client():
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(limit)
        s.connect(path)
        f = s.makefile("rb")
        for _ in range(2):
            s.sendall(b"work\n")
            if f.readline() != b"done\n":
                return
            done.append(1)
            last[0] = time.monotonic() - start
            time.sleep(0.2)
        time.sleep(limit)
    except OSError:
        pass


for _ in range(n):
    threading.Thread(target=client, daemon=True).start()
while len(done) < 2 * n and time.monotonic() - start < limit:
    time.sleep(0.02)
print(f"done {len(done)} of {2 * n} wall {last[0]:.2f}", flush=True)
os._exit(0)
