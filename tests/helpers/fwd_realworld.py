"""fwd_realworld.py — a small Python program touching what real programs do
(sockets, asyncio, subprocess, file I/O), printing only deterministic output:
run bare and with libsluice.so preloaded, the bytes must be identical."""
import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading


def blocking_sockets():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def serve():
        for _ in range(3):
            conn, _ = srv.accept()
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(hashlib.sha256(data).hexdigest().encode() + b"\n")

    t = threading.Thread(target=serve)
    t.start()
    for i in range(3):
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(bytes(range(256)) * (1000 * (i + 1)) + b"\n")
            reply = c.makefile("rb").readline()
            print("tcp", i, reply.decode().strip())
    t.join()
    srv.close()
    a, b = socket.socketpair()
    a.sendall(b"pair-hello")
    print("socketpair", b.recv(100).decode())
    a.close()
    b.close()


async def echo(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def asyncio_part():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    results = []

    async def client(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        out = []
        for k in range(5):
            writer.write(f"client {n} line {k}\n".encode())
            await writer.drain()
            out.append((await reader.readline()).decode().strip())
        writer.close()
        await writer.wait_closed()
        return out

    for out in await asyncio.gather(*(client(n) for n in range(4))):
        results.extend(out)
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.01)
    for r in results:
        print("asyncio", r)


def subprocess_part():
    out = subprocess.run(["sort"], input=b"pear\napple\nfig\n", capture_output=True, check=True)
    print("subprocess sort", out.stdout.decode().split())
    out = subprocess.run([sys.executable, "-c", "print(6*7)"], capture_output=True, check=True)
    print("subprocess python", out.stdout.decode().strip())
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    data, _ = p.communicate(b"x" * 200000)
    print("subprocess cat", len(data), p.returncode)


def file_part():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.bin")
        blob = os.urandom(0) + bytes((i * 7) % 251 for i in range(300000))
        with open(path, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        with open(path, "rb") as f:
            print("file sha256", hashlib.sha256(f.read()).hexdigest())
        with open(path, "r+b") as f:
            f.seek(1000)
            f.write(b"patched")
        fd = os.open(path, os.O_RDONLY)
        print("file pread", os.pread(fd, 7, 1000))
        os.close(fd)
        with open(os.path.join(d, "text.txt"), "w") as f:
            for i in range(1000):
                print(f"line {i}", file=f)
        with open(os.path.join(d, "text.txt")) as f:
            print("file lines", sum(1 for _ in f))


blocking_sockets()
asyncio.run(asyncio_part())
subprocess_part()
file_part()
print("done")
