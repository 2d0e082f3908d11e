"""HTTP for the https:// and s3:// sources, over the standard library's http.client.

    client = HttpClient(ca_file=None, timeout=30.0)
    response = client.request("GET", "https://host/path", {"If-None-Match": etag})
    body = read_limited(response, max_bytes=..., timeout=..., location=..., name=...)

Why not requests (the DSM client's library): importing it costs an agent run on DSM's Python 3.8
about 75 ms of the 150 ms it may take, most of it spent on what an idle poll never uses
(requests 2.32 loads certifi's whole CA bundle into an SSL context at import, and imports
charset_normalizer, http.cookiejar and urllib3's URL grammar). An idle poll is one GET (and for
S3 one PUT) to one host: a keep-alive connection per host, TLS checked against `ca_file` or
certifi's bundle (the CAs requests uses), no redirect followed, and the proxy of the environment
(https_proxy, http_proxy, no_proxy) as requests honours it.

`timeout` bounds each request as a whole, from dialling to the last byte of the answer's body:
every receive waits only for the time the request has left (`_DeadlineReader`), so a server that
sends its headers or body a byte now and then cannot hold the agent past it, as a timeout per
receive would let it. (Dialling and the TLS handshake each wait at most that time.)

`request` raises TlsFailure when the server's certificate is not trusted (or `ca_file` cannot be
loaded) and NoAnswer when no status line came (refused, reset, timed out, or a host or port it
cannot dial); the caller turns those into source errors.
"""

from __future__ import annotations

import http.client
import io
import os
import select
import socket
import ssl
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from nas_agent.sources.errors import SourceTooLarge, SourceUnavailable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

USER_AGENT = "certdrop-agent"
_CHUNK = 64 * 1024


class NoAnswer(Exception):
    """No response: the connection was refused, reset or timed out, or the URL names a host or
    port that cannot be dialled (transient)."""


class TlsFailure(Exception):
    """The TLS handshake failed: most often a certificate that `ca_file` does not vouch for."""


class HttpClient:
    """Keeps one connection per scheme, host and port; not shared between threads."""

    def __init__(self, *, ca_file: str | None, timeout: float):
        self._ca_file = ca_file
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> http.client.HTTPResponse:
        """Sends the request (with a Host header of `url`'s host unless given) and returns the
        response with its body unread. The caller reads it or closes it, all within `timeout`
        of this call."""
        deadline = time.monotonic() + self._timeout
        try:
            parts = urlsplit(url)
            connection, absolute = self._connection(parts.scheme, parts.netloc)
        except (ValueError, http.client.HTTPException) as exc:  # InvalidURL: a port not a number
            raise NoAnswer(type(exc).__name__) from exc
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        sent = {"User-Agent": USER_AGENT, **headers}
        if not any(name.lower() == "host" for name in sent):
            sent["Host"] = parts.netloc
        try:
            _give_time_left(connection, deadline)
            connection.request(method, url if absolute else target, body=body, headers=sent)
            _give_time_left(connection, deadline)  # _Response takes it as its own deadline
            return connection.getresponse()
        except (ssl.SSLCertVerificationError, ssl.CertificateError) as exc:
            connection.close()
            raise TlsFailure(str(exc)) from exc
        except ssl.SSLError as exc:
            connection.close()
            raise TlsFailure(type(exc).__name__) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise NoAnswer(type(exc).__name__) from exc

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        """The connection for `netloc` (made, or found again and still open), and whether the
        request goes to a plain-HTTP proxy and so names the whole URL."""
        key = (scheme, netloc)
        connection = self._connections.get(key)
        if connection is not None and _dropped(connection):
            connection.close()  # the server closed it between requests: dial again
        proxy = _proxy_for(scheme, netloc)
        if connection is None:
            connection = self._open(scheme, netloc, proxy)
            self._connections[key] = connection
        return connection, proxy is not None and scheme == "http"

    def _open(self, scheme: str, netloc: str, proxy: str | None) -> http.client.HTTPConnection:
        if scheme == "https":
            if self._context is None:
                self._context = _tls_context(self._ca_file)
            if proxy is None:
                return _TlsConnection(netloc, timeout=self._timeout, context=self._context)
            tunnelled = _TlsConnection(
                urlsplit(proxy).netloc, timeout=self._timeout, context=self._context
            )
            tunnelled.set_tunnel(netloc)  # CONNECT host:port, then TLS with the host itself
            return tunnelled
        if proxy is not None:
            return _Connection(urlsplit(proxy).netloc, timeout=self._timeout)
        return _Connection(netloc, timeout=self._timeout)


