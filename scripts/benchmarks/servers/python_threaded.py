"""Benchmark server: a threaded HTTP/1.1 server from the standard library, answers "ok <pid>"."""
import http.server, os, sys

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("ok %d\n" % os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.headers.get("Connection", "").lower() == "close":
            self.send_header("Connection", "close")  # said, so that clients do not count a close as an error
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

srv = S(("127.0.0.1", int(sys.argv[1])), H)
if os.environ.get("BENCH_EXIT_AFTER_LISTEN"):
    sys.exit(0)  # scripts/bench times the start-up alone
srv.serve_forever()
