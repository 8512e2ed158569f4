"""drain_echo.py PORT [epoll|poll|select] — the bad-default asyncio echo
server: readline, then writer.write with no drain(), so whatever the peer does
not read piles up in the transport's buffer in user space. The event loop
waits with the named call (default epoll). Listens on 127.0.0.1 only."""
import asyncio
import logging
import selectors
import sys


async def echo(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)  # no await writer.drain(): the bad default
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # A peer that goes away mid-answer is expected here, not news.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    kind = sys.argv[2] if len(sys.argv) > 2 else "epoll"
    selector = {"epoll": selectors.EpollSelector, "poll": selectors.PollSelector,
                "select": selectors.SelectSelector}[kind]()
    loop = asyncio.SelectorEventLoop(selector)
    loop.run_until_complete(main(int(sys.argv[1])))
