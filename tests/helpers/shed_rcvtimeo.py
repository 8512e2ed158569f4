#!/usr/bin/python3
"""shed_rcvtimeo.py — a blocking listener with SO_RCVTIMEO of 500 ms accepts
one client, then waits for a second while another client arrives every 200 ms
for 3 s. With SLUICE_CONN_MAX=1 in shed mode each of them is shed, so the
program's accept has nothing to show and must time out as a real accept with
nothing to take would. Prints "second: EAGAIN after S" (or "OK after S")."""
import socket
import struct
import threading
import time

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
port = s.getsockname()[1]
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 500000))
holder = socket.create_connection(("127.0.0.1", port))
first, _ = s.accept()


def arrivals():
    for _ in range(15):
        time.sleep(0.2)
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(2)
        try:
            c.recv(4096)
        except OSError:
            pass
        c.close()


threading.Thread(target=arrivals, daemon=True).start()
t = time.monotonic()
try:
    s.accept()
    print("second: OK after %.3f" % (time.monotonic() - t), flush=True)
except BlockingIOError:
    print("second: EAGAIN after %.3f" % (time.monotonic() - t), flush=True)
