"""forking_server.py PORT — socketserver.ForkingTCPServer on 127.0.0.1:PORT, as
in the service suite: the parent accepts and forks, closing its copy at once;
the child answers a first line with "hi\\n" and holds the connection until the
client closes it; to "exit\\n" it answers "bye\\n" and exits at once, without
closing the connection itself (the kernel does, at its exit)."""
import os
import socketserver
import sys


class Hold(socketserver.BaseRequestHandler):
    def handle(self):
        line = self.request.recv(1024)
        if line == b"exit\n":
            self.request.sendall(b"bye\n")
            os._exit(0)
        if line:
            self.request.sendall(b"hi\n")
            while self.request.recv(1024):
                pass


class Server(socketserver.ForkingTCPServer):
    request_queue_size = 128   # the 36 waiting clients fit in the accept queue
    max_children = 128         # not ForkingMixIn's 40: unbounded but for sluice


Server(("127.0.0.1", int(sys.argv[1])), Hold).serve_forever()
