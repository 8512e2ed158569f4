"""N redis clients connect at once, stay idle for IDLE_S, then each sends
DEBUG SLEEP SLEEP_S and waits for +OK (up to LIMIT_S in all).
Usage: idle_redis_clients.py PORT N IDLE_S SLEEP_S LIMIT_S
Prints: "connected C answered A refused R wall W"."""
import socket
import sys
import threading
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
idle_s, sleep_s, limit = float(sys.argv[3]), sys.argv[4], float(sys.argv[5])
socks, refused = [], 0
for _ in range(n):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=limit))
    except OSError:
        refused += 1
time.sleep(idle_s)
start = time.monotonic()
answered = []


def ask(s):
    try:
        s.sendall(f"DEBUG SLEEP {sleep_s}\r\n".encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(64)
            if not chunk:
                return
            buf += chunk
        if buf.startswith(b"+OK"):
            answered.append(time.monotonic() - start)
    except OSError:
        pass


threads = [threading.Thread(target=ask, args=(s,), daemon=True) for s in socks]
for t in threads:
    t.start()
for t in threads:
    t.join(max(0.0, limit - (time.monotonic() - start)))
print(f"connected {len(socks)} answered {len(answered)} refused {refused} "
      f"wall {max(answered) if answered else 0:.2f}", flush=True)
