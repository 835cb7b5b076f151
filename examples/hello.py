"""A tiny threaded HTTP server for the demo: answers every request with its VERSION and pid.

Change VERSION (or anything else) and send SIGHUP to the huptime'd process: the new code takes
over the listening socket without refusing or dropping a single connection.
"""
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "v1"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{VERSION} {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer(("127.0.0.1", port), Hello).serve_forever()
