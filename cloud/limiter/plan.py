"""Which due sites go now and when each of the others will: a pure function of the sites due,
the ledger and the limits.

Sites are taken most urgent first: fewest days left on the current certificate, then sites with
none (first issuances), those whose registered domain has the most sites waiting first: the CA
lets one registered domain through slowly (Let's Encrypt: 50 a week), so its queue starts at
once while the rest of the fleet shares what is left. A site goes as soon as every bucket it
needs holds a token, the tokens it spends taken as it goes; the new-orders bucket every counted
order shares is handed out in that order, one token at a time as it refills, each to the most
urgent site whose other buckets (its registered domains) are ready by then. So a site held back
by its own registered domain never holds up the rest of the fleet.

Only the fleet's shared buckets (new orders, registered domains: one read) are planned with;
a site's own (its exact set, its identifiers' failed authorizations) are its run's to check
(`gate.py`), which then schedules the site for when they allow. From the schedule alone (no site
state is read) an order's kind is estimated: a site whose marker records a certificate and the
same names, key type and profile is a renewal, any other a first issuance (a change of key type
or profile alone is a renewal to the CA: counted here, cautiously). Sites due only to remove TXT
values a run left go at once: they may order nothing.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime

from cloud.config import CaLimits, Config, SiteConfig
from cloud.limiter import buckets, ledger
from cloud.limiter.ledger import Ledger
from cloud.limiter.orders import DOMAIN, ORDERS, Need, OrderKind, needs
from cloud.pipeline.schedule import Due, Marker, config_hash
from cloud.store import Store

TXT_ONLY = "TXT values to remove"  # schedule.due_sites' reason for a journalled site
_NO_EXPIRY = datetime.max.replace(tzinfo=None)


@dataclass(frozen=True)
class Candidate:
    site: str
    kind: OrderKind
    needs: tuple[Need, ...]
    not_after: datetime | None  # of the current certificate; None before the first


@dataclass(frozen=True)
class Wait:
    """A site the limiter holds back: when it will go, and which limits hold it."""

    site: str
    go_at: datetime  # at the first tick (or `certdrop run`) from then on
    held_by: tuple[str, ...]  # labels of the limits ("new orders per account", ...)

    def describe(self) -> str:
        return f"waiting for the CA's limits ({', '.join(self.held_by)})"


@dataclass(frozen=True)
class Plan:
    go: tuple[str, ...]  # sites to run now, most urgent first
    held_back: tuple[str, ...] = ()  # due sites that wait
    waiting: Mapping[str, Wait] = field(default_factory=dict)  # each held back one's go time


def pace(
    config: Config,
    store: Store,
    due: Iterable[Due],
    markers: Mapping[str, Marker],
    now: datetime,
    *,
    full: bool = True,
) -> Plan:
    """The plan for the sites `due`: one read of the ledger when the CA has limits, none else.
    Without `full`, only which go now (the tick: no go time for the others, a few milliseconds
    at 10,000 sites waiting)."""
    due = list(due)
    if config.ca.limits is None:
        return Plan(tuple(d.site for d in due))
    found = candidates(config, due, markers, now)
    shared = ledger.load(store, ledger.ledger_key(config.ca.directory))
    return plan(config.ca.limits, shared, found, now, full=full)


def candidates(
    config: Config, due: Iterable[Due], markers: Mapping[str, Marker], now: datetime
) -> list[Candidate | str]:
    """Each due site as the limiter sees it; a site that may order nothing is its bare id."""
    limits = config.ca.limits
    found: list[Candidate | str] = []
    for item in due:
        site = config.sites.get(item.site)
        marker = markers.get(item.site)
        if site is None:  # no longer configured: its run only removes TXT values
            found.append(item.site)
            continue
        if limits is None or (item.reason == TXT_ONLY and _only_txt(site, marker, now)):
            found.append(item.site)
            continue
        kind = _estimated_kind(site, marker)
        not_after = marker.not_after if marker is not None else None
        shared = tuple(n for n in needs(limits, site.names, kind) if n.shared)
        found.append(Candidate(site.id, kind, shared, not_after))
    return found


def _only_txt(site: SiteConfig, marker: Marker | None, now: datetime) -> bool:
    """A journalled site that is not due otherwise: its run removes values and orders nothing."""
    return (
        marker is not None and marker.config_hash == config_hash(site) and marker.next_check > now
    )


def _estimated_kind(site: SiteConfig, marker: Marker | None) -> OrderKind:
    if marker is None or marker.not_after is None or marker.config_hash != config_hash(site):
        return OrderKind.FIRST
    return OrderKind.RENEWAL


def plan(
    limits: CaLimits | None,
    ledger: Ledger,
    due: Iterable[Candidate | str],
    now: datetime,
    *,
    full: bool = True,
) -> Plan:
    """`due` as `candidates` returns it. Spends nothing in the ledger: the runs do (`gate.py`).
    Without `full`, the waiting sites get no go time."""
    items = list(due)
    free = [c for c in items if isinstance(c, str) or not c.needs]
    held = [c for c in items if isinstance(c, Candidate) and c.needs]
    if limits is None or not held:
        return Plan(tuple(_site(c) for c in items))
    tats: dict[str, datetime] = dict(ledger.buckets)
    shared = ORDERS if any(n.key == ORDERS for c in held for n in c.needs) else None
    urgency = _ranking(held)
    if not full:
        went = _now_only(held, tats, now, shared, urgency)
        rest = tuple(c.site for c in held if c.site not in went)
        return Plan((*(_site(c) for c in free), *went), rest)
    paced = [c for c in held if shared is None or any(n.key == shared for n in c.needs)]
    alone = [c for c in held if shared is not None and all(n.key != shared for n in c.needs)]
    go_at: dict[str, tuple[datetime, tuple[str, ...]]] = {}
    for c in sorted(alone, key=urgency):
        go_at[c.site] = _take(c, tats, _ready(c.needs, tats, now), now)
    _pace(paced, tats, now, shared, go_at, urgency)
    go = [_site(c) for c in free]
    go += [c.site for c in sorted(held, key=urgency) if go_at[c.site][0] <= now]
    waiting = {
        site: Wait(site, when, held_by) for site, (when, held_by) in go_at.items() if when > now
    }
    ordered = dict(sorted(waiting.items(), key=lambda kv: kv[1].go_at))
    return Plan(tuple(go), tuple(ordered), ordered)


def _now_only(
    held: list[Candidate],
    tats: dict[str, datetime],
    now: datetime,
    shared: str | None,
    urgency: Callable[[Candidate], tuple],
) -> dict[str, None]:
    """The sites that go now, most urgent first: the plan up to `now` only."""
    went: dict[str, None] = {}
    limit = next((n.limit for c in held for n in c.needs if n.key == shared), None)
    everyone = all(any(n.key == shared for n in c.needs) for c in held)  # needs the shared one
    for c in sorted(held, key=urgency):
        if everyone and limit is not None and not buckets.has_token(limit, tats.get(ORDERS), now):
            break  # no site left can go now
        if all(buckets.has_token(n.limit, tats.get(n.key), now) for n in c.needs):
            _take(c, tats, now, now)
            went[c.site] = None
    return went


def _pace(
    paced: list[Candidate],
    tats: dict[str, datetime],
    now: datetime,
    shared: str | None,
    go_at: MutableMapping[str, tuple[datetime, tuple[str, ...]]],
    urgency: Callable[[Candidate], tuple],
) -> None:
    """List scheduling: at each moment the shared bucket has a token, the most urgent site whose
    own buckets are ready takes it. A site found not ready after all (a site sharing one of its
    buckets went first) waits again until they are."""
    moment = now
    limit = next((n.limit for c in paced for n in c.needs if n.key == shared), None)
    pending = [(_ready(_own(c, shared), tats, now), urgency(c), i) for i, c in enumerate(paced)]
    heapq.heapify(pending)
    ready: list[tuple[tuple, int]] = []
    while pending or ready:
        if shared is not None and limit is not None:
            moment = buckets.ready_at(limit, tats.get(shared), moment)
        while pending and pending[0][0] <= moment:
            _, rank, i = heapq.heappop(pending)
            heapq.heappush(ready, (rank, i))
        if not ready:
            moment = max(moment, pending[0][0])
            continue
        _, i = heapq.heappop(ready)
        c = paced[i]
        own = _ready(_own(c, shared), tats, moment)
        if own > moment:
            heapq.heappush(pending, (own, urgency(c), i))
            continue
        go_at[c.site] = _take(c, tats, moment, now)


def _take(
    c: Candidate, tats: dict[str, datetime], when: datetime, now: datetime
) -> tuple[datetime, tuple[str, ...]]:
    """Spends `c`'s tokens at `when`; says which limits held it back from going `now`."""
    held_by = tuple(
        n.label for n in c.needs if not buckets.has_token(n.limit, tats.get(n.key), now)
    )
    for n in c.needs:
        if n.spent:
            tats[n.key] = buckets.spend(n.limit, tats.get(n.key), when)
    return when, held_by


def _own(c: Candidate, shared: str | None) -> tuple[Need, ...]:
    return tuple(n for n in c.needs if n.key != shared)


def _ready(found: Iterable[Need], tats: Mapping[str, datetime], now: datetime) -> datetime:
    return max((buckets.ready_at(n.limit, tats.get(n.key), now) for n in found), default=now)


def _ranking(held: list[Candidate]) -> Callable[[Candidate], tuple]:
    """Most urgent first: the earliest expiry, then the longest registered-domain queue."""
    queued = Counter(n.key for c in held for n in c.needs if n.key.startswith(DOMAIN))
    rank = {}
    for c in held:
        expiry = c.not_after.replace(tzinfo=None) if c.not_after is not None else _NO_EXPIRY
        queue = max((queued[n.key] for n in c.needs if n.key in queued), default=0)
        rank[c.site] = (expiry, -queue, c.site)
    return lambda c: rank[c.site]


def _site(c: Candidate | str) -> str:
    return c if isinstance(c, str) else c.site
