"""N clients connect at once; each sends "work" ROUNDS times on its connection,
idling IDLE_S between answers, for at most LIMIT_S in all.
Usage: idle_line_clients.py PORT N ROUNDS IDLE_S LIMIT_S
Prints: "done D of T clients_done C wall W"."""
import socket
import sys
import threading
import time

port, n, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
idle_s, limit = float(sys.argv[4]), float(sys.argv[5])
start = time.monotonic()
done, finished, last = [0], [0], [0.0]
lock = threading.Lock()


def client():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=limit)
        f = s.makefile("rb")
        for r in range(rounds):
            s.sendall(b"work\n")
            if f.readline().strip() != b"done":
                return
            with lock:
                done[0] += 1
                last[0] = time.monotonic() - start
            time.sleep(idle_s)
        with lock:
            finished[0] += 1
        time.sleep(max(0.0, limit - (time.monotonic() - start)))
    except OSError:
        pass


threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
for t in threads:
    t.start()
deadline = start + limit
while time.monotonic() < deadline and finished[0] < n:
    time.sleep(0.05)
print(f"done {done[0]} of {n * rounds} clients_done {finished[0]} wall {last[0]:.2f}", flush=True)
