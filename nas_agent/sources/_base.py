"""What every source shares: the results of a fetch, the counters, object names and safe URLs."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from nas_agent.sources.errors import SourceTooLarge

# The largest object an agent reads: index.json is capped at 1 MiB; a sealed bundle at about
# 256 KiB, the lower limit the caller gives its fetch. Bodies are untrusted, so reading stops
# there whatever the server claims.
MAX_OBJECT_BYTES = 1024 * 1024

_Self = TypeVar("_Self", bound="BaseSource")

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


@dataclass(frozen=True)
class Fetched:
    name: str
    body: bytes
    # The source's ETag to send as If-None-Match next time; None when the source gives none.
    etag: str | None


@dataclass(frozen=True)
class NotModified:
    """The object still has the ETag the caller sent: nothing was transferred."""

    name: str
    etag: str


@dataclass(frozen=True)
class SourceCounters:
    requests: int = 0  # requests sent (S3: every HTTP attempt, retries included)
    body_bytes: int = 0  # bytes of the bodies fetched


def check_name(name: str) -> str:
    """An object name below the agent's prefix (`index.json`, `bundles/<site>/<v>.sealed`): no
    empty, `.` or `..` segment and no leading `/`, so it can never leave the prefix."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None or ".." in name.split("/"):
        raise ValueError(f"object name {name!r} is not a plain relative name")
    return name


def safe_url(url: str) -> str:
    """`url` without user info, query or fragment: what may appear in a message or a log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class BaseSource:
    """Counters and the helpers the three kinds of source share. Thread-safe."""

    def __init__(self, url: str, agent_id: str, max_bytes: int):
        self.url = safe_url(url)
        self.agent_id = agent_id
        # The agent's prefix, as errors and logs show it.
        self.location = f"{self.url.rstrip('/')}/agents/{agent_id}/"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._requests = 0
        self._body_bytes = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, agent_id={self.agent_id!r})"

    @property
    def counters(self) -> SourceCounters:
        """A snapshot of the requests made and body bytes received so far."""
        with self._lock:
            return SourceCounters(self._requests, self._body_bytes)

    def close(self) -> None:
        """Release connections; the source is not used afterwards."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, *, requests: int = 0, body_bytes: int = 0) -> None:
        with self._lock:
            self._requests += requests
            self._body_bytes += body_bytes

    def _limit(self, max_bytes: int | None) -> int:
        """The byte limit of one fetch: the source's, or a lower one its caller gives."""
        return self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)

    def _check_size(self, name: str, size: int | None, limit: int) -> None:
        """Raise SourceTooLarge if a declared or counted size is over `limit`."""
        if size is not None and size > limit:
            raise SourceTooLarge(size, limit, url=self.location, name=name)
