"""queue_slow_asgi.py — an ASGI app for uvicorn that takes QUEUE_SLOW_MS
(default 1000) per request and answers 200 with the request's path as body
(the queue suite's clients name themselves in it); it opens /dev/null once per
request."""
import asyncio
import os

SLOW = int(os.environ.get("QUEUE_SLOW_MS", "1000")) / 1000.0


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    # A descriptor per request, as real apps open files and upstreams: it
    # fails (EMFILE, logged) if anything ate the process's descriptors.
    os.close(os.open(os.devnull, os.O_RDONLY))
    await asyncio.sleep(SLOW)
    body = scope["path"].encode() + b"\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
