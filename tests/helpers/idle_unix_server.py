"""An asyncio server on a UNIX socket: each line is answered "done" after
0.3 s of awaited work. Usage: idle_unix_server.py PATH"""
import asyncio
import sys


async def handle(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        await asyncio.sleep(0.3)
        writer.write(b"done\n")
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_unix_server(handle, path=sys.argv[1])
    async with server:
        await server.serve_forever()


asyncio.run(main())
