"""Placing and removing the dns-01 TXT values of one site's order, with a journal.

The journal is written before any value is added, so a run that dies between adding and removing
leaves a note the next run of that site uses to remove the stale values first. Removal is always
attempted for every value, also after failures; the journal is dropped only when all are gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from cloud.dns01.names import locate
from cloud.dns01.propagation import DnsCheckSettings, wait_for_records
from cloud.dns01.providers.base import BatchingDnsProvider, DnsProvider, TxtRecord
from cloud.errors import CertdropError, DnsError
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenge:
    domain: str  # "example.test" or "*.example.test"
    value: str  # the TXT value that answers it


@dataclass(frozen=True)
class Journalled:
    """One TXT value a run placed: the provider that placed it, since when, and the name it
    validates (so its place can be worked out again; "" in journals older than that)."""

    provider: str
    record: TxtRecord
    at: datetime
    name: str = ""


class ChallengeJournal:
    """The TXT values a site's runs have placed and not yet removed, in the object store.

    Values are added before they are placed and dropped one by one as they are removed, so a
    value one run could not remove stays listed while later runs place and remove their own.
    """

    def __init__(self, store: Store, site: str):
        self.store = store
        self.key = store_layout.challenge_journal(site)

    def record(self, provider: str, placed: Sequence[tuple[str, TxtRecord]], at: datetime) -> None:
        """`placed`: (the name validated, its record) for each value about to be added."""
        entries = [*self.entries(), *(Journalled(provider, r, at, n) for n, r in placed)]
        self._write(entries)

    def entries(self) -> tuple[Journalled, ...]:
        found = self.store.get(self.key)
        if not isinstance(found, StoredObject):
            return ()
        body = json.loads(found.body)
        if "records" in body:  # written before entries had their own provider and time
            at = datetime.fromtimestamp(0, UTC)
            return tuple(Journalled(body["provider"], TxtRecord(**r), at) for r in body["records"])
        return tuple(
            Journalled(
                e["provider"],
                TxtRecord(**e["record"]),
                datetime.fromisoformat(e["at"]),
                e.get("name", ""),
            )
            for e in body["entries"]
        )

    def drop(self, removed: Sequence[TxtRecord]) -> None:
        self._write([e for e in self.entries() if e.record not in removed])

    def leftovers(self) -> tuple[str, ...]:
        """What is journalled, as "fqdn value" lines for the state, status and alerts."""
        return tuple(f"{e.record.fqdn} {e.record.value}" for e in self.entries())

    def _write(self, entries: Sequence[Journalled]) -> None:
        if not entries:
            self.store.delete(self.key)
            return
        body = {
            "entries": [
                {
                    "provider": e.provider,
                    "record": asdict(e.record),
                    "at": e.at.isoformat(),
                    "name": e.name,
                }
                for e in entries
            ]
        }
        self.store.put(self.key, json.dumps(body, sort_keys=True).encode())


# A value no run could remove for this long is dropped from the journal with a warning naming
# it: its zone or provider is gone (a bad `resolvers` setting, say), and removing it is a person's.
GIVE_UP_AFTER = timedelta(days=7)


class Dns01Solver:
    """Adds, checks and removes one site's challenge values through its provider."""

    def __init__(
        self,
        provider_name: str,
        provider: DnsProvider,
        settings: DnsCheckSettings,
        journal: ChallengeJournal,
        provider_by_name: Callable[[str], DnsProvider] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.provider_name = provider_name
        self.provider = provider
        self.settings = settings
        self.journal = journal
        # The stale values of a crashed run may have been placed through another provider,
        # if the configuration changed since.
        self.provider_by_name = provider_by_name or (lambda _name: provider)
        self.now = now

    def sweep(self) -> int:
        """Removes the values earlier runs left (`sweep_journal`); returns how many are left."""
        return sweep_journal(self.journal, self.settings, self._provider_for, self.now)

    def _provider_for(self, name: str) -> DnsProvider:
        return self.provider if name == self.provider_name else self.provider_by_name(name)

    def present(self, challenges: Sequence[Challenge]) -> tuple[TxtRecord, ...]:
        """Works out where each value goes (following CNAMEs), journals them, then adds them.

        The journal holds every record before the first is added, so `cleanup` of the returned
        records (or the next run's `sweep`) covers a failure halfway through.
        """
        located = {}
        placed = []
        for challenge in challenges:
            # The apex and the wildcard share one name: locate it once.
            name = challenge.domain.removeprefix("*.")
            if name not in located:
                located[name] = locate(name, self.settings)
            where = located[name]
            placed.append(
                (name, TxtRecord(zone=where.zone, fqdn=where.fqdn, value=challenge.value))
            )
        self.journal.record(self.provider_name, placed, self.now())
        return tuple(record for _name, record in placed)

    def add(self, records: Sequence[TxtRecord]) -> None:
        provider = self.provider
        if isinstance(provider, BatchingDnsProvider):
            for batch in _by_zone(records):
                provider.add_txts(batch)
        else:
            for record in records:
                provider.add_txt(record)
        log.debug("TXT values added", extra={"fqdn": _fqdns(records)})

    def wait(self, records: Sequence[TxtRecord]) -> None:
        wait_for_records(records, self.settings)

    def cleanup(self, records: Sequence[TxtRecord]) -> None:
        """Removes this run's values; those that fail stay journalled and raise DnsError."""
        removed = self._remove_batched(records)
        removed += [r for r in records if r not in removed and _remove_one(self.provider, r)]
        self.journal.drop(removed)
        if len(removed) < len(records):
            raise DnsError(
                records[0].fqdn,
                f"{len(records) - len(removed)} TXT value(s) could not be removed and stay "
                "journalled: every run tries again",
                transient=True,
            )

    def _remove_batched(self, records: Sequence[TxtRecord]) -> list[TxtRecord]:
        """What one request per zone removed; a batch that fails is left for one by one."""
        provider = self.provider
        if not isinstance(provider, BatchingDnsProvider):
            return []
        removed: list[TxtRecord] = []
        for batch in _by_zone(records):
            try:
                provider.remove_txts(batch)
            except CertdropError as exc:
                log.warning("could not remove TXT values together: %s", exc)
                continue
            removed += batch
        return removed


def sweep_journal(
    journal: ChallengeJournal,
    settings: DnsCheckSettings,
    provider_by_name: Callable[[str], DnsProvider],
    now: Callable[[], datetime],
) -> int:
    """Removes the values a journal holds, each through the provider that placed it; returns
    how many are still left. Never raises for a value it cannot remove, nor for a provider that
    cannot be built (renamed, removed, its secret unreadable): the value stays journalled (tried
    again by every run), is looked up again in case its zone was computed wrongly, and is given
    up after GIVE_UP_AFTER."""
    entries = journal.entries()
    if not entries:
        return 0
    log.warning("removing %d TXT value(s) left by an earlier run", len(entries))
    providers: dict[str, DnsProvider | None] = {}
    removed, given_up = [], []
    for entry in entries:
        if entry.provider not in providers:
            providers[entry.provider] = _built(provider_by_name, entry.provider)
        provider = providers[entry.provider]
        if provider is not None and (
            _remove_one(provider, entry.record) or _remove_relocated(provider, entry, settings)
        ):
            removed.append(entry.record)
        elif now() - entry.at > GIVE_UP_AFTER:
            log.warning(
                "giving up removing TXT value %s at %s after %s: remove it by hand",
                entry.record.value,
                entry.record.fqdn,
                GIVE_UP_AFTER,
                extra={"fqdn": entry.record.fqdn},
            )
            given_up.append(entry.record)
    journal.drop(removed + given_up)
    return len(entries) - len(removed) - len(given_up)


def _built(provider_by_name: Callable[[str], DnsProvider], name: str) -> DnsProvider | None:
    try:
        return provider_by_name(name)
    except CertdropError as exc:
        log.error("TXT values placed through provider %r stay: %s", name, exc)
        return None


def _remove_one(provider: DnsProvider, record: TxtRecord) -> bool:
    try:
        provider.remove_txt(record)
    except CertdropError as exc:
        log.error("could not remove TXT value: %s", exc, extra={"fqdn": record.fqdn})
        return False
    return True


def _remove_relocated(provider: DnsProvider, entry: Journalled, settings: DnsCheckSettings) -> bool:
    """The value's zone looked up again with today's settings, in case the run that placed it
    worked it out wrongly; removed there if it differs."""
    if not entry.name:
        return False
    try:
        where = locate(entry.name, settings)
    except CertdropError:
        return False
    if (where.zone, where.fqdn) == (entry.record.zone, entry.record.fqdn):
        return False
    moved = TxtRecord(zone=where.zone, fqdn=where.fqdn, value=entry.record.value)
    return _remove_one(provider, moved)


def _by_zone(records: Sequence[TxtRecord]) -> list[list[TxtRecord]]:
    """The records grouped by zone, in the order their zones first appear."""
    batches: dict[str, list[TxtRecord]] = {}
    for record in records:
        batches.setdefault(record.zone, []).append(record)
    return list(batches.values())


def _fqdns(records: Sequence[TxtRecord]) -> str:
    return ", ".join(sorted({record.fqdn for record in records}))
