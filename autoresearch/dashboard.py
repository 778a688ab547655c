"""Dashboard: `autoresearch dashboard -C WS [--port N]`, a live page on 127.0.0.1.

A small threaded HTTP server: `/` is the page (autoresearch/web, inlined: nothing from the
network), `/api/state` the ledger as views.snapshot() makes it, `/api/trial/N` one trial's diff,
log tail and the agent's answer. It only reads: the ledger, running.json, logs and git objects,
afresh on every request, so a study started, resumed or killed under it shows as it is.

    autoresearch dashboard -C runs/demo --port 8765
"""

from __future__ import annotations

import http.server
import threading
import urllib.parse

from autoresearch import page, views
from autoresearch.errors import AutoresearchError

DEFAULT_PORT = 8765


class _Handler(http.server.BaseHTTPRequestHandler):
    source: views.Source = None     # set on the subclass the server makes
    server_version = "autoresearch-dashboard"

    def log_message(self, format, *args) -> None:   # quiet: a page polls every 2 s
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = urllib.parse.urlparse(self.path).path
        try:
            if path in ("/", "/index.html"):
                return self._send(200, page.html().encode(), "text/html; charset=utf-8")
            if path == "/api/state":
                return self._send(200, page.dumps(self.source.snapshot()).encode(), "application/json")
            if path.startswith("/api/trial/"):
                try:
                    number = int(path.rsplit("/", 1)[1])
                except ValueError:
                    return self._send(400, b'{"error": "trial number expected"}', "application/json")
                d = self.source.detail(number)
                if d is None:
                    return self._send(404, b'{"error": "no such trial"}', "application/json")
                return self._send(200, page.dumps(d).encode(), "application/json")
            if path == "/favicon.ico":
                return self._send(204, b"", "image/x-icon")
            return self._send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            return None


class Dashboard:
    """The server for one workspace and tag; `serve()` blocks, `start()` runs it in a thread."""

    def __init__(self, root, tag: str | None = None, port: int = DEFAULT_PORT, host: str = "127.0.0.1"):
        self.source = views.Source(root, tag)
        handler = type("Handler", (_Handler,), {"source": self.source})
        try:
            self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise AutoresearchError(f"cannot listen on {host}:{port} ({e.strerror or e}): pick another with --port N "
                                    f"(0 picks a free one)") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def serve(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.5)
        finally:
            self.httpd.server_close()

    def start(self) -> "Dashboard":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True, name="dashboard")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
