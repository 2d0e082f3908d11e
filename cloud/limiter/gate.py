"""What a site's run asks of the limiter, and tells it.

Just before a new order is placed, `take` spends the order's tokens, or raises
`WaitingForLimits` (nothing spent, nothing ordered) saying when the order will fit: first the
site's own buckets are read, then the fleet's shared ones are checked and spent by one
conditional write, then the site's own are spent. A forced run (`certdrop issue`, `run
--force`) spends what it needs and never waits: the operator asked, and the CA has the last
word. After the CA answers, `refused` (rateLimited) and `failed_authorizations` bring the
ledgers in line with what the CA counted.

The CA's rateLimited problem does not say which limit it hit (its detail does, in words no code
should branch on), so every bucket the order was subject to is taken as empty until the
Retry-After: the cautious reading. Let's Encrypt names the limit that resets last.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from cloud.config import CaLimits, SiteConfig
from cloud.errors import WaitingForLimits
from cloud.limiter import buckets, ledger
from cloud.limiter.orders import Need, OrderKind, authz_key, needs
from cloud.store import Store

log = logging.getLogger(__name__)


def lacking(
    found: Iterable[Need], held: ledger.Ledger, now: datetime
) -> list[tuple[datetime, str]]:
    """(when it holds a token again, label) of each bucket of `found` that has none now."""
    late = ((buckets.ready_at(n.limit, held.tat(n.key), now), n.label) for n in found)
    return [(ready, label) for ready, label in late if ready > now]


class OrderGate:
    def __init__(self, limits: CaLimits | None, store: Store, directory: str):
        self.limits = limits
        self.store = store
        self.directory = directory

    def take(
        self, site: SiteConfig, kind: OrderKind, now: datetime, *, force: bool = False
    ) -> None:
        """Spends the tokens of `site`'s order of `kind`, or raises WaitingForLimits."""
        if self.limits is None:
            return
        found = needs(self.limits, site.names, kind)
        own = [n for n in found if not n.shared]
        shared = [n for n in found if n.shared]
        if own:
            self._wait_or_force(site, lacking(own, self.site_ledger(site.id), now), force)
        if shared:
            held: list[tuple[datetime, str]] = []

            def edit(current: ledger.Ledger) -> dict[str, datetime] | None:
                held[:] = lacking(shared, current, now)
                return None if held and not force else _spent(shared, current, now)

            ledger.change(self.store, self._key(), self.directory, now, edit)
            self._wait_or_force(site, held, force)
        if any(n.spent for n in own):
            key = self._key(site.id)
            ledger.change(self.store, key, self.directory, now, lambda c: _spent(own, c, now))

    def refused(
        self, site: SiteConfig, kind: OrderKind, retry_after: datetime | None, now: datetime
    ) -> None:
        """The CA answered rateLimited: each bucket the order was subject to is empty until
        `retry_after` (without one, for one more refill)."""
        if self.limits is None:
            return
        found = needs(self.limits, site.names, kind)
        for key, group in ((self._key(), True), (self._key(site.id), False)):
            mine = [n for n in found if n.shared is group]
            if mine:
                edit = _emptied(mine, retry_after, now)
                ledger.change(self.store, key, self.directory, now, edit)

    def failed_authorizations(
        self, site: SiteConfig, identifiers: Iterable[str], now: datetime
    ) -> None:
        """One token per failed authorization (an apex and its wildcard fail as two of the
        same identifier)."""
        limit = self.limits.failed_authorizations if self.limits is not None else None
        keys = [authz_key(i) for i in identifiers]
        if limit is None or not keys:
            return

        def edit(current: ledger.Ledger) -> dict[str, datetime]:
            tats: dict[str, datetime] = {}
            for key in keys:
                tats[key] = buckets.spend(limit, tats.get(key) or current.tat(key), now)
            return tats

        ledger.change(self.store, self._key(site.id), self.directory, now, edit)

    def held(
        self, site: SiteConfig, kind: OrderKind, now: datetime
    ) -> tuple[datetime, tuple[str, ...]] | None:
        """When `site`'s order of `kind` would fit, and which limits hold it; None: it fits now.
        Reads only (the site's ledger, and the shared one when the order needs it)."""
        if self.limits is None:
            return None
        found = needs(self.limits, site.names, kind)
        late = lacking([n for n in found if not n.shared], self.site_ledger(site.id), now)
        shared = [n for n in found if n.shared]
        if shared:
            late += lacking(shared, ledger.load(self.store, self._key()), now)
        if not late:
            return None
        return max(at for at, _ in late), tuple(label for _, label in late)

    def site_ledger(self, site: str) -> ledger.Ledger:
        return ledger.load(self.store, self._key(site))

    def _key(self, site: str | None = None) -> str:
        return ledger.ledger_key(self.directory, site)

    def _wait_or_force(
        self, site: SiteConfig, held: Sequence[tuple[datetime, str]], force: bool
    ) -> None:
        if not held:
            return
        labels = tuple(label for _, label in held)
        if not force:
            raise WaitingForLimits(site.id, max(at for at, _ in held), labels)
        log.warning(
            "forced past the CA's limits (%s): the CA may refuse the order",
            ", ".join(labels),
            extra={"site": site.id},
        )


def _spent(found: Iterable[Need], current: ledger.Ledger, now: datetime) -> dict[str, datetime]:
    """The buckets `found` spends, each after one token more."""
    return {n.key: buckets.spend(n.limit, current.tat(n.key), now) for n in found if n.spent}


def _emptied(found: Sequence[Need], retry_after: datetime | None, now: datetime):
    def edit(current: ledger.Ledger) -> dict[str, datetime]:
        tats = {}
        for n in found:
            until = retry_after if retry_after is not None else now + n.limit.interval
            tats[n.key] = buckets.empty_until(n.limit, current.tat(n.key), until)
        return tats

    return edit
