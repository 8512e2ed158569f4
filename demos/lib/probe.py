"""Asks the built library, by behaviour, whether a gate works yet, so that a demo
can say "gate not available yet" instead of showing a bare run as sluice's.

    python3 probe.py conn|idle|drain      (run with the library preloaded)

Prints "yes" or "no". Each probe takes well under two seconds.
"""
import asyncio
import os
import socket
import sys
import threading
import time


def probe_conn():
    # SLUICE_CONN_MAX=1: two clients wait in the backlog, one may be accepted.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
    accepted = []

    def accept_loop():
        while True:
            accepted.append(listener.accept())

    threading.Thread(target=accept_loop, daemon=True).start()
    time.sleep(0.6)
    del clients
    return len(accepted) == 1


def probe_idle():
    # SLUICE_CONN_MAX=1 SLUICE_CONN_IDLE=free: once the first connection has been
    # answered and sits idle, a second one must be taken in. Meaningful only
    # where the conn probe says yes (bare, every connection is taken in).
    connected = []

    async def serve(reader, writer):
        connected.append(writer)
        while await reader.readline():
            writer.write(b"pong\n")
            await writer.drain()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await asyncio.wait_for(reader.readline(), 2)
        second = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.6)
        return len(connected) == 2 and second is not None

    return asyncio.run(main())


def probe_drain():
    # SLUICE_WRITE_HIGH=64K: a peer that never reads must stop a non-blocking
    # writer far below the ~4 MB the kernel would take by itself.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    peer = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    conn.setblocking(False)
    sent, chunk = 0, b"x" * 16384
    while sent < 64 << 20:
        try:
            sent += conn.send(chunk)
        except BlockingIOError:
            break
    del peer
    return sent < 1 << 20


if __name__ == "__main__":
    probes = {"conn": probe_conn, "idle": probe_idle, "drain": probe_drain}
    try:
        ok = probes[sys.argv[1]]()
    except Exception as error:  # a probe that breaks means "not working"
        print("no (%s)" % error)
        sys.stdout.flush()
        os._exit(0)
    print("yes" if ok else "no")
    sys.stdout.flush()
    os._exit(0)
