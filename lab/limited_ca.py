"""A CA stand-in that enforces Let's Encrypt's rate limits, for simulating a fleet over weeks in
seconds: orders are placed and certificates issued in memory, at the simulation's clock.

Its limits are those of https://letsencrypt.org/docs/rate-limits/ (last modified 2026-08-05),
written out here on their own (not taken from certdrop's configuration, which they check):

    new orders per account                300 / 3 h     refill 1 per 36 s
    new certificates per registered domain 50 / 7 days  refill 1 per 201.6 min   (global)
    new certificates per exact set          5 / 7 days  refill 1 per 33.6 h      (global)
    authorization failures per identifier   5 / 1 h     refill 1 per 12 min      (per account)

A new order counts against the first three when it is created ("all new order requests ...
count towards this limit"). An ARI renewal (`replaces` naming a certificate not yet replaced,
sharing a name with it) is subject to none; a renewal of an exact set issued before is exempt
from the first two only. A failed authorization spends a token of its identifier's bucket (a
wildcard's identifier is its base name, so an apex and its wildcard failing spend two); a new
order for an identifier whose bucket is empty is refused.

A refusal is what Let's Encrypt sends: HTTP 429, an `application/problem+json` body of type
`rateLimited` naming the limit, and a `Retry-After` (here an HTTP date on the simulated clock),
for the limit that resets furthest in the future. It reaches the caller as certdrop's own
boundary makes it: `RetryAfterNetwork._check_response` reads the response and
`cloud.acme.problems.translate` turns it into `RateLimited` with its `retry_after`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Callable, Sequence

import josepy as jose
import requests
from cloud.acme.problems import RetryAfterNetwork, translate
from cloud.errors import AcmeError, ValidationFailed
from cryptography.hazmat.primitives.asymmetric import ec

HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
NEW_ORDERS = "new orders per account"
PER_DOMAIN = "new certificates per registered domain"
PER_SET = "new certificates per exact set of identifiers"
AUTHZ_FAILURES = "authorization failures per identifier per account"
# (count, period) of each limit, as the page states them.
LIMITS: dict[str, tuple[int, timedelta]] = {
    NEW_ORDERS: (300, 3 * HOUR),
    PER_DOMAIN: (50, WEEK),
    PER_SET: (5, WEEK),
    AUTHZ_FAILURES: (5, HOUR),
}


@dataclass(frozen=True)
class Issued:
    cert_id: str  # what a later order's `replaces` names
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class OrderSeen:
    at: datetime
    counted: bool  # against new orders per account (not a renewal)
    kind: str  # "first", "renewal" or "ari"


@dataclass
class _Cert:
    names: frozenset[str]
    replaced: bool = False


@dataclass
class LimitedCa:
    """`lifetime` of every certificate; `broken(names, now)` says whether validation fails."""

    lifetime: timedelta
    broken: Callable[[Sequence[str], datetime], bool] = lambda names, now: False
    registered_domain: Callable[[str], str] = field(default=lambda name: _registered(name))
    orders: list[OrderSeen] = field(default_factory=list)  # every order created
    refusals: Counter = field(default_factory=Counter)  # by limit, each rateLimited answer
    failed_validations: int = 0
    _tat: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _sets: set[frozenset[str]] = field(default_factory=set)
    _certs: dict[str, _Cert] = field(default_factory=dict)
    _serial: int = 0

    def __post_init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self._net = RetryAfterNetwork(jose.JWKEC(key=key), alg=jose.ES256)

    def issued_before(self, names: Sequence[str], not_before: datetime) -> Issued:
        """A certificate issued before the simulation (a steady state's fleet)."""
        return self._issue(frozenset(n.lower() for n in names), not_before)

    def order(self, names: Sequence[str], now: datetime, replaces: str | None = None) -> Issued:
        """Creates an order and, validation passing, issues at once. Raises `RateLimited`
        (translated from the CA's 429) or `ValidationFailed`."""
        wanted = frozenset(n.lower() for n in names)
        replaced = self._certs.get(replaces) if replaces is not None else None
        ari = replaced is not None and not replaced.replaced and bool(replaced.names & wanted)
        renewal = wanted in self._sets
        identifiers = sorted({n.removeprefix("*.") for n in wanted})
        spent: list[tuple[str, str]] = []
        checked: list[tuple[str, str]] = []
        if not ari:
            if not renewal:
                spent.append((NEW_ORDERS, "account"))
                spent += [
                    (PER_DOMAIN, d) for d in sorted({self.registered_domain(n) for n in wanted})
                ]
            spent.append((PER_SET, _digest(wanted)))
            checked = [(AUTHZ_FAILURES, i) for i in identifiers]
        lacking = [
            (self._ready(b, now), b[0]) for b in spent + checked if self._ready(b, now) > now
        ]
        if lacking:
            until, limit = max(lacking)
            self.refusals[limit] += 1
            self._refuse(limit, until)
        for bucket in spent:
            self._spend(bucket, now)
        kind = "ari" if ari else "renewal" if renewal else "first"
        self.orders.append(OrderSeen(now, counted=not ari and not renewal, kind=kind))
        if self.broken(sorted(wanted), now):
            self.failed_validations += 1
            authorizations = [n.removeprefix("*.") for n in sorted(wanted)]
            if not ari:
                for identifier in authorizations:
                    self._spend((AUTHZ_FAILURES, identifier), now)
            raise ValidationFailed(
                tuple((i, "dns", "no TXT record found at _acme-challenge") for i in authorizations)
            )
        if replaced is not None and ari:
            replaced.replaced = True
        return self._issue(wanted, now)

    def _issue(self, names: frozenset[str], now: datetime) -> Issued:
        self._serial += 1
        cert_id = f"cert-{self._serial}"
        self._sets.add(names)
        self._certs[cert_id] = _Cert(names)
        return Issued(cert_id, tuple(sorted(names)), now, now + self.lifetime)

    def _ready(self, bucket: tuple[str, str], now: datetime) -> datetime:
        count, period = LIMITS[bucket[0]]
        tat = self._tat.get(bucket)
        if tat is None:
            return now
        return max(now, tat - period + period / count)

    def _spend(self, bucket: tuple[str, str], now: datetime) -> None:
        count, period = LIMITS[bucket[0]]
        tat = self._tat.get(bucket)
        start = now if tat is None or tat < now else tat
        self._tat[bucket] = min(start + period / count, now + period)

    def _refuse(self, limit: str, until: datetime) -> None:
        """Answers as Boulder does, through certdrop's response check and translation."""
        problem = {
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": f"too many requests: {limit}, retry after {until:%Y-%m-%d %H:%M:%S} UTC",
            "status": 429,
        }
        response = requests.Response()
        response.status_code = 429
        response.headers["Content-Type"] = "application/problem+json"
        response.headers["Retry-After"] = format_datetime(until.replace(microsecond=0), usegmt=True)
        response._content = json.dumps(problem).encode()
        try:
            self._net._check_response(response)
        except Exception as exc:
            error = translate(exc, self._net.last_retry_after)
            if error is None:
                raise
            raise error from exc
        raise AcmeError("protocol", "the 429 was not read as a problem")  # never: it always is


def _digest(names: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


_EXTRACT = None


def _registered(name: str) -> str:
    """The registered domain by the Public Suffix List (tldextract's shipped snapshot)."""
    global _EXTRACT
    if _EXTRACT is None:
        import tldextract

        _EXTRACT = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
        )
    parts = _EXTRACT(name.removeprefix("*."))
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}"
    return ".".join(name.split(".")[-2:])
