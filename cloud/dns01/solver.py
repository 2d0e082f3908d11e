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

from cloud.dns01.names import locate
from cloud.dns01.propagation import DnsCheckSettings, wait_for_records
from cloud.dns01.providers.base import DnsProvider, TxtRecord
from cloud.errors import CertdropError, DnsError
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenge:
    domain: str  # "example.test" or "*.example.test"
    value: str  # the TXT value that answers it


class ChallengeJournal:
    """The TXT values a site's run has placed and not yet removed, in the object store."""

    def __init__(self, store: Store, site: str):
        self.store = store
        self.key = store_layout.challenge_journal(site)

    def record(self, provider: str, records: Sequence[TxtRecord]) -> None:
        body = {"provider": provider, "records": [asdict(r) for r in records]}
        self.store.put(self.key, json.dumps(body, sort_keys=True).encode())

    def pending(self) -> tuple[str, tuple[TxtRecord, ...]] | None:
        found = self.store.get(self.key)
        if not isinstance(found, StoredObject):
            return None
        body = json.loads(found.body)
        return body["provider"], tuple(TxtRecord(**r) for r in body["records"])

    def clear(self) -> None:
        self.store.delete(self.key)

    def leftovers(self) -> tuple[str, ...]:
        """What is journalled, as "fqdn value" lines for the state, status and alerts."""
        pending = self.pending()
        return tuple(f"{r.fqdn} {r.value}" for r in pending[1]) if pending else ()


class Dns01Solver:
    """Adds, checks and removes one site's challenge values through its provider."""

    def __init__(
        self,
        provider_name: str,
        provider: DnsProvider,
        settings: DnsCheckSettings,
        journal: ChallengeJournal,
        provider_by_name: Callable[[str], DnsProvider] | None = None,
    ):
        self.provider_name = provider_name
        self.provider = provider
        self.settings = settings
        self.journal = journal
        # The stale values of a crashed run may have been placed through another provider,
        # if the configuration changed since.
        self.provider_by_name = provider_by_name or (lambda _name: provider)

    def sweep(self) -> int:
        """Removes the values a crashed earlier run recorded; returns how many."""
        pending = self.journal.pending()
        if pending is None:
            return 0
        name, records = pending
        provider = self.provider if name == self.provider_name else self.provider_by_name(name)
        log.warning("removing %d TXT value(s) left by an interrupted run", len(records))
        self._remove(provider, records)
        return len(records)

    def present(self, challenges: Sequence[Challenge]) -> tuple[TxtRecord, ...]:
        """Works out where each value goes (following CNAMEs), journals them, then adds them.

        The journal holds every record before the first is added, so `cleanup` of the returned
        records (or the next run's `sweep`) covers a failure halfway through.
        """
        located = {}
        records = []
        for challenge in challenges:
            # The apex and the wildcard share one name: locate it once.
            name = challenge.domain.removeprefix("*.")
            if name not in located:
                located[name] = locate(name, self.settings)
            where = located[name]
            records.append(TxtRecord(zone=where.zone, fqdn=where.fqdn, value=challenge.value))
        self.journal.record(self.provider_name, records)
        return tuple(records)

    def add(self, records: Sequence[TxtRecord]) -> None:
        for record in records:
            self.provider.add_txt(record)
            log.debug("TXT value added", extra={"fqdn": record.fqdn})

    def wait(self, records: Sequence[TxtRecord]) -> None:
        wait_for_records(records, self.settings)

    def cleanup(self, records: Sequence[TxtRecord]) -> None:
        self._remove(self.provider, records)

    def _remove(self, provider: DnsProvider, records: Sequence[TxtRecord]) -> None:
        failed: list[CertdropError] = []
        for record in records:
            try:
                provider.remove_txt(record)
            except CertdropError as exc:
                failed.append(exc)
                log.error("could not remove TXT value: %s", exc, extra={"fqdn": record.fqdn})
        if failed:
            # Keep the journal: the next run retries the removal.
            raise DnsError(
                records[0].fqdn,
                f"{len(failed)} TXT value(s) could not be removed and stay journalled "
                f"for the next run: {failed[0]}",
                transient=True,
            )
        self.journal.clear()
