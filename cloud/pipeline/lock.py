"""A per-site lock in the object store, taken by a conditional write and expiring on its own.

    state/locks/<site>    {"owner", "host", "pid", "started_at", "expires_at"}

The holder is recorded (host, process, start), so a run that finds the lock held can tell a
live holder from one that died on this host, and an operator can break it (`certdrop unlock`).

Taken with put-if-absent; an expired lock (its holder died) is taken over with put-if-match on
the ETag read, so two runs can never both win. Released with delete-if-match, so a run that
outlived its lock never removes a successor's.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cloud.errors import LockChanged, Locked, PreconditionFailed
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
        self.owner = owner or secrets.token_hex(6)
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
        holder = LockHolder.parse(found.body)
        if holder.expires_at > self.now():
            raise Locked(self.site, holder.describe(), holder.expires_at, dead=holder.dead())
        log.warning(
            "taking over the expired lock of %s", holder.describe(), extra={"site": self.site}
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
        started = self.now()
        holder = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": started.isoformat(),
            "expires_at": (started + self.ttl).isoformat(),
        }
        return json.dumps(holder).encode()

    def _put_or_locked(self, put: Callable[[], str]) -> str:
        try:
            return put()
        except PreconditionFailed:
            found = self.store.get(self.key)
            if not isinstance(found, StoredObject):
                raise Locked(self.site, "another run", self.now()) from None
            holder = LockHolder.parse(found.body)
            raise Locked(
                self.site,
                holder.describe(),
                holder.expires_at,
                dead=holder.dead(),
            ) from None


@dataclass(frozen=True)
class LockHolder:
    """Who holds a site's lock, as its object records it."""

    owner: str
    expires_at: datetime
    host: str | None = None
    pid: int | None = None
    started_at: datetime | None = None

    @classmethod
    def parse(cls, body: bytes) -> LockHolder:
        raw = json.loads(body)
        started = raw.get("started_at")
        return cls(
            owner=str(raw.get("owner", "another run")),
            expires_at=datetime.fromisoformat(raw["expires_at"]),
            host=raw.get("host"),
            pid=raw.get("pid"),
            started_at=datetime.fromisoformat(started) if started else None,
        )

    def describe(self) -> str:
        if self.host is None or self.pid is None:
            return f"run {self.owner}"
        since = f", started {self.started_at:%Y-%m-%d %H:%M:%S} UTC" if self.started_at else ""
        return f"run {self.owner} (pid {self.pid} on {self.host}{since})"

    def dead(self) -> bool:
        """The holder ran on this host and its process is gone. On another host (a Lambda, a
        colleague's machine) nothing can be known: not dead."""
        if self.host != socket.gethostname() or self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, someone else's
        return False


def read_holder(store: Store, site: str) -> LockHolder | None:
    found = store.get(store_layout.lock(site))
    return LockHolder.parse(found.body) if isinstance(found, StoredObject) else None


def break_lock(store: Store, site: str, holder: LockHolder) -> None:
    """Deletes the lock the operator was shown, and only that one: a lock taken since by
    another run stays."""
    found = store.get(store_layout.lock(site))
    if not isinstance(found, StoredObject):
        return
    if LockHolder.parse(found.body) != holder:
        raise LockChanged(site)
    try:
        store.delete(store_layout.lock(site), if_match=found.etag)
    except PreconditionFailed:
        raise LockChanged(site) from None
