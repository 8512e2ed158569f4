#!/usr/bin/python3
"""conn_server.py MODE PORT — a server that greets each connection ("hi\n"),
discards what it reads and holds the connection until the client closes.
MODE: asyncio (epoll), poll (selectors.PollSelector), select (select.select).
Prints "accepted N" on stdout for every connection it sees."""
import asyncio
import select
import selectors
import socket
import sys

mode, port = sys.argv[1], int(sys.argv[2])
seen = 0


def note():
    global seen
    seen += 1
    print("accepted", seen, flush=True)


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    s.setblocking(False)
    return s


def run_asyncio():
    async def handle(reader, writer):
        note()
        writer.write(b"hi\n")
        await writer.drain()
        while await reader.read(65536):
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


{"asyncio": run_asyncio, "poll": run_poll, "select": run_select}[mode]()
