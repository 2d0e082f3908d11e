"""An object store in memory, with the conditional writes of the real ones and their key-ordered
listing: for simulations that write tens of thousands of objects (the fleet-limits bench and its
test), where a directory or moto would take the time the simulation is about.

The clock of `last_modified` is passed in, so a simulated fleet's objects carry simulated times.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from datetime import datetime, timezone
from typing import Callable, Iterator

from cloud.errors import ObjectTooLarge, PreconditionFailed
from cloud.store import ObjectInfo, StoredObject, Unchanged


class MemoryStore:
    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._objects: dict[str, tuple[bytes, ObjectInfo]] = {}
        self._keys: list[str] = []  # sorted, for listings by prefix
        self._lock = threading.Lock()
        self.request_counts: dict[str, int] = {}

    @property
    def location(self) -> str:
        return "memory://"

    def get(
        self, key: str, *, if_none_match: str | None = None, max_bytes: int | None = None
    ) -> StoredObject | Unchanged | None:
        self._count("GetObject")
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            return None
        body, info = found
        etag, modified = info.etag, info.last_modified
        if if_none_match is not None and if_none_match == etag:
            return Unchanged(key, etag)
        if max_bytes is not None and len(body) > max_bytes:
            raise ObjectTooLarge(key, max_bytes, len(body))
        return StoredObject(key, etag, body, modified)

    def put(
        self, key: str, body: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        self._count("PutObject")
        etag = hashlib.md5(body).hexdigest()
        with self._lock:
            found = self._objects.get(key)
            if if_absent and found is not None:
                raise PreconditionFailed(key, "exists (If-None-Match: *)")
            if if_match is not None and (found is None or found[1].etag != if_match):
                raise PreconditionFailed(key, "ETag differs (If-Match)")
            if found is None:
                bisect.insort(self._keys, key)
            info = ObjectInfo(key, etag, len(body), self._now())
            self._objects[key] = (bytes(body), info)
        return etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._count("DeleteObject")
        with self._lock:
            found = self._objects.get(key)
            if found is None:
                return
            if if_match is not None and found[1].etag != if_match:
                raise PreconditionFailed(key, "ETag differs (If-Match)")
            del self._objects[key]
            del self._keys[bisect.bisect_left(self._keys, key)]

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._count("ListObjectsV2")
        with self._lock:
            start = bisect.bisect_left(self._keys, prefix)
            end = bisect.bisect_left(self._keys, prefix + "\U0010ffff")
            found = [self._objects[key][1] for key in self._keys[start:end]]
        return iter(found)

    def _count(self, operation: str) -> None:
        self.request_counts[operation] = self.request_counts.get(operation, 0) + 1
