#!/usr/bin/python3
"""shed_blocking.py PORT — the plainest threaded server: one thread loops on a
blocking socket.accept() and starts a thread per connection, which greets it
("hi\n") and discards its input until the client closes. An exception from
accept ends the process, as it would in such a server: a blocking accept that
ever sees EAGAIN (or EMFILE) shows as a dead server and a traceback.
A connection that sends "open N\n" has the server open N more descriptors
(/dev/null) and answer "opened N\n", or "failed ERRNO\n" if it cannot (then
close them): how a request that needs descriptors fares.
Prints "accepted N" for every connection it sees."""
import os
import socket
import sys
import threading

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1024)
seen = 0


def open_many(n):
    fds = []
    try:
        for _ in range(n):
            fds.append(os.open("/dev/null", os.O_RDONLY))
        return b"opened %d\n" % n
    except OSError as e:
        return b"failed %d\n" % e.errno
    finally:
        for fd in fds:
            os.close(fd)


def serve(c):
    try:
        c.sendall(b"hi\n")
        while True:
            data = c.recv(65536)
            if not data:
                break
            if data.startswith(b"open "):
                c.sendall(open_many(int(data.split()[1])))
    except OSError:
        pass
    c.close()


while True:
    c, _ = s.accept()
    seen += 1
    print("accepted", seen, flush=True)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
