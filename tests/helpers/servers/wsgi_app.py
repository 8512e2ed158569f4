"""wsgi_app.py — the WSGI app gunicorn serves in the service suite: "hi\\n"
to any request (the connection then stays open, kept alive, until the client
closes it)."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"hi\n"]
