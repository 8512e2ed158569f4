"""conn_asgi.py — the smallest ASGI app, for uvicorn: answers "hi\n" to every
request (connections stay open: keep-alive)."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hi\n"})
