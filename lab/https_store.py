"""A directory served over HTTPS on loopback, as a web server or CDN serves the agent's https://
source: GET only, an ETag (the content's quoted SHA-256) on every object, 304 to If-None-Match.

    with HttpsStore(store_dir, tls_dir) as served:
        url, ca_file = served.url, served.ca_file   # source.url and source.ca_file of agent.conf
"""

from __future__ import annotations

import hashlib
import http.server
import socket
from pathlib import Path
from typing import Any

from lab.ports import LOOPBACK
from lab.tls import make_ca_and_server_cert
from lab.tls_server import TlsServer


class HttpsStore:
    def __init__(self, root: Path, tls_dir: Path) -> None:
        self.root = Path(root)
        self.ca_file, self._cert, self._key = make_ca_and_server_cert(tls_dir)
        self._server: TlsServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://{LOOPBACK}:{self._server.port}/"

    def __enter__(self) -> HttpsStore:
        root = self.root

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                # As web servers do: a small answer is sent at once, not held back by Nagle's
                # algorithm until the client acknowledges the TLS session tickets (40 ms).
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def do_GET(self) -> None:
                _answer(self, root)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = TlsServer(Handler, self._cert, self._key)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.stop()


def _answer(handler: http.server.BaseHTTPRequestHandler, root: Path) -> None:
    relative = handler.path.split("?", 1)[0].lstrip("/")
    path = (root / relative).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        handler.send_error(404)
        return
    body = path.read_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()}"'
    if handler.headers.get("If-None-Match") == etag:
        handler.send_response(304)
        handler.send_header("ETag", etag)
        handler.end_headers()
        return
    handler.send_response(200)
    handler.send_header("ETag", etag)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
