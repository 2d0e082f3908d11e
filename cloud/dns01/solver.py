"""Placing and removing the dns-01 TXT values of one site's order, with a journal.

The journal is written before any value is added, so a run that dies between adding and removing
leaves a note the next run of that site uses to remove the stale values first. Removal is always
attempted for every value, also after failures; the journal is dropped only when all are gone.

The journal is unsigned store content: a sweep sends a provider only what can be a dns-01 value
a run placed (`_can_be_ours`), and a journal certdrop never wrote is set aside, never acted on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from cloud.dns01.names import CHALLENGE_LABEL, TxtLocation, challenge_name, locate, normalize
from cloud.dns01.propagation import DnsCheckSettings, wait_for_records
from cloud.dns01.providers.base import BatchingDnsProvider, DnsProvider, TxtRecord
from cloud.errors import CertdropError, DnsError, JournalInvalid, ObjectTooLarge, PreconditionFailed
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)

# Every dns-01 TXT value (RFC 8555 section 8.4): the unpadded base64url of a SHA-256 digest.
_CHALLENGE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")
# Far more than any site's runs journal (an order has at most 100 names, two values each).
JOURNAL_MAX_BYTES = 1 << 20
# Where a journal that does not parse is moved (beside it, never listed as a site's journal).


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
        self.site = site
        self.key = store_layout.challenge_journal(site)

    def record(self, provider: str, placed: Sequence[tuple[str, TxtRecord]], at: datetime) -> None:
        """`placed`: (the name validated, its record) for each value about to be added."""
        entries = [*self.entries(), *(Journalled(provider, r, at, n) for n, r in placed)]
        self._write(entries)

    def entries(self) -> tuple[Journalled, ...]:
        """What is journalled. A journal no run wrote (not JSON, wrong types, too large) raises
        JournalInvalid after being set aside, so it blocks no later run."""
        found, read = self._read()
        if isinstance(read, JournalInvalid):
            self._set_aside(found, read)
            raise read
        return read

    def _read(self) -> tuple[StoredObject | None, tuple[Journalled, ...] | JournalInvalid]:
        try:
            found = self.store.get(self.key, max_bytes=JOURNAL_MAX_BYTES)
        except ObjectTooLarge:
            return None, JournalInvalid(self.site, self.key, f"over {JOURNAL_MAX_BYTES} bytes")
        if not isinstance(found, StoredObject):
            return None, ()
        try:
            return found, _parsed(json.loads(found.body))
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            return found, JournalInvalid(self.site, self.key, f"{type(exc).__name__}: {exc}")

    def _set_aside(self, found: StoredObject | None, problem: JournalInvalid) -> None:
        """Moves an unreadable journal to `<key>.invalid` for a person to look at (read with
        the same bound, so a larger one is only deleted), unless a run replaced it meanwhile."""
        aside = store_layout.challenge_journal_set_aside(self.site)
        log.error("%s; moved to %s", problem, aside, extra={"site": self.site})
        try:
            if found is None:
                self.store.delete(self.key)
                return
            self.store.put(aside, found.body)
            self.store.delete(self.key, if_match=found.etag)
        except PreconditionFailed:
            pass  # rewritten since it was read: the next read judges that one
        except CertdropError as exc:
            log.error("%s not set aside: %s", self.key, exc, extra={"site": self.site})

    def drop(self, removed: Sequence[TxtRecord]) -> None:
        self._write([e for e in self.entries() if e.record not in removed])

    def leftovers(self) -> tuple[str, ...]:
        """What is journalled, as "fqdn value" lines for the state, status and alerts; for a
        journal no run wrote, one line saying so (read only: the site's next run sets it aside)."""
        _found, read = self._read()
        if isinstance(read, JournalInvalid):
            return (f"{self.key} unreadable ({read.cause}): set aside by the next run",)
        return tuple(f"{e.record.fqdn} {e.record.value}" for e in read)

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


def _parsed(body: object) -> tuple[Journalled, ...]:
    """The entries of a journal's JSON; KeyError, TypeError or ValueError when it is not one
    certdrop writes."""
    if not isinstance(body, dict):
        raise TypeError("not a JSON object")
    if "records" in body:  # written before entries had their own provider and time
        at = datetime.fromtimestamp(0, UTC)
        return tuple(
            Journalled(_text(body["provider"]), _record(r), at) for r in _list(body["records"])
        )
    entries = []
    for e in _list(body["entries"]):
        at = datetime.fromisoformat(_text(e["at"]))
        if at.tzinfo is None:
            raise ValueError(f"time without a zone: {e['at']!r}")
        entries.append(
            Journalled(_text(e["provider"]), _record(e["record"]), at, _text(e.get("name", "")))
        )
    return tuple(entries)


def _record(found: object) -> TxtRecord:
    if not isinstance(found, dict) or set(found) - {"zone", "fqdn", "value", "ttl"}:
        raise TypeError(f"not a TXT record: {found!r}")
    ttl = found.get("ttl", 60)
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise TypeError(f"ttl not a number: {ttl!r}")
    return TxtRecord(_text(found["zone"]), _text(found["fqdn"]), _text(found["value"]), ttl)


def _list(found: object) -> list[dict]:
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise TypeError("not a list of objects")
    return found


def _text(found: object) -> str:
    if not isinstance(found, str):
        raise TypeError(f"not a string: {found!r}")
    return found


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
            except Exception:
                # A provider's bug or an error it did not translate: one by one may still work.
                log.exception("could not remove TXT values together: unexpected error")
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
    up after GIVE_UP_AFTER.

    The journal is unsigned: an entry that cannot be a dns-01 value a run placed (`_can_be_ours`)
    goes to no provider and is dropped with a warning naming it; one whose CNAMEs cannot be looked
    up now waits. Raises JournalInvalid for a journal no run wrote, which is set aside."""
    entries = journal.entries()
    if not entries:
        return 0
    log.warning("removing %d TXT value(s) left by an earlier run", len(entries))
    providers: dict[str, DnsProvider | None] = {}
    places = _Places(settings)
    removed, given_up, refused = [], [], []
    for entry in entries:
        ours = _judged(entry, places)
        if ours is False:
            refused.append(entry.record)
            continue
        if ours and entry.provider not in providers:
            providers[entry.provider] = _built(provider_by_name, entry.provider)
        provider = providers.get(entry.provider) if ours else None
        if provider is not None and (
            _remove_one(provider, entry.record) or _remove_relocated(provider, entry, places)
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
    journal.drop(removed + given_up + refused)
    return len(entries) - len(removed) - len(given_up) - len(refused)


class _Places:
    """Where each name's challenge goes today (`locate`), looked up once per sweep, and for at
    most MAX_LOOKUPS names: a journal planted with many names cannot hold a run up."""

    MAX_LOOKUPS = 100  # an order's names at most

    def __init__(self, settings: DnsCheckSettings):
        self.settings = settings
        self.found: dict[str, TxtLocation | CertdropError] = {}

    def of(self, name: str) -> TxtLocation:
        """Raises CertdropError when it cannot be looked up (transient when it may be later)."""
        if name not in self.found:
            if len(self.found) >= self.MAX_LOOKUPS:
                raise DnsError(name, "too many names to look up in one run", transient=True)
            try:
                self.found[name] = locate(name, self.settings)
            except CertdropError as exc:
                self.found[name] = exc
        found = self.found[name]
        if isinstance(found, CertdropError):
            raise found
        return found


def _judged(entry: Journalled, places: _Places) -> bool | None:
    """`_can_be_ours`, logged: None when that cannot be told now (the entry waits)."""
    record = entry.record
    try:
        if _can_be_ours(entry, places):
            return True
    except CertdropError as exc:
        if exc.transient:
            log.warning("TXT value %s at %s waits: %s", record.value, record.fqdn, exc)
            return None
    log.warning(
        "not removing TXT value %r at %s (journalled for %r): not a dns-01 challenge value at a "
        "challenge name of a host, so no run placed it; dropped from the journal",
        record.value,
        record.fqdn,
        entry.name,
        extra={"fqdn": record.fqdn},
    )
    return False


def _can_be_ours(entry: Journalled, places: _Places) -> bool:
    """Whether a journalled entry can be a value a run placed: shaped like every dns-01 value,
    at `_acme-challenge.<name>` for the host name it validates, or where that name's CNAMEs lead
    today (delegation; looked up only then). Journals older than `name` give it by the fqdn.
    Raises CertdropError when the CNAMEs cannot be looked up."""
    if not _CHALLENGE_VALUE.fullmatch(entry.record.value):
        return False
    prefix = f"{CHALLENGE_LABEL}."
    name = entry.name or entry.record.fqdn.removeprefix(prefix).rstrip(".")
    if not name or name.startswith("*"):
        return False
    try:
        start = challenge_name(name)  # raises unless a host name
        fqdn = normalize(entry.record.fqdn)
    except DnsError:
        return False
    if fqdn == start:
        return True
    return bool(entry.name) and places.of(name).fqdn == fqdn


def _built(provider_by_name: Callable[[str], DnsProvider], name: str) -> DnsProvider | None:
    try:
        return provider_by_name(name)
    except CertdropError as exc:
        log.error("TXT values placed through provider %r stay: %s", name, exc)
        return None


def _remove_one(provider: DnsProvider, record: TxtRecord) -> bool:
    """Whether the value is gone; any failure is logged and leaves it journalled, so one value
    that cannot be removed never stops the removal of the others."""
    try:
        provider.remove_txt(record)
    except CertdropError as exc:
        log.error("could not remove TXT value: %s", exc, extra={"fqdn": record.fqdn})
        return False
    except Exception:
        # Not translated by the provider (its bug): logged with the traceback, handled the same.
        log.exception("could not remove TXT value: unexpected error", extra={"fqdn": record.fqdn})
        return False
    return True


def _remove_relocated(provider: DnsProvider, entry: Journalled, places: _Places) -> bool:
    """The value's zone looked up again with today's settings, in case the run that placed it
    worked it out wrongly; removed there if it differs."""
    if not entry.name:
        return False
    try:
        where = places.of(entry.name)
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
