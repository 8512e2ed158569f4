#!/usr/bin/python3
"""conn_server.py MODE ADDR — a server that greets each connection ("hi\n"),
discards what it reads and holds the connection until the client closes.
MODE: asyncio (epoll), poll (selectors.PollSelector), select (select.select),
fork (socketserver.ForkingTCPServer: a process per connection).
ADDR: a TCP port on 127.0.0.1, or unix:PATH.
Prints "accepted N" on stdout for every connection it sees."""
import asyncio
import select
import selectors
import socket
import socketserver
import sys

mode, addr = sys.argv[1], sys.argv[2]
seen = 0


def note():
    global seen
    seen += 1
    print("accepted", seen, flush=True)


def listener():
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(addr[5:])
    else:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(addr)))
    s.listen(128)
    s.setblocking(False)
    return s


def run_asyncio():
    async def handle(reader, writer):
        note()
        try:
            writer.write(b"hi\n")
            await writer.drain()
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, sock=listener(), backlog=128)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def run_poll():
    lsock = listener()
    sel = selectors.PollSelector()
    sel.register(lsock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is lsock:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                note()
                c.setblocking(False)
                c.send(b"hi\n")
                sel.register(c, selectors.EVENT_READ)
            else:
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()


def run_select():
    lsock = listener()
    conns = []
    while True:
        readable, _, _ = select.select([lsock] + conns, [], [])
        for s in readable:
            if s is lsock:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                note()
                c.setblocking(False)
                c.send(b"hi\n")
                conns.append(c)
            else:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    conns.remove(s)
                    s.close()


def run_fork():
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.send(b"hi\n")
            while self.request.recv(65536):
                pass

    class Server(socketserver.ForkingTCPServer):
        allow_reuse_address = True
        request_queue_size = 128

        def process_request(self, request, client_address):
            note()
            super().process_request(request, client_address)

    Server(("127.0.0.1", int(addr)), Handler).serve_forever()


{"asyncio": run_asyncio, "poll": run_poll, "select": run_select, "fork": run_fork}[mode]()
