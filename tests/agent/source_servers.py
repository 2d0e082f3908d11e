"""Backends for the source tests: a directory, an HTTPS server over it, a scripted S3 endpoint and
moto's S3.

`FakeS3(answer)` answers every request to a loopback HTTP endpoint as `answer(handler)` says.

`StoreServer(root, tls_dir)` serves the files below `root` over TLS on 127.0.0.1 (a throw-away CA
from `lab.tls`), as a static web server or CDN would: ETag is the quoted SHA-256 of the
body, If-None-Match with the current ETag answers 304. Knobs for the failure tests:

- `answer_status`: answer every GET with this status (and `location` for a redirect);
- `omit_etag`: send no ETag; `omit_length`: no Content-Length, the body ends when the connection
  closes;
- `stall_after`: send the headers and this many body bytes, then hold the connection open until
  the server stops (a client must give up on its own);
- `trickle`: "headers" or "body": send that part a byte every `TRICKLE_PAUSE` seconds, each
  byte well within any socket timeout, until the server stops (slow retrieval).

`outcome_within(seconds, call)` runs a call that may hang, for tests of clients that must not.

`seen` records each request's path and headers. Runs on Python 3.8 and 3.11.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from typing import Any, Callable

from lab.ports import LOOPBACK
from lab.tls import make_ca_and_server_cert
from lab.tls_server import TlsServer

TRICKLE_PAUSE = 0.1


def outcome_within(seconds: float, call: Callable[[], object]) -> object:
    """What `call` returned or raised; the test fails if it still runs after `seconds` (a client
    that does not give up would otherwise hold the suite for as long as a trickle lasts)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # the test judges what was raised
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still running after {seconds:g} s"
    return outcome[0]


class StoreServer:
    def __init__(self, root: Path, tls_dir: Path):
        self.root = Path(root)
        self.ca_file, self._cert, self._key = make_ca_and_server_cert(tls_dir)
        self.answer_status: int | None = None
        self.location = ""
        self.omit_etag = False
        self.omit_length = False
        self.stall_after: int | None = None
        self.trickle: str | None = None
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
        if self.trickle is not None:
            self._trickle(handler, body)
            return
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

    def _trickle(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        padding = "x" * 200  # headers that would take 20 s to arrive
        head = f"HTTP/1.1 200 OK\r\nX-Padding: {padding}\r\nContent-Length: {len(body)}\r\n\r\n"
        slow, sent = (head.encode(), b"") if self.trickle == "headers" else (body, head.encode())
        try:
            handler.wfile.write(sent)
            for byte in slow:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if self._released.wait(TRICKLE_PAUSE):
                    return
        except OSError:
            return  # the client gave up


class FakeS3:
    """A loopback HTTP server (an S3 endpoint) answering each GET or PUT with `answer(handler)`."""

    def __init__(self, answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        self.answer = answer
        self.seen: list[dict[str, str]] = []
        self.paths: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake.seen.append(dict(self.headers.items()))
                fake.paths.append(self.path)
                fake.answer(self)

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeS3:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


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
