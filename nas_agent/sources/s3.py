"""`s3://bucket/prefix`: the store on S3 or any S3-compatible service (MinIO, R2, B2, Wasabi...).

The prefix is the store's root; the agent reads `<prefix>/agents/<id>/...` and writes
`<prefix>/agents/<id>/status.json` (and, joining, `enrollment.json`; in agent custody,
`csr/<site>.json`). `fetch` is a GET with
If-None-Match (304 is NotModified), `put_status` a PUT. Both are plain HTTP requests
(`nas_agent.sources._http`, the standard library's http.client) signed with AWS Signature
Version 4 (`nas_agent.sources.sigv4`): the agent needs no boto3, whose import and S3 client cost
a run on DSM's Python 3.8 about 240 ms and 36 MiB before the first request.

Credentials: `credentials_file`, else the environment, else the shared credentials file (see
`nas_agent.sources.aws_credentials`); looked for at the first request. The least privilege is
s3:GetObject on `<prefix>/agents/<id>/*`, s3:PutObject on `.../status.json` (and
`.../csr/*` for sites in agent custody), and s3:ListBucket
limited to the prefix: without ListBucket, S3 answers a missing object with 403, which reads as
SourceDenied.

Endpoint: AWS's regional one, `s3.<region>.amazonaws.com`, with virtual-hosted buckets
(`addressing_style` auto: path-style for a bucket name that cannot be one host name label); or
`endpoint_url`, path-style unless `addressing_style = virtual` (auto, or unset, is path-style
there; `virtual` with an IP address for a host is refused when the configuration is read).
Region: `region`, else AWS_REGION or AWS_DEFAULT_REGION, else us-east-1; on AWS, a bucket in
another region is followed once to the region S3 names (x-amz-bucket-region).

Throttling, 5xx and dropped connections are tried again, 3 attempts in all with a jittered
exponential pause (what botocore's standard mode does); each attempt counts as a request, and
`timeout` bounds each one, the answer's headers and body included (`nas_agent.sources._http`).
A status report or CSR the policy does not let the agent write (AccessDenied) is logged as a
warning and `put_status`/`put_csr` return False: a read-only agent still installs certificates.
Any other refusal (a key S3 does not know, a bad signature, a skewed clock) raises, as does every
refusal of `put_enrollment`: the invitation's credentials are made to write it, so a refusal is
an error to fix, not a read-only store. Opening a source makes no request and reads no
credentials but `credentials_file`.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlsplit

from nas_agent import store_layout
from nas_agent.sources._base import BaseSource, Fetched, NotModified, check_name
from nas_agent.sources._http import HttpClient, NoAnswer, TlsFailure, discard, read_limited
from nas_agent.sources.aws_credentials import (
    Credentials,
    CredentialsMissing,
    from_environment,
    read_credentials_file,
    region_from,
)
from nas_agent.sources.errors import (
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
)
from nas_agent.sources.sigv4 import signed_headers

_log = logging.getLogger(__name__)

ATTEMPTS = 3
_MAX_PAUSE = 20.0  # seconds, the longest pause between attempts
_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
}
_TRANSIENT_CODES = {
    "InternalError",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
}
# S3's error document; only its code and message are kept (some errors carry what was signed).
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]{0,512})</Message>")
# A bucket name usable as a host name label (what virtual-hosted addressing needs).
_HOST_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class S3Source(BaseSource):
    def __init__(
        self,
        url: str,
        agent_id: str,
        *,
        bucket: str,
        prefix: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        credentials_file: str | None = None,
        ca_file: str | None = None,
        addressing_style: str | None = None,
        timeout: float = 30.0,
        max_bytes: int,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(url, agent_id, max_bytes)
        self.bucket = bucket
        agent_prefix = store_layout.agent_prefix(agent_id)
        self._key_prefix = f"{prefix}/{agent_prefix}" if prefix else agent_prefix
        self._endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self._environ = os.environ if environ is None else environ
        self._region = region_from(self._environ, region)
        self._credentials = read_credentials_file(credentials_file) if credentials_file else None
        self._bucket_in_host = _virtual_hosted(addressing_style or "auto", bucket, endpoint_url)
        self._timeout = timeout
        self._sleep = sleep
        self._http = HttpClient(ca_file=ca_file, timeout=timeout)
        self._http_lock = threading.Lock()  # one request at a time on the kept connection

    def close(self) -> None:
        with self._http_lock:
            self._http.close()

    def fetch(
        self, name: str, etag: str | None = None, *, max_bytes: int | None = None
    ) -> Fetched | NotModified:
        headers = {"If-None-Match": etag} if etag else {}
        with self._http_lock:
            response = self._send("GET", check_name(name), headers)
            if response.status == 304:
                discard(response)
                if etag:
                    return NotModified(name, etag)
                raise SourceUnavailable(
                    "HTTP 304 to a request without If-None-Match",
                    url=self.location,
                    name=name,
                    backend_code="304",
                )
            body = read_limited(
                response,
                max_bytes=self._limit(max_bytes),
                timeout=self._timeout,
                location=self.location,
                name=name,
            )
        self._count(body_bytes=len(body))
        return Fetched(name, body, response.getheader("ETag"))

    def put_status(self, body: bytes) -> bool:
        return self._put(store_layout.STATUS, body)

    def put_enrollment(self, body: bytes) -> bool:
        """Write `agents/<id>/enrollment.json` (`certdrop-agent join`); True, or a SourceError
        with S3's code and message: never False, which would tell `join` the store is read-only."""
        self._write(store_layout.ENROLLMENT, body)
        return True

    def put_csr(self, site: str, body: bytes) -> bool:
        """Write `agents/<id>/csr/<site>.json`, as `put_status` writes."""
        return self._put(check_name(store_layout.csr_name(site)), body)

    def _put(self, name: str, body: bytes) -> bool:
        """PUT `name` below the agent's prefix; False, with a warning, when the policy does not
        let the agent write it (AccessDenied). Any other refusal raises."""
        try:
            self._write(name, body)
        except SourceDenied as exc:
            if exc.backend_code != "AccessDenied":
                raise  # the credentials themselves, not the policy: no read-only store
            _log.warning("%s not written: %s", name.split(".")[0], exc)
            return False
        return True

    def _write(self, name: str, body: bytes) -> None:
        with self._http_lock:
            discard(self._send("PUT", name, {"Content-Type": "application/json"}, body=body))

    # --- one request, its attempts and its errors ------------------------------------------

    def _send(
        self, method: str, name: str, headers: dict[str, str], *, body: bytes = b""
    ) -> http.client.HTTPResponse:
        """The response, 2xx or 304, its body not read yet; a SourceError for anything else,
        after the attempts."""
        credentials = self._find_credentials(name)
        key = self._key_prefix + name
        region, followed = self._region, False
        attempt = 0
        while True:
            attempt += 1
            url = self._object_url(key, region)
            signed = signed_headers(
                method,
                url,
                headers,
                body,
                credentials,
                region=region,
                now=datetime.now(timezone.utc),
            )
            self._count(requests=1)
            try:
                response = self._http.request(
                    method, url, signed, body if method == "PUT" else None
                )
            except TlsFailure as exc:
                raise SourceError(
                    f"TLS failed ({exc}); set source.ca_file to the endpoint's CA",
                    url=self.location,
                    name=name,
                    backend_code="TLS",
                ) from exc
            except NoAnswer as exc:
                if attempt < ATTEMPTS:
                    self._pause(attempt)
                    continue
                raise SourceUnavailable(
                    f"no answer from {self._host(region)} ({exc})",
                    url=self.location,
                    name=name,
                    backend_code=str(exc),
                ) from exc
            _log.debug("%s %s%s: HTTP %d", method, self.location, name, response.status)
            if response.status < 300 or response.status == 304:
                return response
            code, message = _error_of(response.status, discard(response))
            moved = response.getheader("x-amz-bucket-region")
            if self._endpoint_url is None and moved and moved != region and not followed:
                _log.info("bucket %s is in %s, not %s: following it", self.bucket, moved, region)
                region, followed = moved, True
                self._region = moved
                continue
            error = self._error(name, response.status, code, message)
            if error.transient and attempt < ATTEMPTS:
                self._pause(attempt)
                continue
            raise error

    def _find_credentials(self, name: str) -> Credentials:
        """`credentials_file`'s, else the environment's, found at the first request."""
        if self._credentials is None:
            try:
                self._credentials = from_environment(self._environ)
            except CredentialsMissing as exc:
                kind = "PartialCredentialsError" if exc.partial else "NoCredentialsError"
                raise SourceDenied(
                    str(exc), url=self.location, name=name, backend_code=kind
                ) from None
        return self._credentials

    def _pause(self, attempt: int) -> None:
        self._sleep(random.random() * min(2.0 ** (attempt - 1), _MAX_PAUSE))

    def _error(self, name: str, status: int, code: str, message: str) -> SourceError:
        where: dict[str, Any] = {"url": self.location, "name": name, "backend_code": code}
        reason = f"{code} (HTTP {status}) {message}".rstrip()
        if code in ("NoSuchKey", "404"):
            return SourceNotFound("no such object", **where)
        if code in _DENIED_CODES or status in (401, 403):
            return SourceDenied(reason, **where)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return SourceUnavailable(reason, **where)
        if code == "NoSuchBucket":
            reason = f"the bucket {self.bucket!r} does not exist; check source.url"
        return SourceError(reason, **where)

    # --- where the objects are --------------------------------------------------------------

    def _object_url(self, key: str, region: str) -> str:
        path = quote(key, safe="/~")
        if self._endpoint_url is None:
            scheme, host, base = "https", _aws_host(region), ""
        else:
            parts = urlsplit(self._endpoint_url)
            scheme, host, base = parts.scheme, parts.netloc, parts.path.rstrip("/")
        if self._bucket_in_host:
            return f"{scheme}://{self.bucket}.{host}{base}/{path}"
        return f"{scheme}://{host}{base}/{self.bucket}/{path}"

    def _host(self, region: str) -> str:
        if self._endpoint_url is not None:
            return urlsplit(self._endpoint_url).netloc
        return _aws_host(region)


def _virtual_hosted(style: str, bucket: str, endpoint_url: str | None) -> bool:
    """Whether the bucket is named in the host (virtual-hosted) rather than the path."""
    if style != "auto":
        return style == "virtual"
    # auto: on AWS, wherever the bucket's name can be one host name label (one with a dot would
    # not match the wildcard certificate). Other services rarely have a wildcard DNS name for
    # buckets, and an IP address has none.
    return endpoint_url is None and _HOST_LABEL.fullmatch(bucket) is not None


def _aws_host(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"s3.{region}.{suffix}"


def _error_of(status: int, body: bytes) -> tuple[str, str]:
    """(S3's error code, its message) from an error answer; the code is the HTTP status when
    there is no error document (HEAD, 304, a proxy's page)."""
    code = _ERROR_CODE.search(body)
    message = _ERROR_MESSAGE.search(body)
    return (
        code.group(1).decode("utf-8", "replace") if code else str(status),
        message.group(1).decode("utf-8", "replace") if message else "",
    )
