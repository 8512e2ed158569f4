#!/usr/bin/python3
"""hold_clients.py PORT FIRST REST SECONDS — opens FIRST connections to
127.0.0.1:PORT (the ones a server at its limit holds), waits half a second,
then REST more (the ones left waiting in the listen backlog), prints "ready"
once every connect has completed, and holds them all until SECONDS have passed
since it started (the caller may stop it sooner). Sends nothing: the
connections only wait."""
import resource
import select
import socket
import sys
import time

port, first, rest, seconds = (int(a) for a in sys.argv[1:5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = first + rest + 64
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

deadline = time.monotonic() + seconds
held = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(first)]
time.sleep(0.5)

pending = []
for _ in range(rest):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    pending.append(s)
poller = select.poll()
for s in pending:
    poller.register(s, select.POLLOUT)
left = len(pending)
while left and time.monotonic() < deadline:
    for fd, _ in poller.poll(200):
        poller.unregister(fd)
        left -= 1
held += pending
failed = sum(1 for s in pending if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0)
print("ready" if left == 0 and failed == 0 else "incomplete %d failed %d" % (left, failed), flush=True)

time.sleep(max(0.0, deadline - time.monotonic()))
