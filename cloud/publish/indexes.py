"""Each agent's index.json: read what the issuer signed before, change it, sign it again (v2).

An index is signed as a whole, with an issue time and an expiry (docs/bundle-format.md §4). An
agent refuses an expired index and reports itself frozen, so every index is signed again before
it expires: by any publish to the agent, and by `resign_due` (from `certdrop run`, and from the
tick through the issue function) once less than RESIGN_WITHIN of its validity is left.

Entries are carried into the new index only when a key the issuer holds signed them, the agent's
verified registry record still lists their site, and they are not older than the site's current
certificate: the index is in the store, and whoever can write there must get neither an entry of
their own signed by the issuer, nor a withdrawn or superseded one signed again with a fresh
expiry (that would hide a freeze).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature

from cloud.errors import PreconditionFailed, StoreError
from cloud.keys.rotation import Signer
from cloud.pipeline.site_state import load_site_state
from cloud.publish.registry import AgentRegistry
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent.bundle import Index, IndexEntry, parse_index, sign_index
from nas_agent.errors import BundleError

log = logging.getLogger(__name__)

INDEX_VALIDITY = timedelta(days=7)  # an agent cut off from fresh indexes is frozen after this
RESIGN_WITHIN = timedelta(days=5)  # signed again once less than this is left: a daily run does
_ATTEMPTS = 8


class AgentIndexes:
    def __init__(self, store: Store, signer: Signer):
        self.store = store
        self.signer = signer

    def set_entry(self, agent_id: str, site: str, entry: IndexEntry | None, now: datetime) -> None:
        """Replaces (or, with None, removes) the site's entry in the agent's index and signs it.

        A conditional write keeps two publishes for different sites to one agent from losing
        each other's entry."""
        self._rewrite(agent_id, now, lambda entries: _with_entry(entries, site, entry))

    def resign(self, agent_id: str, now: datetime) -> None:
        """Signs the agent's index again as it is (the agent reads its key requests when its
        index changed)."""
        self._rewrite(agent_id, now, lambda entries: entries)

    def resign_due(self, now: datetime, *, force: bool = False) -> list[str]:
        """Signs again every index that expires within RESIGN_WITHIN, is v1, or is signed by
        another key than the one in use (all of them with `force`); returns those agents."""
        resigned = []
        for info in list(self.store.list(store_layout.AGENTS_PREFIX)):
            agent_id = _agent_of_index(info.key)
            if agent_id is None:
                continue
            found = self.store.get(info.key)
            if not isinstance(found, StoredObject):
                continue
            if not force and not self._due(found.body, now):
                continue
            self._rewrite(agent_id, now, lambda entries: entries)
            resigned.append(agent_id)
        if resigned:
            log.info("signed %d index(es) again before they expire", len(resigned))
        return resigned

    def _due(self, body: bytes, now: datetime) -> bool:
        try:
            index = parse_index(body)
        except BundleError:
            return True
        return (
            index.format_version == 1
            or index.issuer_key_id != self.signer.key_id
            or index.expires_at is None
            or index.expires_at - now < RESIGN_WITHIN
        )

    def _rewrite(
        self,
        agent_id: str,
        now: datetime,
        change: Callable[[list[IndexEntry]], list[IndexEntry]],
    ) -> None:
        key = store_layout.agent_index(agent_id)
        for _ in range(_ATTEMPTS):
            found = self.store.get(key)
            current = (
                self.signed_entries(agent_id, found.body) if isinstance(found, StoredObject) else []
            )
            # Never before the index it replaces: a run whose clock is behind another's would
            # otherwise write an index the agent refuses as rolled back.
            issued = max(now, self._issued_at(agent_id, found)).replace(microsecond=0)
            body = sign_index(
                [_addressed(entry, self.signer.key_id) for entry in change(current)],
                agent_id=agent_id,
                signing_key=self.signer.key,
                issued_at=issued,
                expires_at=issued + INDEX_VALIDITY,
                rotations=self.signer.rotations,
            )
            try:
                if isinstance(found, StoredObject):
                    self.store.put(key, body, if_match=found.etag)
                else:
                    self.store.put(key, body, if_absent=True)
                return
            except PreconditionFailed:
                continue
        raise StoreError(key, f"the index changed under {_ATTEMPTS} attempts to update it")

    def _issued_at(self, agent_id: str, found: object) -> datetime:
        """When the stored index says it was signed, if the issuer signed it; else the epoch."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        if not isinstance(found, StoredObject):
            return epoch
        try:
            index = parse_index(found.body)
        except BundleError:
            return epoch
        if index.format_version != 2 or not self._index_signed(agent_id, index):
            return epoch
        return index.issued_at or epoch

    def signed_entries(self, agent_id: str, body: bytes) -> list[IndexEntry]:
        """The entries of a stored index that a key of the issuer signed for `agent_id`; the
        others are dropped, and logged."""
        try:
            index = parse_index(body)
        except BundleError as exc:
            log.error("index of agent %s unreadable, replaced: %s", agent_id, exc)
            return []
        if index.format_version == 2 and not self._index_signed(agent_id, index):
            log.error("index of agent %s not signed by the issuer: replaced", agent_id)
            return []
        kept = []
        subscribed = self._subscribed(agent_id)
        for entry in index.entries:
            why = None
            if entry.agent_id != agent_id or not _signed_by(
                self.signer, entry.issuer_key_id, entry.signature, entry.signed_bytes()
            ):
                why = "not signed by the issuer"
            elif entry.site not in subscribed:
                why = "the agent's signed record does not list the site"
            elif entry.version < self._current_version(entry.site, agent_id):
                why = "older than the site's current certificate"
            if why is not None:
                log.error(
                    "index entry for %s dropped: %s",
                    entry.site,
                    why,
                    extra={"agent": agent_id, "site": entry.site},
                )
                continue
            kept.append(entry)
        return kept

    def _subscribed(self, agent_id: str) -> frozenset[str]:
        registry = AgentRegistry(self.store, self.signer)
        record = registry.get(agent_id)
        if record is None or registry.problem(record) is not None:
            return frozenset()
        return frozenset(record.sites)

    def _current_version(self, site: str, agent_id: str) -> int:
        """The version of the site's current certificate (0 when none is recorded); in agent
        custody, of the certificate last delivered to this agent, if any. A newer entry is
        kept: it is being published, and the site state is written after the index."""
        state = load_site_state(self.store, site)
        if state is None:
            return 0
        own = state.agents.get(agent_id)
        if own is not None and own.current is not None:
            return own.current.record.version
        return state.current.version if state.current is not None else 0

    def _index_signed(self, agent_id: str, index: Index) -> bool:
        return index.agent_id == agent_id and _signed_by(
            self.signer, index.issuer_key_id or "", index.signature, index.envelope
        )


def _signed_by(signer: Signer, key_id: str, signature: bytes, signed: bytes) -> bool:
    """Whether a key the issuer holds, `key_id`, made `signature` over `signed`."""
    key = signer.trusted.get(key_id)
    if key is None:
        return False
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def resign_wanted(store: Store, now: datetime) -> bool:
    """Whether some index is old enough to need signing again, from the listing alone (the
    tick has no issuer key; the issue function then checks each index it reads)."""
    oldest_fresh = now - (INDEX_VALIDITY - RESIGN_WITHIN)
    return any(
        _agent_of_index(info.key) is not None and info.last_modified <= oldest_fresh
        for info in store.list(store_layout.AGENTS_PREFIX)
    )


def _with_entry(
    entries: Iterable[IndexEntry], site: str, entry: IndexEntry | None
) -> list[IndexEntry]:
    kept = [e for e in entries if e.site != site]
    return [*kept, entry] if entry is not None else kept


def _addressed(entry: IndexEntry, issuer_key_id: str) -> IndexEntry:
    """The entry as the new index states it: under the key that signs it now."""
    return replace(entry, issuer_key_id=issuer_key_id, signature=b"", envelope=None)


def _agent_of_index(key: str) -> str | None:
    """The agent whose index `key` is, or None for any other object under agents/."""
    agent, _, rest = key[len(store_layout.AGENTS_PREFIX) :].partition("/")
    return agent if rest == store_layout.INDEX and agent else None
