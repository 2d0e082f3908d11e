"""Backends for the source tests: a directory, an HTTPS server over it, and moto's S3.

`StoreServer(root, tls_dir)` serves the files below `root` over TLS on 127.0.0.1 (a throw-away CA
from `lab.tls`), as a static web server or CDN would: ETag is the quoted SHA-256 of the
body, If-None-Match with the current ETag answers 304. Knobs for the failure tests:

- `answer_status`: answer every GET with this status (and `location` for a redirect);
- `omit_etag`: send no ETag; `omit_length`: no Content-Length, the body ends when the connection
  closes;
- `stall_after`: send the headers and this many body bytes, then hold the connection open until
  the server stops (a client must give up on its own).

`seen` records each request's path and headers. Runs on Python 3.8 and 3.11.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from typing import Any

from lab.ports import LOOPBACK
from lab.tls import make_ca_and_server_cert
from lab.tls_server import TlsServer


class StoreServer:
    def __init__(self, root: Path, tls_dir: Path):
        self.root = Path(root)
        self.ca_file, self._cert, self._key = make_ca_and_server_cert(tls_dir)
        self.answer_status: int | None = None
        self.location = ""
        self.omit_etag = False
        self.omit_length = False
        self.stall_after: int | None = None
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._released = threading.Event()
        self._server: TlsServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://{LOOPBACK}:{self._server.port}/store/"

    def __enter__(self) -> StoreServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def log_message(self, *args: Any) -> None:
                pass  # keep test output clean

        self._server = TlsServer(Handler, self._cert, self._key)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        assert self._server is not None
        self._server.stop()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        self.seen.append((handler.path, dict(handler.headers.items())))
        if self.answer_status is not None:
            handler.send_response(self.answer_status)
            if self.location:
                handler.send_header("Location", self.location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        path = (
            self.root / handler.path[len("/store/") :]
            if handler.path.startswith("/store/")
            else None
        )
        if path is None or not path.is_file():
            handler.send_error(404)
            return
        body = path.read_bytes()
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        if not self.omit_etag and handler.headers.get("If-None-Match") == etag:
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.end_headers()
            return
        handler.send_response(200)
        if not self.omit_etag:
            handler.send_header("ETag", etag)
        if self.omit_length:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        else:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if self.stall_after is not None:
            handler.wfile.write(body[: self.stall_after])
            handler.wfile.flush()
            self._released.wait()
            return
        handler.wfile.write(body)


class Backend:
    """Where a source reads from, written around the source (as the cloud publishes)."""

    kind = ""

    def __init__(self, url: str, writable: bool, **options: Any):
        self.url = url
        self.writable = writable  # whether put_status can write here
        self.options = options

    def put(self, key: str, body: bytes) -> None:
        raise NotImplementedError

    def read(self, key: str) -> bytes | None:
        raise NotImplementedError


class DirectoryBackend(Backend):
    kind = "file"

    def __init__(self, root: Path, url: str = "", writable: bool = True, **options: Any):
        super().__init__(url or root.as_uri(), writable, **options)
        self.root = root

    def put(self, key: str, body: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None


class S3Backend(Backend):
    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str, **options: Any):
        super().__init__(f"s3://{bucket}/{prefix}", True, **options)
        self._client = client
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""

    def put(self, key: str, body: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self._prefix + key, Body=body)

    def read(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)[
                "Body"
            ].read()
        except self._client.exceptions.NoSuchKey:
            return None
