"""What one order is subject to: which of the CA's buckets it needs a token from, and which it
spends, by what the order is (Let's Encrypt's "Limit Exemptions for Renewals").

Bucket keys, one namespace per CA:

    orders                 new orders per account
    domain:<registered>    certificates per registered domain (each one among the names)
    set:<digest>           certificates per exact set of names (case and order ignored)
    authz:<identifier>     failed authorizations per identifier (a wildcard's is its base name)

An order spends a token from each of the first three it is subject to; a failed-authorizations
bucket must hold a token for the order to be placed, and is spent by each failed authorization.
The first two are shared by the fleet (the ledger everyone reads); the last two concern one
site's names only and are kept with that site (`ledger.py`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from cloud.config import CaLimits, Limit
from cloud.limiter.registered_domain import registered_domain

ORDERS = "orders"
DOMAIN = "domain:"


class OrderKind(Enum):
    FIRST = "first issuance"  # no certificate yet for this exact set of names
    RENEWAL = "renewal"  # the same names as the current certificate, without `replaces`
    ARI_RENEWAL = "ARI renewal"  # with `replaces` naming the certificate it renews


@dataclass(frozen=True)
class Need:
    key: str  # the bucket, in the ledger
    limit: Limit
    label: str  # for people: which limit holds an order back
    spent: bool  # the order spends a token (False: one must be there; failures spend it)
    shared: bool  # the fleet's ledger (new orders, registered domains); else the site's own


def needs(limits: CaLimits, names: Iterable[str], kind: OrderKind) -> tuple[Need, ...]:
    # The scheduler asks for every due site at every tick: remembered by the limits' identity
    # (hashing the dataclass costs more than the answer).
    names = tuple(names)
    key = (id(limits), names, kind.value)
    hit = _memo.get(key)
    if hit is not None and hit[0] is limits:
        return hit[1]
    found = _needs(limits, frozenset(n.lower() for n in names), kind)
    if len(_memo) >= _MEMO_SIZE:
        _memo.clear()
    _memo[key] = (limits, found)
    return found


_MEMO_SIZE = 1 << 16
_memo: dict[tuple[int, tuple[str, ...], str], tuple[CaLimits, tuple[Need, ...]]] = {}


@functools.lru_cache(maxsize=65536)
def _needs(limits: CaLimits, names: frozenset[str], kind: OrderKind) -> tuple[Need, ...]:
    if kind is OrderKind.ARI_RENEWAL and limits.ari_renewals_exempt:
        return ()
    counted = kind is OrderKind.FIRST or not limits.renewals_exempt
    found: list[Need] = []
    if counted and limits.new_orders is not None:
        found.append(Need(ORDERS, limits.new_orders, "new orders per account", True, True))
    if counted and limits.per_registered_domain is not None:
        for domain in sorted({registered_domain(n) for n in names}):
            label = f"certificates per registered domain {domain}"
            key = f"{DOMAIN}{domain}"
            found.append(Need(key, limits.per_registered_domain, label, True, True))
    if limits.per_exact_set is not None:
        label = "certificates per exact set of names"
        found.append(Need(set_key(names), limits.per_exact_set, label, True, False))
    if limits.failed_authorizations is not None:
        for identifier in sorted({identifier_of(n) for n in names}):
            label = f"failed authorizations for {identifier}"
            limit = limits.failed_authorizations
            found.append(Need(authz_key(identifier), limit, label, False, False))
    return tuple(found)


def set_key(names: Iterable[str]) -> str:
    text = "\n".join(sorted({n.lower().rstrip(".") for n in names}))
    return "set:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def identifier_of(name: str) -> str:
    """The identifier an authorization is for: a wildcard's is its base domain."""
    return name.lower().rstrip(".").removeprefix("*.")


def authz_key(identifier: str) -> str:
    return f"authz:{identifier_of(identifier)}"
