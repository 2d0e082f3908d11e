"""Where the agent reads its bundles from: its own prefix `agents/<agent-id>/` of the object store.

    source = open_source("s3://certdrop/prod", "nas-01", region="eu-central-1")
    result = source.fetch("index.json", etag=state.index_etag)   # Fetched or NotModified
    sealed = source.fetch(key, max_bytes=MAX_SEALED_BYTES)       # a lower limit for one object
    source.put_status(body)                                      # True if written
    source.put_csr(site, body)                                   # True if written
    source.counters                                              # requests, body_bytes

URL forms (the URL names the store's root; the agent adds `agents/<agent-id>/`):

- `s3://bucket/prefix` — S3 or any S3-compatible service (`nas_agent.sources.s3`). Options:
  `endpoint_url` (another service than AWS; path-style addressing then), `region`,
  `credentials_file` (AWS shared-credentials format, mode 0600; else the environment, then
  ~/.aws/credentials: `nas_agent.sources.aws_credentials`),
  `ca_file`, `addressing_style` (auto, path or virtual), `timeout`. `endpoint_url` may be http://
  (a LAN MinIO): requests are signed, never carry the secret, and bundles are sealed anyway.
- `https://host/path/` — plain GETs below a base URL (`nas_agent.sources.https`). Options:
  `ca_file`, `timeout`. Read-only: `put_status` returns False. Plain `http://` is refused.
- `file:///mnt/share/certdrop` — a directory, e.g. a mounted share (`nas_agent.sources.file`).

Every source also takes `max_bytes` (default MAX_OBJECT_BYTES, 1 MiB): a larger body is refused
with SourceTooLarge before or while it is read. `fetch(..., max_bytes=n)` lowers that limit for
one object (a sealed bundle's cap); it never raises it. Options set to None are ignored; an
option the URL's kind does not take, or a bad URL (`endpoint_url` included), raises
AgentConfigError naming `source.<option>` (or `source.url`); `check_source_url(url, **options)`
makes the same checks without opening anything.

`fetch(name, etag=None)` returns Fetched(name, body, etag) or, when the object still has `etag`,
NotModified(name, etag). It raises SourceNotFound (absent), SourceUnavailable (transient: network,
timeouts, 5xx, throttling), SourceDenied (401/403, credentials), SourceTooLarge, or a terminal
SourceError (see `nas_agent.sources.errors`). `put_status(body)` writes `agents/<id>/status.json`
and returns True; it returns False, with a warning logged, where the source cannot be written
(https by nature; S3 AccessDenied; a read-only share), and raises SourceUnavailable when a write
that should work failed, SourceDenied when S3 refuses the credentials themselves. `put_csr(site,
body)` writes `agents/<id>/csr/<site>.json` (a CSR statement, `nas_agent.custody`) the same way:
https cannot, and says so by returning False. `put_enrollment(body)` (`join`) too, except that
S3 raises for every refusal: only a source that cannot be written by nature returns False.
`counters` tells the requests made and the body bytes received.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from nas_agent.config.errors import AgentConfigError, ConfigProblem
from nas_agent.ids import is_agent_id
from nas_agent.sources._base import (
    MAX_OBJECT_BYTES,
    Fetched,
    NotModified,
    SourceCounters,
    check_name,
)

__all__ = [
    "MAX_OBJECT_BYTES",
    "Fetched",
    "NotModified",
    "Source",
    "SourceCounters",
    "check_name",
    "check_source_url",
    "open_source",
]

SCHEMES = ("s3", "https", "file")
_OPTIONS = {
    "s3": {"endpoint_url", "region", "credentials_file", "ca_file", "addressing_style", "timeout"},
    "https": {"ca_file", "timeout"},
    "file": set(),
}
_ADDRESSING_STYLES = ("auto", "path", "virtual")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._=-]*")


class Source(Protocol):
    url: str  # the store's root, without credentials or query: safe to show
    location: str  # the agent's prefix below it, as errors and logs show it
    agent_id: str
    max_bytes: int

    @property
    def counters(self) -> SourceCounters: ...

    def fetch(
        self, name: str, etag: str | None = None, *, max_bytes: int | None = None
    ) -> Fetched | NotModified: ...

    def put_status(self, body: bytes) -> bool: ...

    def put_enrollment(self, body: bytes) -> bool: ...

    def put_csr(self, site: str, body: bytes) -> bool: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None: ...


def check_source_url(url: str, **options: Any) -> None:
    """Raise AgentConfigError unless `url` is a source URL this agent reads and `options` are
    options its kind takes, each problem keyed `source.url` or `source.<option>`."""
    scheme, _ = _parse(url)
    problems = _option_problems(scheme, {k: v for k, v in options.items() if v is not None})
    if problems:
        raise AgentConfigError(problems)


def open_source(url: str, agent_id: str, **options: Any) -> Source:
    """The source at `url` for agent `agent_id`; no request is made until the first call."""
    given = {key: value for key, value in options.items() if value is not None}
    problems = []
    if not is_agent_id(agent_id):
        problems.append(ConfigProblem("agent.id", f"{agent_id!r} is not an agent id", _ID_FIX))
    try:
        scheme, where = _parse(url)
    except AgentConfigError as exc:
        raise AgentConfigError(list(exc.problems) + problems) from None
    problems.extend(_option_problems(scheme, given))
    if problems:
        raise AgentConfigError(problems)
    given["max_bytes"] = given.get("max_bytes", MAX_OBJECT_BYTES)
    if scheme == "s3":
        from nas_agent.sources.s3 import S3Source

        bucket, prefix = where
        return S3Source(url, agent_id, bucket=bucket, prefix=prefix, **given)
    if scheme == "https":
        from nas_agent.sources.https import HttpsSource

        return HttpsSource(url, agent_id, **given)
    from nas_agent.sources.file import FileSource

    return FileSource(url, agent_id, root=where[0], **given)


_ID_FIX = "use lower-case letters, digits and '-' (max 63), as given at enrollment"


def _parse(url: str) -> tuple[str, tuple[str, str]]:
    """(scheme, (bucket, prefix) | (base, "") | (root, "")), or AgentConfigError."""

    def bad(cause: str, fix: str) -> AgentConfigError:
        return AgentConfigError([ConfigProblem("source.url", cause, fix)])

    if not isinstance(url, str):
        raise bad("must be a string", "write url = s3://bucket/prefix, https://... or file:///...")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError as exc:
        fix = "write s3://bucket/prefix, https://host/path/ or file:///mnt/share/certdrop"
        raise bad(f"{url!r} is not a URL ({exc})", fix) from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise bad("plain http:// is refused", "serve the store over https:// or mount it (file://)")
    if scheme not in SCHEMES:
        raise bad(
            f"{url!r} is not an s3://, https:// or file:// URL",
            "write s3://bucket/prefix, https://host/path/ or file:///mnt/share/certdrop",
        )
    if parts.query or parts.fragment:
        raise bad("has a query or fragment", "give the base URL only")
    if "@" in parts.netloc:
        raise bad("holds credentials", _CREDENTIALS_FIX[scheme])
    if scheme == "s3":
        prefix = parts.path.strip("/")
        if _BUCKET.fullmatch(parts.netloc) is None:
            raise bad(f"{parts.netloc!r} is not a bucket name", "write s3://bucket/prefix")
        if prefix and not all(_PREFIX_SEGMENT.fullmatch(s) for s in prefix.split("/")):
            raise bad(f"prefix {prefix!r} has an empty, '.' or odd segment", "write s3://b/a/b")
        return scheme, (parts.netloc, prefix)
    if scheme == "https":
        if not parts.hostname:
            raise bad("has no host", "write https://host/path/")
        return scheme, (url.strip(), "")
    if parts.netloc not in ("", "localhost"):
        raise bad(f"names the host {parts.netloc!r}", "mount the share; write file:///mount/point")
    root = unquote(parts.path)
    if not os.path.isabs(root) or root == "/":
        raise bad("needs an absolute directory below /", "write file:///mnt/share/certdrop")
    return scheme, (os.path.normpath(root), "")


_CREDENTIALS_FIX = {
    "s3": "remove them; set source.credentials_file to a 0600 file instead",
    "https": "remove them; the https source sends no credentials",
    "file": "remove them",
}


def _option_problems(scheme: str, given: dict[str, Any]) -> list[ConfigProblem]:
    problems = []
    for key in sorted(set(given) - _OPTIONS[scheme] - {"max_bytes"}):
        takers = [s for s in SCHEMES if key in _OPTIONS[s]]
        where = ", ".join(f"{s}://" for s in takers) or "no source"
        problems.append(ConfigProblem(f"source.{key}", f"only {where} takes it", "remove it"))
    for key in ("endpoint_url", "region", "credentials_file", "ca_file"):
        if key in given and (not isinstance(given[key], str) or not given[key]):
            problems.append(ConfigProblem(f"source.{key}", "must be a non-empty string", "fix it"))
    endpoint = given.get("endpoint_url")
    style = given.get("addressing_style")
    if isinstance(endpoint, str) and endpoint:
        problems.extend(_endpoint_problems(endpoint, style))
    if style is not None and style not in _ADDRESSING_STYLES:
        problems.append(
            ConfigProblem(
                "source.addressing_style",
                f"{style!r} is not an addressing style",
                f"use one of {', '.join(_ADDRESSING_STYLES)}",
            )
        )
    for key in ("timeout", "max_bytes"):
        value = given.get(key)
        if value is not None and (isinstance(value, bool) or not _positive(value)):
            problems.append(ConfigProblem(f"source.{key}", "must be positive", "give a number"))
    return problems


_ENDPOINT_FIX = "write the service's base URL, e.g. https://minio.lan:9000"


def _endpoint_problems(endpoint: str, style: object) -> list[ConfigProblem]:
    """An endpoint_url the agent can dial: http(s), a host, a port that is a number, nothing but
    a path besides; and a host name, not an IP address, where the bucket goes in the host. The
    URL is not repeated: it may hold credentials."""

    def bad(cause: str, fix: str = _ENDPOINT_FIX) -> list[ConfigProblem]:
        return [ConfigProblem("source.endpoint_url", cause, fix)]

    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError as exc:
        return bad(f"is not a URL ({exc})")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return bad("is not an https:// or http:// URL with a host")
    if "@" in parts.netloc:
        return bad("holds credentials", _CREDENTIALS_FIX["s3"])
    if parts.query or parts.fragment:
        return bad("has a query or fragment")
    if style == "virtual" and _is_ip_address(parts.hostname):
        return [
            ConfigProblem(
                "source.addressing_style",
                "virtual puts the bucket in the host name; endpoint_url's host is an IP address",
                "write addressing_style = path (or auto)",
            )
        ]
    return []


def _is_ip_address(host: str) -> bool:
    import ipaddress  # only for this rare check: not on every run's import path

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and value > 0
