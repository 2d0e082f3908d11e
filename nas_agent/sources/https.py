"""`https://host/path/`: plain GETs below a base URL (a self-hosted server, a CDN, a website).

`fetch("index.json")` is `GET <base>/agents/<id>/index.json`, with `If-None-Match` when an ETag is
given; 304 is NotModified. The server's certificate is checked against certifi's CAs (those
requests trusts) or `ca_file`. Redirects are refused rather than followed: point the URL at
the final location.

Read-only by nature: `put_status` and `put_csr` send nothing and return False (so a site in
agent custody waits: `keyreq.source_read_only`). A store that hands out one presigned URL per
object is out of scope; put a small proxy in front that serves the base-URL layout, or use
`s3://` with read-only credentials for the agent's prefix.

Statuses: 404/410 raise SourceNotFound; 401/403 SourceDenied; 408, 425, 429 and 5xx, connection
failures and timeouts (`timeout` bounds each request, headers and body included, however the
server spaces its bytes) SourceUnavailable; a TLS failure and anything else a terminal SourceError
carrying the status in `.backend_code`.
"""

from __future__ import annotations

import http.client
import logging
import threading

from nas_agent.sources._base import BaseSource, Fetched, NotModified, check_name, safe_url
from nas_agent.sources._http import HttpClient, NoAnswer, TlsFailure, discard, read_limited
from nas_agent.sources.errors import (
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
)

_log = logging.getLogger(__name__)

_TRANSIENT_STATUSES = {408, 425, 429}


class HttpsSource(BaseSource):
    def __init__(
        self,
        url: str,
        agent_id: str,
        *,
        ca_file: str | None = None,
        timeout: float = 30.0,
        max_bytes: int,
    ):
        super().__init__(url, agent_id, max_bytes)
        self._base = f"{url.rstrip('/')}/agents/{agent_id}/"
        self._timeout = timeout
        self._http = HttpClient(ca_file=ca_file, timeout=timeout)
        self._http_lock = threading.Lock()  # one request at a time on the kept connection

    def close(self) -> None:
        with self._http_lock:
            self._http.close()

    def fetch(
        self, name: str, etag: str | None = None, *, max_bytes: int | None = None
    ) -> Fetched | NotModified:
        url = self._base + check_name(name)
        headers = {"If-None-Match": etag} if etag else {}
        self._count(requests=1)
        with self._http_lock:
            return self._fetch(name, url, headers, etag, self._limit(max_bytes))

    def _fetch(
        self, name: str, url: str, headers: dict[str, str], etag: str | None, limit: int
    ) -> Fetched | NotModified:
        try:
            response = self._http.request("GET", url, headers)
        except TlsFailure as exc:
            raise SourceError(
                f"TLS failed ({exc}); set source.ca_file to the CA of the server's certificate",
                url=self.location,
                name=name,
                backend_code="TLS",
            ) from exc
        except NoAnswer as exc:
            raise SourceUnavailable(f"no answer ({exc})", url=self.location, name=name) from exc
        _log.debug("GET %s%s: HTTP %d", self.location, name, response.status)
        if response.status == 200:
            body = self._read(name, response, limit)
            self._count(body_bytes=len(body))
            return Fetched(name, body, response.getheader("ETag"))
        discard(response)
        if response.status == 304 and etag:
            return NotModified(name, response.getheader("ETag") or etag)
        raise self._status_error(name, response)

    def put_status(self, body: bytes) -> bool:
        return False

    def put_enrollment(self, body: bytes) -> bool:
        return False

    def put_csr(self, site: str, body: bytes) -> bool:
        return False

    def _read(self, name: str, response: http.client.HTTPResponse, limit: int) -> bytes:
        return read_limited(
            response,
            max_bytes=limit,
            timeout=self._timeout,
            location=self.location,
            name=name,
        )

    def _status_error(self, name: str, response: http.client.HTTPResponse) -> SourceError:
        status = response.status
        code = str(status)
        if status in (404, 410):
            return SourceNotFound("no such object", url=self.location, name=name, backend_code=code)
        if status in (401, 403):
            return SourceDenied(
                f"HTTP {status}: access refused", url=self.location, name=name, backend_code=code
            )
        if status in _TRANSIENT_STATUSES or status >= 500:
            return SourceUnavailable(
                f"HTTP {status}", url=self.location, name=name, backend_code=code
            )
        if 300 <= status < 400 and status != 304:
            target = safe_url(response.getheader("Location", "")) or "(no Location)"
            return SourceError(
                f"HTTP {status} redirect to {target}; set source.url to the final location",
                url=self.location,
                name=name,
                backend_code=code,
            )
        if status == 304:
            return SourceUnavailable(
                "HTTP 304 to a request without If-None-Match",
                url=self.location,
                name=name,
                backend_code=code,
            )
        return SourceError(f"HTTP {status}", url=self.location, name=name, backend_code=code)
