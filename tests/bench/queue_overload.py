"""queue_overload.py PORT RATE SECONDS — open-loop arrivals: RATE new
connections a second for SECONDS, each sending one GET with Connection: close
(non-blocking connects, so a dropped SYN does not hold up the schedule). Prints
one line: arrivals served shed resets unanswered p50_wait_ms p99_wait_ms
slow_connects (a connect that took 900 ms or more waited for a SYN
retransmission: the accept queue was full). A served client's wait is from its
connect to its first byte minus the server's SLOW_MS."""
import errno
import os
import selectors
import socket
import sys
import time

port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
slow = int(os.environ.get("QUEUE_SLOW_MS", "500")) / 1000.0
sel = selectors.DefaultSelector()
clients = []
t0 = time.monotonic()
n = int(rate * seconds)
end = t0 + seconds + 15
while time.monotonic() < end:
    now = time.monotonic()
    while len(clients) < n and now >= t0 + len(clients) / rate:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        i = len(clients)
        c = {"i": i, "start": now, "conn": None, "first": None, "data": b"", "done": False, "reset": False}
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        clients.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    if len(clients) == n and all(c["done"] for c in clients):
        break
    for key, ev in sel.select(0.01):
        s, c = key.fileobj, key.data
        now = time.monotonic()
        if c["conn"] is None:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                c["reset"] = c["done"] = True
                sel.unregister(s)
                s.close()
                continue
            c["conn"] = now
            s.send(b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % c["i"])
            sel.modify(s, selectors.EVENT_READ, c)
            continue
        try:
            d = s.recv(4096)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                continue
            c["reset"] = True
            d = b""
        if d:
            if c["first"] is None:
                c["first"] = now
            c["data"] += d
        else:
            c["done"] = True
            sel.unregister(s)
            s.close()
served = [c for c in clients if c["data"].startswith(b"HTTP/1.1 200")]
shed = [c for c in clients if c["data"].startswith(b"HTTP/1.1 503")]
waits = sorted((c["first"] - c["start"] - slow) * 1000 for c in served)
pct = lambda p: waits[min(len(waits) - 1, int(len(waits) * p))] if waits else 0
print(len(clients), len(served), len(shed), sum(c["reset"] for c in clients),
      sum(1 for c in clients if not c["data"]), "%.0f" % pct(0.5), "%.0f" % pct(0.99),
      sum(1 for c in clients if c["conn"] is None or c["conn"] - c["start"] >= 0.9))
