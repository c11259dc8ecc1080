"""A loopback HTTP server standing for an internal page (an admin console, a metadata service).

It records every request and answers with an HTML page holding a secret, so tests can show that a URL
from a callback is never called and that no foreign answer ends up in the outbox's `last_error`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "INTERNAL-ADMIN-PASSWORD-7f3a9c"
PAGE = f"<!DOCTYPE html><html><head><title>内网管理后台</title></head><body>root password: {SECRET}</body></html>"


class InternalPage:
    """Serve on 127.0.0.1 (random port) in a thread; `hits` lists (method, path) of every request."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.hits: list[tuple[str, str]] = []
        page = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                page.hits.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = PAGE.encode()
                self.send_response(page.status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="internal-page", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "InternalPage":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
