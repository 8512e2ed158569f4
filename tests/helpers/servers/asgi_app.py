"""asgi_app.py — the ASGI app uvicorn serves in the server matrix: GET /big
answers the file named by SERVERS_BIG, anything else "hi\\n"."""
import os

with open(os.environ["SERVERS_BIG"], "rb") as f:
    BIG = f.read()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = BIG if scope["path"] == "/big" else b"hi\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
