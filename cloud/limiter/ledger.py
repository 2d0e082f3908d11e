"""The buckets certdrop has spent at one CA, as objects in the store:

    state/limits/<ca>.json          the fleet's shared buckets: new orders, registered domains
    state/limits/<ca>/<site>.json   one site's own: its exact set of names, its identifiers
    {"format": "certdrop-limits-v1", "directory": URL, "buckets": {key: tat (epoch seconds)}}

(<ca> is a digest of the CA's directory URL.) A bucket that is full again is dropped at the next
write, and an object left with none is deleted: the shared one holds what the fleet spent in the
last hours (a few hundred entries while a large fleet is onboarded, none when every renewal is
exempt); a site's exists for a day and a half after its last order. The tick reads the shared one
with one GET; a site's is read only by its own runs.

Each change is a read and a conditional write (If-Match on the ETag read, If-None-Match: * for
the first, delete If-Match for the last), tried again after a lost race: two runs can never
both spend the last token.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from cloud.errors import PreconditionFailed, StoreError
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)

FORMAT = "certdrop-limits-v1"
_TRIES = 12  # lost races before a change gives up (each retry reads the winner's write first)


@dataclass(frozen=True)
class Ledger:
    key: str  # the object
    stamps: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # tats
    etag: str | None = field(default=None, compare=False)  # None: no object yet

    def tat(self, bucket: str) -> datetime | None:
        stamp = self.stamps.get(bucket)
        return datetime.fromtimestamp(stamp, UTC) if stamp is not None else None

    @property
    def buckets(self) -> dict[str, datetime]:
        return {k: datetime.fromtimestamp(v, UTC) for k, v in self.stamps.items()}


def ledger_key(directory: str, site: str | None = None) -> str:
    """The fleet's shared ledger at the CA of `directory`, or with `site` that site's own."""
    return store_layout.limits_ledger(hashlib.sha256(directory.encode()).hexdigest()[:16], site)


def load(store: Store, key: str) -> Ledger:
    found = store.get(key)
    if not isinstance(found, StoredObject):
        return Ledger(key)
    body = json.loads(found.body)
    stamps = {k: float(v) for k, v in body.get("buckets", {}).items()}
    return Ledger(key, MappingProxyType(stamps), found.etag)


def change(
    store: Store,
    key: str,
    directory: str,
    now: datetime,
    edit: Callable[[Ledger], Mapping[str, datetime] | None],
) -> Ledger:
    """Applies `edit` (the ledger as read → the buckets it changes, or None to write nothing)
    by a conditional write, reading and editing again after each lost race. Returns the ledger
    as written (or as read, when `edit` wrote nothing)."""
    for _ in range(_TRIES):
        ledger = load(store, key)
        changed = edit(ledger)
        if changed is None:
            return ledger
        stamps = {**ledger.stamps, **{k: v.timestamp() for k, v in changed.items()}}
        live = {k: v for k, v in sorted(stamps.items()) if v > now.timestamp()}
        try:
            etag = _write(store, key, directory, live, ledger.etag)
        except PreconditionFailed:
            log.debug("limits ledger %s changed meanwhile: reading it again", key)
            continue
        return Ledger(key, MappingProxyType(live), etag)
    raise StoreError(key, f"changed by other runs {_TRIES} times in a row while this one wrote")


def _write(
    store: Store, key: str, directory: str, live: Mapping[str, float], etag: str | None
) -> str | None:
    if not live:
        if etag is not None:
            store.delete(key, if_match=etag)
        return None
    body = {"format": FORMAT, "directory": directory, "buckets": live}
    data = json.dumps(body, separators=(",", ":")).encode()
    if etag is None:
        return store.put(key, data, if_absent=True)
    return store.put(key, data, if_match=etag)
