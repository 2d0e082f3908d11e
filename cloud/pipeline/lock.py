"""A per-site lock in the object store, taken by a conditional write and expiring on its own.

    state/locks/<site>    {"owner": "...", "expires_at": "..."}

Taken with put-if-absent; an expired lock (its holder died) is taken over with put-if-match on
the ETag read, so two runs can never both win. Released with delete-if-match, so a run that
outlived its lock never removes a successor's.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cloud.errors import Locked, PreconditionFailed
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)


class SiteLock:
    def __init__(
        self,
        store: Store,
        site: str,
        ttl: timedelta,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: str | None = None,
    ):
        self.store = store
        self.site = site
        self.key = store_layout.lock(site)
        self.ttl = ttl
        self.now = now
        self.owner = owner or uuid.uuid4().hex[:12]
        self._etag: str | None = None

    def acquire(self) -> None:
        """Takes the lock or raises Locked."""
        body = self._body()
        try:
            self._etag = self.store.put(self.key, body, if_absent=True)
            return
        except PreconditionFailed:
            pass
        found = self.store.get(self.key)
        if not isinstance(found, StoredObject):
            # Released between our two calls: one more try, and a loser simply sees it held.
            self._etag = self._put_or_locked(lambda: self.store.put(self.key, body, if_absent=True))
            return
        holder = json.loads(found.body)
        expires_at = datetime.fromisoformat(holder["expires_at"])
        if expires_at > self.now():
            raise Locked(self.site, holder["owner"], expires_at)
        log.warning(
            "taking over the expired lock of %s", holder["owner"], extra={"site": self.site}
        )
        self._etag = self._put_or_locked(
            lambda: self.store.put(self.key, body, if_match=found.etag)
        )

    def release(self) -> None:
        if self._etag is None:
            return
        try:
            self.store.delete(self.key, if_match=self._etag)
        except PreconditionFailed:
            log.warning("lock expired and was taken over before release", extra={"site": self.site})
        self._etag = None

    def __enter__(self) -> SiteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _body(self) -> bytes:
        expires_at = self.now() + self.ttl
        return json.dumps({"owner": self.owner, "expires_at": expires_at.isoformat()}).encode()

    def _put_or_locked(self, put: Callable[[], str]) -> str:
        try:
            return put()
        except PreconditionFailed:
            found = self.store.get(self.key)
            holder = json.loads(found.body) if isinstance(found, StoredObject) else {}
            raise Locked(
                self.site,
                holder.get("owner", "another run"),
                datetime.fromisoformat(holder["expires_at"]) if holder else self.now(),
            ) from None
