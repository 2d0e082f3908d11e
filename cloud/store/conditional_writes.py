"""Whether a store honours conditional writes, which locks and version reservations rely on.

An S3-compatible server that ignores `If-None-Match: *` or `If-Match` accepts every write: two
runs then both hold a site's lock, and each removes the other's TXT values. `probe` asks the
store itself: it creates a probe object with `if_absent`, creates it again (which must be
refused), replaces it naming a wrong ETag (which must be refused too), and deletes it.

`require` is what a run calls: one GET of the record `state/store-check.json` when an earlier
probe found this store (its URL and endpoint, `Store.location`) honours them; otherwise it
probes, records what it found, and raises `NoConditionalWrites` when the store does not. So a
store moved to another endpoint is probed again, and a store that failed is probed by every run
until it passes. `certdrop init` probes again whatever the record says; `certdrop doctor` probes
and records nothing.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cloud.errors import NoConditionalWrites, PreconditionFailed, StoreError
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)

IF_NONE_MATCH = "If-None-Match: * over an existing object"
IF_MATCH = "If-Match naming a wrong ETag"
_WRONG_ETAG = '"00000000000000000000000000000000"'  # a well-formed MD5 ETag no probe body has


@dataclass(frozen=True)
class ProbeResult:
    location: str  # the store probed (`Store.location`)
    key: str  # the probe object
    accepted: tuple[str, ...]  # the conditional writes it accepted and must have refused

    @property
    def ok(self) -> bool:
        return not self.accepted

    def refusal(self) -> NoConditionalWrites:
        return NoConditionalWrites(self.key, self.location, self.accepted)


def probe(store: Store) -> ProbeResult:
    """Three writes and a delete of one new object. A store error (unreachable, access denied)
    propagates: it says nothing about conditional writes."""
    key = store_layout.store_probe(secrets.token_hex(8))
    store.put(key, b"certdrop probe: created", if_absent=True)
    accepted = []
    try:
        if _accepted(lambda: store.put(key, b"certdrop probe: created again", if_absent=True)):
            accepted.append(IF_NONE_MATCH)
        if _accepted(lambda: store.put(key, b"certdrop probe: replaced", if_match=_WRONG_ETAG)):
            accepted.append(IF_MATCH)
    finally:
        try:
            store.delete(key)
        except StoreError as exc:  # a few bytes left under state/store-probe/: harmless
            log.warning("probe object not deleted: %s", exc)
    return ProbeResult(store.location, key, tuple(accepted))


def require(store: Store, *, probe_again: bool = False) -> ProbeResult | None:
    """Returns when the store honours conditional writes, else raises `NoConditionalWrites`.
    Probes (and records the result) unless the record says this store passed; with
    `probe_again`, always. Returns the probe's result, None when the record sufficed."""
    if not probe_again and _recorded_pass(store):
        return None
    result = probe(store)
    record = {"location": result.location, "ok": result.ok, "accepted": list(result.accepted)}
    store.put(store_layout.STORE_CHECK, json.dumps(record, indent=2).encode())
    if not result.ok:
        raise result.refusal()
    log.debug("the store honours conditional writes: %s", result.location)
    return result


class Gate:
    """`require` at most once for all the threads of one run: they share its verdict (a failed
    probe is not repeated for each site). A store error leaves the question open."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._passed = False
        self._refusal: NoConditionalWrites | None = None

    def require(self) -> None:
        with self._lock:
            if self._passed:
                return
            if self._refusal is not None:
                raise NoConditionalWrites(
                    self._refusal.key, self._refusal.store, self._refusal.accepted
                )
            try:
                require(self._store)
            except NoConditionalWrites as exc:
                self._refusal = exc
                raise
            self._passed = True


def _accepted(write: Callable[[], object]) -> bool:
    try:
        write()
    except PreconditionFailed:
        return False
    return True


def _recorded_pass(store: Store) -> bool:
    found = store.get(store_layout.STORE_CHECK)
    if not isinstance(found, StoredObject):
        return False
    try:
        record = json.loads(found.body)
        return record["location"] == store.location and record["ok"] is True
    except (ValueError, TypeError, KeyError):
        return False  # unreadable: probe again, and the new record replaces it