class _DeadlineReader(io.RawIOBase):
    """A response's socket as the raw stream under its buffer, each receive waiting only for the
    time left before `deadline`; past it, socket.timeout."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        # socket.makefile's stream, not the socket itself: it keeps the socket open while the
        # response reads, as http.client expects when the connection closes first.
        self._stream = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the request's time is up")
        self._sock.settimeout(left)
        return self._stream.readinto(buffer)

    def close(self) -> None:
        self._stream.close()
        super().close()


class _Response(http.client.HTTPResponse):
    """A response whose status line, headers and body are read by one deadline: the socket's
    timeout when it is made (`HttpClient.request` sets it to the time its request has left)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        left = sock.gettimeout()
        assert left is not None  # every connection is made with a timeout
        self.fp.close()  # the reader http.client made, unused yet: read through the deadline's
        self.fp = io.BufferedReader(_DeadlineReader(sock, time.monotonic() + left))
        self._sock = sock

    def close(self) -> None:
        # http.client lets go of fp once the body is read. A proxy's answer to CONNECT is read
        # by `_tunnel` (status and headers, no begin(): msg stays None) and closed there: its
        # socket is the tunnel the TLS handshake goes through next, which must stay open.
        unfinished = not self.isclosed() and self.msg is not None
        super().close()
        if unfinished:
            # The rest of the body is still on a kept connection: end the connection, so the
            # next request dials again instead of reading that rest as its answer.
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)


class _Connection(http.client.HTTPConnection):
    response_class = _Response


class _TlsConnection(http.client.HTTPSConnection):
    response_class = _Response


def _give_time_left(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Let the connection's next dial, sends and receives wait only for the time before
    `deadline` (a kept connection's socket still has the previous request's leftover)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("the request's time is up")
    connection.timeout = left
    if connection.sock is not None:
        connection.sock.settimeout(left)


def read_limited(
    response: http.client.HTTPResponse, *, max_bytes: int, timeout: float, location: str, name: str
) -> bytes:
    """The body, reading no more than `max_bytes` (a declared Content-Length over it is refused
    before reading) and within what is left of its request's `timeout` (`HttpClient.request`):
    a body that stops coming or trickles is SourceUnavailable once that time is up. The response
    is closed when not read to its end."""
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise SourceTooLarge(int(declared), max_bytes, url=location, name=name)
    chunks = []
    received = 0
    try:
        while True:
            # Each receive below waits only for the time left, so read() cannot outlast it.
            chunk = response.read(min(_CHUNK, max_bytes + 1 - received))
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                response.close()
                raise SourceTooLarge(None, max_bytes, url=location, name=name)
            chunks.append(chunk)
    except socket.timeout as exc:
        response.close()
        raise SourceUnavailable(
            f"body cut short: not received within the {timeout:g} s a request may take",
            url=location,
            name=name,
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        response.close()
        raise SourceUnavailable(
            f"body cut short ({type(exc).__name__})", url=location, name=name
        ) from exc
    return b"".join(chunks)


def discard(response: http.client.HTTPResponse, limit: int = 64 * 1024) -> bytes:
    """Up to `limit` bytes of an answer the caller only looks into (an error document); the
    response is closed unless read to its end, so the connection is only kept when clean."""
    try:
        body = response.read(limit + 1)
    except (OSError, http.client.HTTPException):
        response.close()
        return b""
    if len(body) > limit:
        response.close()
    return body[:limit]


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    if ca_file is None:
        import certifi  # requests' dependency: the CAs requests trusts, not the system's

        return ssl.create_default_context(cafile=certifi.where())
    try:
        return ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # missing, unreadable, or no PEM certificate in it (ssl.SSLError)
        raise TlsFailure(f"cannot load the CA file {ca_file}: {exc.strerror or exc}") from exc


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether a kept connection was closed by the server (readable while idle means EOF)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _proxy_for(scheme: str, netloc: str) -> str | None:
    """The proxy URL the environment names for `scheme` (https_proxy, http_proxy, in either
    case) unless no_proxy exempts the host, as requests reads them; None, and nothing imported,
    without any *_proxy variable."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    from urllib.request import getproxies, proxy_bypass  # on Linux: the environment's

    proxy = getproxies().get(scheme)
    host = urlsplit(f"//{netloc}").hostname or netloc
    if not proxy or proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
