"""Object storage: one small interface, two backends (S3 or S3-compatible; a local directory).

Keys are '/'-separated paths (layout in DESIGN.md section 3). ETags are opaque strings compared
for equality only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str
    body: bytes
    # When the store last wrote it, by the store's own clock (S3's LastModified, the file's
    # mtime): what its writer cannot choose. Not part of equality.
    modified: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Unchanged:
    """`get(..., if_none_match=etag)` found the object still at that ETag; no body was sent."""

    key: str
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime


class Store(Protocol):
    """Failures raise `cloud.errors.StoreError`; a lost conditional write `PreconditionFailed`; a
    bounded read of a larger object `ObjectTooLarge`."""

    @property
    def location(self) -> str:
        """Where the objects live, for messages and records: a URL, and for S3 the endpoint;
        never a credential."""
        ...

    def get(
        self, key: str, *, if_none_match: str | None = None, max_bytes: int | None = None
    ) -> StoredObject | Unchanged | None:
        """The object, `Unchanged` when its ETag equals `if_none_match`, or None when absent.

        With `max_bytes`, an object larger than that raises `ObjectTooLarge` having read at most
        `max_bytes` + 1 of its bytes: how an object anyone else can write (an agent's report) is
        read without trusting its size.
        """
        ...

    def put(
        self,
        key: str,
        body: bytes,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Writes the object and returns its new ETag.

        `if_absent` creates only when no object exists (S3 `If-None-Match: *`); `if_match` replaces
        only the object at that ETag. Either condition failing raises `PreconditionFailed`.
        """
        ...

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Removes the object; absent is fine. A failed `if_match` raises `PreconditionFailed`."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""
        ...
