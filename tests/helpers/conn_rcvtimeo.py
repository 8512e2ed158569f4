#!/usr/bin/python3
"""conn_rcvtimeo.py — a blocking listener with SO_RCVTIMEO of 300 ms: accepts
one of two waiting clients, then tries the second. Prints "second: OK|EAGAIN
after S" (with SLUICE_CONN_MAX=1 the second must time out like a real accept
with nothing to take)."""
import socket
import struct
import time

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
port = s.getsockname()[1]
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300000))
a = socket.create_connection(("127.0.0.1", port))
b = socket.create_connection(("127.0.0.1", port))
first, _ = s.accept()
t = time.monotonic()
try:
    s.accept()
    print("second: OK after %.3f" % (time.monotonic() - t))
except BlockingIOError:
    print("second: EAGAIN after %.3f" % (time.monotonic() - t))
