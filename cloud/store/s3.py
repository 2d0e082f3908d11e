"""The object store on S3 or any S3-compatible service (MinIO, Cloudflare R2, Backblaze B2...).

Objects live under `prefix` in `bucket`; callers see keys without the prefix. Conditional writes
use S3's `If-None-Match: *` and `If-Match: <etag>` (AWS since 2024; conditional deletes since
September 2025 — a service that ignores `If-Match` on DELETE deletes unconditionally, so check
yours before relying on it). ETags are S3's own, quoted, compared exactly.

The boto3 client is made on first use (importing boto3 takes a noticeable fraction of a second)
and shared by all threads. `request_counts` counts the HTTP requests sent, retries included, by
S3 operation name: what a bill or a benchmark counts.

Errors: 412 raises `PreconditionFailed`; throttling, 5xx and connection failures a transient
`StoreError`; anything retrying cannot fix (no such bucket, access denied, bad credentials)
`StoreRefused` with S3's error code as its `backend_code`.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, SSLError
from botocore.exceptions import ConnectionError as BotoConnectionError

from cloud.errors import ObjectTooLarge, PreconditionFailed, StoreError, StoreRefused
from cloud.store import ObjectInfo, StoredObject, Unchanged
from cloud.store._keys import check_key, check_prefix, key_problem

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
}
_CONFLICT = "ConditionalRequestConflict"


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 4,
        conflict_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """`max_attempts` counts every try of one request, botocore's own retries (throttling, 5xx,
        dropped connections) included. `conflict_retries` is how often a conditional request
        answered 409 ConditionalRequestConflict (a concurrent request on the key was in flight)
        is sent again, each after a short jittered wait through `sleep`."""
        if not bucket or "/" in bucket:
            raise ValueError(f"S3 bucket name {bucket!r} is empty or contains '/'")
        prefix = prefix.strip("/")
        if prefix and key_problem(prefix):
            raise ValueError(f"S3 key prefix {prefix!r}: {key_problem(prefix)}")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self._max_attempts = max_attempts
        self._conflict_retries = conflict_retries
        self._sleep = sleep
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}', endpoint_url={self.endpoint_url!r})"

    @property
    def location(self) -> str:
        """`s3://bucket/prefix/ at <endpoint>` (without any user or query part), or `on AWS S3`."""
        where = f"at {_public(self.endpoint_url)}" if self.endpoint_url else "on AWS S3"
        return f"s3://{self.bucket}/{self.prefix} {where}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    @property
    def request_counts(self) -> Counter[str]:
        """A snapshot of the requests sent so far, by operation ("GetObject", "PutObject"...)."""
        with self._counts_lock:
            return Counter(self._counts)

    def get(
        self, key: str, *, if_none_match: str | None = None, max_bytes: int | None = None
    ) -> StoredObject | Unchanged | None:
        params = self._params(check_key(key))
        if if_none_match is not None:
            params["IfNoneMatch"] = if_none_match
        try:
            response = self.client.get_object(**params)
            body = self._body(key, response, max_bytes)
        except ClientError as exc:
            code = _code(exc)
            if code == "304" and if_none_match is not None:
                return Unchanged(key, if_none_match)
            if code in ("NoSuchKey", "404"):
                return None
            raise self._error(key, "GetObject", exc) from exc
        except BotoCoreError as exc:
            raise self._error(key, "GetObject", exc) from exc
        return StoredObject(key, response["ETag"], body, response.get("LastModified"))

    @staticmethod
    def _body(key: str, response: dict[str, Any], max_bytes: int | None) -> bytes:
        """The response's body; with `max_bytes`, refused from its Content-Length before any of
        it is read, and never read past `max_bytes` + 1 bytes (the connection is dropped)."""
        stream = response["Body"]
        if max_bytes is None:
            return stream.read()
        size = response.get("ContentLength")
        if isinstance(size, int) and size > max_bytes:
            stream.close()
            raise ObjectTooLarge(key, max_bytes, size)
        body = stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            stream.close()
            raise ObjectTooLarge(key, max_bytes, size if isinstance(size, int) else None)
        return body

    def put(
        self, key: str, body: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        if if_absent and if_match is not None:
            raise ValueError("put: if_absent and if_match exclude each other")
        params = self._params(check_key(key))
        params["Body"] = body
        if if_absent:
            params["IfNoneMatch"] = "*"
        if if_match is not None:
            params["IfMatch"] = if_match
        try:
            return self._send("put_object", params)["ETag"]
        except ClientError as exc:
            if _code(exc) == "NoSuchKey" and if_match is not None:
                raise PreconditionFailed(key, f"put if-match {if_match}: no object") from exc
            if (if_absent or if_match is not None) and _is_precondition(exc) and _was_retried(exc):
                # botocore resent the request after losing an answer: the first attempt may have
                # been applied, and the 412 then answers our own write.
                etag = self._etag_if_body(key, body)
                if etag is not None:
                    return etag
            raise self._error(key, "PutObject", exc) from exc
        except BotoCoreError as exc:
            raise self._error(key, "PutObject", exc) from exc

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        params = self._params(check_key(key))
        if if_match is not None:
            params["IfMatch"] = if_match
        try:
            self._send("delete_object", params)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return  # If-Match on an absent object: absent is what the caller wants
            raise self._error(key, "DeleteObject", exc) from exc
        except BotoCoreError as exc:
            raise self._error(key, "DeleteObject", exc) from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)  # here, not in the generator, so a bad prefix fails at the call
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix) :]
                    if key_problem(key):
                        continue  # written by something else; no call of this store could use it
                    yield ObjectInfo(
                        key=key,
                        etag=item["ETag"],
                        size=item["Size"],
                        last_modified=item["LastModified"],
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(prefix, "ListObjectsV2", exc) from exc

    def _params(self, key: str) -> dict[str, Any]:
        return {"Bucket": self.bucket, "Key": self.prefix + key}

    def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Calls `method`, repeating it while S3 answers 409 ConditionalRequestConflict: a
        concurrent request on the key was in flight, and AWS's advice is to send it again."""
        call = getattr(self.client, method)
        for attempt in range(1, self._conflict_retries + 1):
            try:
                return call(**params)
            except ClientError as exc:
                if _code(exc) != _CONFLICT:
                    raise
            self._sleep(random.uniform(0, 0.05 * 2**attempt))
        return call(**params)

    def _etag_if_body(self, key: str, body: bytes) -> str | None:
        """The object's ETag if it holds `body` (S3's ETag of a single-part upload is its MD5)."""
        try:
            etag = self.client.head_object(**self._params(key))["ETag"]
        except (ClientError, BotoCoreError):
            return None  # cannot tell: report the precondition failure as it came
        return etag if etag == f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"' else None

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},
            connect_timeout=10,
            read_timeout=30,
            # Bundles carry their own hash in the signed index; the SDK's default CRC trailers
            # are not understood by every S3-compatible service.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # Other services rarely have a wildcard DNS name for virtual-hosted buckets.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        session = boto3.session.Session()
        client = session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )
        client.meta.events.register("before-send.s3", self._count_request)
        return client

    def _count_request(self, event_name: str, **_: Any) -> None:
        with self._counts_lock:
            self._counts[event_name.rsplit(".", 1)[-1]] += 1

    def _error(self, key: str, operation: str, exc: Exception) -> StoreError:
        where = f"S3 {operation} s3://{self.bucket}/{self.prefix}{key}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = exc.response.get("Error", {}).get("Message", "")
            cause = f"{where}: {code} (HTTP {status}) {message}".rstrip()
            if _is_precondition(exc):
                return PreconditionFailed(key, cause)
            if code == "NoSuchBucket":
                cause = f"{where}: bucket {self.bucket!r} does not exist" + (
                    f" at {self.endpoint_url}" if self.endpoint_url else ""
                )
            if code in _TRANSIENT_CODES or code == _CONFLICT or status >= 500 or status == 429:
                return StoreError(key, cause)
            return StoreRefused(key, cause, backend_code=code)
        cause = f"{where}: {exc}"
        if isinstance(exc, HTTPClientError | BotoConnectionError) and not isinstance(exc, SSLError):
            return StoreError(key, cause)
        return StoreRefused(key, cause, backend_code=type(exc).__name__)


def _public(url: str) -> str:
    """An endpoint URL as it may be shown: scheme, host, port and path only."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_precondition(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(exc) == "PreconditionFailed" or status == 412


def _was_retried(exc: ClientError) -> bool:
    return bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts"))
