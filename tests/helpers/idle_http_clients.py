"""N concurrent HTTP/1.1 keep-alive clients: each connects, sends one request,
reads the whole answer, and keeps its connection open (as a client's pool does)
until every client is done or the time limit passes.
Usage: idle_http_clients.py PORT N PATH LIMIT_S
Prints: "served S of N wall W" (W in seconds, to the last answer)."""
import socket
import sys
import threading
import time

port, n, path, limit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
start = time.monotonic()
done_at = [None] * n
socks = []


def client(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=limit)
        socks.append(s)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                print(f"client {i}: closed before an answer", file=sys.stderr)
                return
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            print(f"client {i}: {head[:40]!r}", file=sys.stderr)
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                return
            body += chunk
        done_at[i] = time.monotonic() - start
    except OSError as e:
        print(f"client {i}: {e}", file=sys.stderr)


threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join(max(0.0, limit - (time.monotonic() - start)))
served = [d for d in done_at if d is not None]
print(f"served {len(served)} of {n} wall {max(served) if served else 0:.2f}", flush=True)
for s in socks:
    s.close()
