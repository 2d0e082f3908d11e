"""`s3://bucket/prefix`: the store on S3 or any S3-compatible service (MinIO, R2, B2, Wasabi...).

The prefix is the store's root; the agent reads `<prefix>/agents/<id>/...` and writes
`<prefix>/agents/<id>/status.json`. `fetch` is a GET with If-None-Match (304 is NotModified),
`put_status` a PUT. Both are plain HTTP requests through `requests`, signed with AWS Signature
Version 4 by requests-aws4auth (a 50 kB library over requests, maintained since 2015); the
agent needs no boto3, which costs a NAS 60 MiB of memory and a fifth of a second per run.

Credentials: `credentials_file`, else the environment, else the shared credentials file (see
`nas_agent.sources.aws_credentials`); looked for at the first request. The least privilege is
s3:GetObject on `<prefix>/agents/<id>/*`, s3:PutObject on `.../status.json`, and s3:ListBucket
limited to the prefix: without ListBucket, S3 answers a missing object with 403, which reads as
SourceDenied.

Endpoint: AWS's regional one, `s3.<region>.amazonaws.com`, with virtual-hosted buckets
(`addressing_style` auto: path-style for a bucket name that cannot be a host name); or
`endpoint_url`, path-style unless `addressing_style = virtual`. Region: `region`, else
AWS_REGION or AWS_DEFAULT_REGION, else us-east-1; on AWS, a bucket in another region is
followed once to the region S3 names (x-amz-bucket-region).

Throttling, 5xx and dropped connections are tried again, 3 attempts in all with a jittered
exponential pause (what botocore's standard mode does); each attempt counts as a request. A
refused status write (AccessDenied) is logged as a warning and `put_status` returns False: a
read-only agent still installs certificates. `requests` is imported at the first request, so
opening a source costs nothing.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlsplit

from nas_agent import store_layout
from nas_agent.sources._base import BaseSource, Fetched, NotModified, check_name
from nas_agent.sources._http import read_limited
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
_ERROR_BODY_LIMIT = 64 * 1024
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
        self._verify: str | bool = ca_file or True
        # Other services rarely have a wildcard DNS name for virtual-hosted buckets.
        self._addressing_style = addressing_style or ("path" if endpoint_url else "auto")
        self._timeout = timeout
        self._sleep = sleep
        self._session: Any = None
        self._signers: dict[str, Any] = {}
        self._client_lock = threading.Lock()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def fetch(self, name: str, etag: str | None = None) -> Fetched | NotModified:
        headers = {"If-None-Match": etag} if etag else {}
        response = self._send("GET", check_name(name), headers)
        with response:
            if response.status_code == 304:
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
                max_bytes=self.max_bytes,
                timeout=self._timeout,
                location=self.location,
                name=name,
            )
        self._count(body_bytes=len(body))
        return Fetched(name, body, response.headers.get("ETag"))

    def put_status(self, body: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
        try:
            self._send("PUT", store_layout.STATUS, headers, body=body).close()
        except SourceDenied as exc:
            _log.warning("status not written: %s", exc)
            return False
        return True

    # --- one request, its attempts and its errors ------------------------------------------

    def _send(
        self,
        method: str,
        name: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
    ) -> Any:
        """The response, 2xx or 304, its body not read yet; a SourceError for anything else,
        after the attempts."""
        import requests

        session = self._client(name)
        key = self._key_prefix + name
        region, followed = self._region, False
        attempt = 0
        while True:
            attempt += 1
            self._count(requests=1)
            try:
                response = session.request(
                    method,
                    self._object_url(key, region),
                    headers=headers,
                    data=body,
                    auth=self._signer(region),
                    timeout=self._timeout,
                    verify=self._verify,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.exceptions.SSLError as exc:
                raise SourceError(
                    f"TLS failed ({type(exc).__name__}); set source.ca_file to the endpoint's CA",
                    url=self.location,
                    name=name,
                    backend_code="TLS",
                ) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt < ATTEMPTS:
                    self._pause(attempt)
                    continue
                raise SourceUnavailable(
                    f"no answer from {self._host(region)} ({type(exc).__name__})",
                    url=self.location,
                    name=name,
                    backend_code=type(exc).__name__,
                ) from exc
            except requests.RequestException as exc:
                raise SourceError(
                    f"request failed ({type(exc).__name__})",
                    url=self.location,
                    name=name,
                    backend_code=type(exc).__name__,
                ) from exc
            _log.debug("%s %s%s: HTTP %d", method, self.location, name, response.status_code)
            if response.status_code < 300 or response.status_code == 304:
                return response
            with response:
                code, message = _error_of(response)
            moved = response.headers.get("x-amz-bucket-region")
            if self._endpoint_url is None and moved and moved != region and not followed:
                _log.info("bucket %s is in %s, not %s: following it", self.bucket, moved, region)
                region, followed = moved, True
                self._region = moved
                continue
            error = self._error(name, response.status_code, code, message)
            if error.transient and attempt < ATTEMPTS:
                self._pause(attempt)
                continue
            raise error

    def _client(self, name: str) -> Any:
        """The session, made at the first request with the credentials found then."""
        with self._client_lock:
            if self._session is None:
                import requests

                if self._credentials is None:
                    try:
                        self._credentials = from_environment(self._environ)
                    except CredentialsMissing as exc:
                        kind = "PartialCredentialsError" if exc.partial else "NoCredentialsError"
                        raise SourceDenied(
                            str(exc), url=self.location, name=name, backend_code=kind
                        ) from None
                self._session = requests.Session()
            return self._session

    def _signer(self, region: str) -> Any:
        signer = self._signers.get(region)
        if signer is None:
            from requests_aws4auth import AWS4Auth

            credentials: Credentials | None = self._credentials
            assert credentials is not None  # _client found them
            signer = AWS4Auth(
                credentials.access_key_id,
                credentials.secret_access_key,
                region,
                "s3",
                session_token=credentials.session_token,
            )
            self._signers[region] = signer
        return signer

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
        if self._virtual_hosted(scheme):
            return f"{scheme}://{self.bucket}.{host}{base}/{path}"
        return f"{scheme}://{host}{base}/{self.bucket}/{path}"

    def _virtual_hosted(self, scheme: str) -> bool:
        if self._addressing_style == "path":
            return False
        if self._addressing_style == "virtual":
            return True
        # auto: virtual-hosted wherever the bucket's name can be a host name (with a dot, not
        # over TLS: the endpoint's wildcard certificate covers one label only).
        labels = self.bucket.split(".")
        return (scheme == "http" or len(labels) == 1) and all(map(_HOST_LABEL.fullmatch, labels))

    def _host(self, region: str) -> str:
        if self._endpoint_url is not None:
            return urlsplit(self._endpoint_url).netloc
        return _aws_host(region)


def _aws_host(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"s3.{region}.{suffix}"


def _error_of(response: Any) -> tuple[str, str]:
    """(S3's error code, its message) from an error response; the code is the HTTP status when
    there is no error document (HEAD, 304, a proxy's page)."""
    try:
        body = response.raw.read(_ERROR_BODY_LIMIT, decode_content=True) or b""
    except Exception:  # a body cut short: the status still tells enough
        body = b""
    code = _ERROR_CODE.search(body)
    message = _ERROR_MESSAGE.search(body)
    return (
        code.group(1).decode("utf-8", "replace") if code else str(response.status_code),
        message.group(1).decode("utf-8", "replace") if message else "",
    )
