"""An HTTP proxy in front of an S3 server (moto's) that drops the conditional-write headers: what
an S3-compatible server looks like when it ignores `If-None-Match: *` and `If-Match` on writes.

    with MotoServer() as moto, HeaderStrippingProxy(moto.endpoint_url) as proxy:
        store = S3Store(bucket, endpoint_url=proxy.url)     # every write now unconditional
        proxy.forwarded                                      # what went through, in order

Writes (PUT, POST, DELETE) lose the headers in `strip`; reads keep theirs (conditional GETs are
older than conditional writes and widely honoured). Everything else passes unchanged, the Host
header included: the signature of a request covers its headers, and moto does not check it, so
the stripped request is answered as if sent so.

Bounded: at most `max_connections` connections are served at once (more wait at accept), each
carries one request (`Connection: close`), bodies over `max_body` bytes are refused with 413, an
idle client or a silent upstream times out after `timeout` seconds, and the proxy stops itself
`lifetime` seconds after it started, should nobody stop it. Standard library only.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence
from urllib.parse import urlsplit

from lab.ports import LOOPBACK

# Not passed on in either direction: they describe one hop, not the request or its answer.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
_WRITES = ("PUT", "POST", "DELETE")


@dataclass(frozen=True)
class Forwarded:
    method: str
    path: str  # with its query
    stripped: tuple[str, ...]  # the headers removed from this request ("If-None-Match", ...)
    status: int  # the upstream's answer


class HeaderStrippingProxy:
    def __init__(
        self,
        upstream: str,
        strip: Sequence[str] = ("If-None-Match", "If-Match"),
        *,
        max_connections: int = 8,
        max_body: int = 16 * 1024 * 1024,
        timeout: float = 30.0,
        lifetime: float = 600.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream {upstream!r}: give http://host:port")
        self.upstream_host: str = parts.hostname
        self.upstream_port: int = parts.port
        self.strip = tuple(name.lower() for name in strip)
        self.max_body = max_body
        self.timeout = timeout
        self.lifetime = lifetime
        self.forwarded: list[Forwarded] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, method: str, path_prefix: str = "/") -> int:
        """How many `method` requests with a path starting with `path_prefix` went through."""
        with self._lock:
            return sum(
                1 for f in self.forwarded if f.method == method and f.path.startswith(path_prefix)
            )

    def start(self) -> None:
        self._server = _Server((LOOPBACK, 0), _handler_for(self), self._slots)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> HeaderStrippingProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, forwarded: Forwarded) -> None:
        with self._lock:
            self.forwarded.append(forwarded)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Any, handler: Any, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # in the accepting thread: further connections wait their turn
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler_for(proxy: HeaderStrippingProxy) -> Any:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers `Expect: 100-continue` before the body comes
        timeout = proxy.timeout

        def _forward(self) -> None:
            self.close_connection = True
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._refuse(411, "send a Content-Length, not a chunked body")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > proxy.max_body:
                self._refuse(413, f"body over {proxy.max_body} bytes")
                return
            body = self.rfile.read(length) if length else None
            headers, stripped = {}, []
            for name, value in self.headers.items():
                lower = name.lower()
                if lower in _HOP_HEADERS:
                    continue
                if self.command in _WRITES and lower in proxy.strip:
                    stripped.append(name)
                    continue
                headers[name] = value
            upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=proxy.timeout
            )
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
                status, reason, answer_headers = answer.status, answer.reason, answer.getheaders()
            except (OSError, http.client.HTTPException) as exc:
                self._refuse(502, f"upstream: {exc}")
                return
            finally:
                upstream.close()
            proxy._record(Forwarded(self.command, self.path, tuple(stripped), status))
            self.send_response(status, reason)
            for name, value in answer_headers:
                lower = name.lower()
                if lower in _HOP_HEADERS or lower in ("server", "date"):
                    continue
                if lower == "content-length" and self.command != "HEAD":
                    continue  # set below from what is sent
                self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(content)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        def _refuse(self, status: int, why: str) -> None:
            body = why.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            pass  # the test reads proxy.forwarded instead

    return Handler
