"""A thread-per-connection server with blocking reads. Each line "work" is
served in 0.3 s; the server prints "inservice K" (requests being served at
that moment, itself included) as each starts, so a test sees the peak.
Usage: idle_threaded.py PORT"""
import socketserver
import sys
import threading
import time

lock = threading.Lock()
inservice = 0


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        global inservice
        for line in self.rfile:
            if line.strip() != b"work":
                continue
            with lock:
                inservice += 1
                print(f"inservice {inservice}", flush=True)
            time.sleep(0.3)
            with lock:
                inservice -= 1
            self.wfile.write(b"done\n")
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
