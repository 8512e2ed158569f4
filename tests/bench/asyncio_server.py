#!/usr/bin/python3
"""asyncio_server.py PORT — an asyncio (epoll) server with a listen backlog of
2048 that discards what each connection sends and holds it until the client
closes: the event-loop server for the paused-CPU benchmark."""
import asyncio
import sys


async def handle(reader, writer):
    while await reader.read(65536):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=2048)
    async with server:
        await server.serve_forever()

asyncio.run(main())
