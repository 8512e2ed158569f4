"""queue_peer.py PORT — a one-at-a-time server: blocking accept, then for each
connection one line "PEERPORT NONBLOCK CLOEXEC" on stdout (what accept gave:
the peer's port, O_NONBLOCK and FD_CLOEXEC of the new descriptor), then reads
until the client closes."""
import fcntl
import os
import socket
import sys

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, addr = s.accept()
    fl = fcntl.fcntl(c.fileno(), fcntl.F_GETFL)
    fd = fcntl.fcntl(c.fileno(), fcntl.F_GETFD)
    print(addr[1], int(bool(fl & os.O_NONBLOCK)), int(bool(fd & fcntl.FD_CLOEXEC)), flush=True)
    while c.recv(4096):
        pass
    c.close()
