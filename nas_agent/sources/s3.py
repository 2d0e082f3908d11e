"""`s3://bucket/prefix`: the store on S3 or any S3-compatible service (MinIO, R2, B2, Wasabi...).

The prefix is the store's root; the agent reads `<prefix>/agents/<id>/...` and writes
`<prefix>/agents/<id>/status.json`. `fetch` is GetObject with `IfNoneMatch`; S3's 304 (a
ClientError with code "304") becomes NotModified.

Credentials: the standard AWS chain (environment, `~/.aws/credentials`, instance roles), or a
`credentials_file` in the AWS shared-credentials format whose `[default]` section holds
`aws_access_key_id`, `aws_secret_access_key` and optionally `aws_session_token`; that file must be
mode 0600 and is read when the source is opened. The least privilege is s3:GetObject on
`<prefix>/agents/<id>/*`, s3:PutObject on `.../status.json`, and s3:ListBucket limited to the
prefix: without ListBucket, S3 answers a missing object with 403, which reads as SourceDenied.

boto3 is imported when the first request is made, so the other sources work without it. The
client retries throttling, 5xx and dropped connections itself (standard mode, 3 attempts); each
attempt counts as a request. A refused status write (AccessDenied) is logged as a warning and
`put_status` returns False: a read-only agent still installs certificates.
"""

from __future__ import annotations

import configparser
import logging
import threading
from typing import Any

from nas_agent import redaction, store_layout
from nas_agent.config.errors import SecretFileError
from nas_agent.secret_files import read_secret_file
from nas_agent.sources._base import BaseSource, Fetched, NotModified, check_name
from nas_agent.sources.errors import (
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
)

_log = logging.getLogger(__name__)

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
_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


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
    ):
        super().__init__(url, agent_id, max_bytes)
        self.bucket = bucket
        agent_prefix = store_layout.agent_prefix(agent_id)
        self._key_prefix = f"{prefix}/{agent_prefix}" if prefix else agent_prefix
        self._endpoint_url = endpoint_url
        self._region = region
        self._credentials = _read_credentials(credentials_file) if credentials_file else {}
        self._verify = ca_file
        # Other services rarely have a wildcard DNS name for virtual-hosted buckets.
        self._addressing_style = addressing_style or ("path" if endpoint_url else "auto")
        self._timeout = timeout
        self._client: Any = None
        self._client_lock = threading.Lock()

    def fetch(self, name: str, etag: str | None = None) -> Fetched | NotModified:
        from botocore.exceptions import BotoCoreError, ClientError

        params = {"Bucket": self.bucket, "Key": self._key_prefix + check_name(name)}
        if etag:
            params["IfNoneMatch"] = etag
        try:
            response = self._s3().get_object(**params)
            stream = response["Body"]
            with stream:
                self._check_size(name, response.get("ContentLength"))
                body = stream.read(self.max_bytes + 1)
        except ClientError as exc:
            if etag and _code(exc) == "304":
                return NotModified(name, etag)
            raise self._error(name, exc) from exc
        except BotoCoreError as exc:
            raise self._error(name, exc) from exc
        self._check_size(name, len(body))
        self._count(body_bytes=len(body))
        return Fetched(name, body, response.get("ETag"))

    def put_status(self, body: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().put_object(
                Bucket=self.bucket,
                Key=self._key_prefix + store_layout.STATUS,
                Body=body,
                ContentType="application/json",
            )
        except ClientError as exc:
            error = self._error(store_layout.STATUS, exc)
            if isinstance(error, SourceDenied):
                _log.warning("status not written: %s", error)
                return False
            raise error from exc
        except BotoCoreError as exc:
            raise self._error(store_layout.STATUS, exc) from exc
        return True

    def _s3(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "total_max_attempts": 3},
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
            # The signed index carries each bundle's hash; not every S3-compatible service
            # understands the SDK's default checksum trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": self._addressing_style},
        )
        session = boto3.session.Session(region_name=self._region, **self._credentials)
        client = session.client(
            "s3", endpoint_url=self._endpoint_url, verify=self._verify, config=config
        )
        client.meta.events.register("before-send.s3", self._count_attempt)
        return client

    def _count_attempt(self, **_: Any) -> None:
        self._count(requests=1)

    def _error(self, name: str, exc: Exception) -> SourceError:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
            NoCredentialsError,
            PartialCredentialsError,
            ResponseStreamingError,
            SSLError,
        )

        where: dict[str, Any] = {"url": self.location, "name": name}
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            # S3's message, never the whole error: some carry the string that was signed.
            message = str(exc.response.get("Error", {}).get("Message", ""))
            reason = f"{code} (HTTP {status}) {message}".rstrip()
            if code in ("NoSuchKey", "404"):
                return SourceNotFound("no such object", backend_code=code, **where)
            if code in _DENIED_CODES or status in (401, 403):
                return SourceDenied(reason, backend_code=code, **where)
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return SourceUnavailable(reason, backend_code=code, **where)
            if code == "NoSuchBucket":
                reason = f"the bucket {self.bucket!r} does not exist; check source.url"
            return SourceError(reason, backend_code=code, **where)
        kind = type(exc).__name__
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return SourceDenied(
                f"{exc}; set source.credentials_file or the AWS environment",
                backend_code=kind,
                **where,
            )
        if isinstance(exc, SSLError):
            return SourceError(
                f"TLS failed ({exc}); set source.ca_file to the endpoint's CA",
                backend_code="TLS",
                **where,
            )
        if isinstance(
            exc, (ConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError)
        ):
            return SourceUnavailable(str(exc), backend_code=kind, **where)
        return SourceError(str(exc), backend_code=kind, **where)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _read_credentials(path: str) -> dict[str, str]:
    """The [default] section of an AWS shared-credentials file, as boto3 Session arguments."""
    key = "source.credentials_file"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_secret_file(path, key=key), source=path)
    except configparser.Error as exc:
        raise SecretFileError(
            path, "not an INI file", "write [default] and its keys", key=key
        ) from exc
    if not parser.has_section("default"):
        raise SecretFileError(path, "no [default] section", "write [default] first", key=key)
    section = parser["default"]
    values = {name: section[name].strip() for name in _CREDENTIAL_KEYS if section.get(name)}
    missing = [name for name in _CREDENTIAL_KEYS[:2] if name not in values]
    if missing:
        raise SecretFileError(
            path, f"[default] lacks {', '.join(missing)}", f"add {' and '.join(missing)}", key=key
        )
    for name in _CREDENTIAL_KEYS[1:]:  # the access key id names the key, it is no secret
        if name in values:
            redaction.register(values[name])
    return values
