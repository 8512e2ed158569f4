"""An echo server with asyncio's bad default: it writes without awaiting drain(),
so when the peer does not read, every answer piles up in the process's memory.

    python3 echo_server.py PORT
"""
import asyncio
import sys


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)  # no "await writer.drain()": the bad default
    writer.close()


async def main(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
