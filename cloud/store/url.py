"""Opens the store a URL names: `s3://bucket/prefix`, `file:///abs/dir`, or a directory path."""

from __future__ import annotations

import os
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from cloud.errors import ConfigError, ConfigProblem
from cloud.store import Store

_SETTING = "storage.url"
_FORMS = "write s3://bucket/prefix, file:///absolute/dir or a directory path"
_S3_OPTIONS = {"endpoint_url", "region", "max_attempts"}
_LOCAL_OPTIONS = {"create", "dir_mode"}


def open_store(url: str, **opts: Any) -> Store:
    """The store at `url`. Options set to None count as not given.

    s3://  takes `endpoint_url` (any S3-compatible service; default: AWS_ENDPOINT_URL_S3 or
           AWS_ENDPOINT_URL when set), `region`, `max_attempts`;
    file:// and paths take `create` (default True) and `dir_mode` (default 0o755).
    A malformed URL or an option the backend does not take raises `ConfigError`.
    """
    given = {name: value for name, value in opts.items() if value is not None}
    parts = urlsplit(url)
    if parts.scheme == "s3":
        _check_options(url, given, _S3_OPTIONS)
        # botocore's own endpoint variables, honoured here so the store then addresses buckets
        # by path, as S3-compatible services (and moto) need.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            given.setdefault("endpoint_url", endpoint)
        if not parts.netloc or parts.query or parts.fragment:
            _refuse(url, "an s3 URL names a bucket and an optional key prefix, nothing else")
        from cloud.store.s3 import S3Store  # boto3 is imported only when S3 is used

        try:
            return S3Store(parts.netloc, parts.path, **given)
        except ValueError as exc:
            _refuse(url, str(exc))
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            _refuse(url, "a file URL names a local directory: file:///absolute/dir")
        return _local(url, unquote(parts.path), given)
    if parts.scheme:
        _refuse(url, f"the scheme {parts.scheme!r} is not supported")
    return _local(url, url, given)


def _local(url: str, path: str, opts: dict[str, Any]) -> Store:
    _check_options(url, opts, _LOCAL_OPTIONS)
    if not path:
        _refuse(url, "no directory given")
    from cloud.store.local import LocalStore

    return LocalStore(os.path.abspath(path), **opts)


def _check_options(url: str, opts: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        _refuse(url, f"options {unknown} do not apply here; it takes {sorted(allowed)}")


def _refuse(url: str, cause: str) -> NoReturn:
    raise ConfigError([ConfigProblem(_SETTING, f"{url!r}: {cause}", _FORMS)])
