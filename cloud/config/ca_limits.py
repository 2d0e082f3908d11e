"""`[ca.limits]`: the CA's rate limits, which the limiter (`cloud.limiter`) paces orders under.

Each limit is a token bucket of `count` tokens that refills one token every `hours / count`,
the way Let's Encrypt publishes and enforces its own. Let's Encrypt's limits apply by default
when `ca.directory` is its production directory; any other CA has none unless the table is
written. A key written for Let's Encrypt replaces only that limit (an override the CA granted);
for another CA every limit not written is absent and renewals are exempt from nothing.

    [ca.limits]
    new_orders = { count = 300, hours = 3 }                             # per ACME account
    certificates_per_registered_domain = { count = 50, hours = 168 }    # registered domain: PSL
    certificates_per_exact_set = { count = 5, hours = 168 }             # the same set of names
    failed_authorizations = { count = 5, hours = 1 }                    # per identifier, account
    renewals_exempt = true       # same names as the current certificate: not counted against
                                 # new_orders nor certificates_per_registered_domain
    ari_renewals_exempt = true   # an order that `replaces` a certificate (ARI): exempt from all
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cloud.config._checker import Checker

_MAX_COUNT = 1_000_000
_MAX_HOURS = 24 * 366.0


@dataclass(frozen=True)
class Limit:
    """`count` tokens, refilling one every `period / count`; an empty bucket refuses."""

    count: int
    period: timedelta

    @property
    def interval(self) -> timedelta:
        return self.period / self.count


@dataclass(frozen=True)
class CaLimits:
    new_orders: Limit | None = None  # per ACME account
    per_registered_domain: Limit | None = None  # certificates, per registered domain (PSL)
    per_exact_set: Limit | None = None  # certificates, per exact set of names
    failed_authorizations: Limit | None = None  # per identifier, per account
    # An order for the same names as a certificate already issued is not counted against
    # new_orders nor per_registered_domain (it still is against per_exact_set).
    renewals_exempt: bool = False
    # An order that names the certificate it `replaces` (ARI, RFC 9773) is counted against none.
    ari_renewals_exempt: bool = False


# Let's Encrypt's published limits, as https://letsencrypt.org/docs/rate-limits/ states them
# (page last modified 2026-08-05): "Up to 300 new orders can be created by a single account
# every 3 hours" (refill 1 every 36 s); "Up to 50 certificates can be issued per registered
# domain ... every 7 days" (1 every 202 min), global across accounts, registered domains from
# the Public Suffix List; "Up to 5 certificates can be issued per exact same set of identifiers
# every 7 days" (1 every 34 h), global; "Up to 5 authorization failures per identifier can be
# incurred by one account every hour" (1 every 12 min), enforced by refusing new orders for
# the identifier. Its "Limit Exemptions for Renewals": an ARI renewal (an order with `replaces`
# for a certificate not yet replaced that shares an identifier with it) "will not be subject to
# any rate limits"; a non-ARI renewal (the exact same set of identifiers) is exempt from New
# Orders per Account and New Certificates per Registered Domain but still subject to the exact
# set and authorization-failure limits. The refills above are the page's rounding of
# period / count (202 min for 201.6, 34 h for 33.6); certdrop uses period / count.
LETSENCRYPT_LIMITS = CaLimits(
    new_orders=Limit(300, timedelta(hours=3)),
    per_registered_domain=Limit(50, timedelta(days=7)),
    per_exact_set=Limit(5, timedelta(days=7)),
    failed_authorizations=Limit(5, timedelta(hours=1)),
    renewals_exempt=True,
    ari_renewals_exempt=True,
)

_LIMIT_KEYS = {
    "new_orders": "new_orders",
    "certificates_per_registered_domain": "per_registered_domain",
    "certificates_per_exact_set": "per_exact_set",
    "failed_authorizations": "failed_authorizations",
}
_FLAG_KEYS = ("renewals_exempt", "ari_renewals_exempt")


def check_limits(checker: Checker, raw: Any, default: CaLimits | None) -> CaLimits | None:
    """The `[ca.limits]` table over `default` (the CA's published limits, or None), its problems
    reported to `checker`. No table: `default` as it is."""
    if raw is None:
        return default
    if not checker.is_table("ca.limits", raw):
        return default
    checker.unknown_keys("ca.limits", raw, {*_LIMIT_KEYS, *_FLAG_KEYS})
    written: dict[str, Any] = {}
    for key, attribute in _LIMIT_KEYS.items():
        if key in raw:
            written[attribute] = _limit(checker, key, raw[key])
    for key in _FLAG_KEYS:
        flag = checker.value("ca.limits", raw, key, bool)
        if flag is not None:
            written[key] = flag
    return replace(default or CaLimits(), **written)


def _limit(checker: Checker, key: str, raw: Any) -> Limit | None:
    where = f"ca.limits.{key}"
    fix = f"write {key} = {{ count = 300, hours = 3 }} (that many every so many hours)"
    if not isinstance(raw, dict):
        checker.problem(where, "must be a table of count and hours", fix)
        return None
    checker.unknown_keys(where, raw, {"count", "hours"})
    count = checker.value(where, raw, "count", int, required=True)
    hours = checker.value(where, raw, "hours", (int, float), required=True)
    if count is None or hours is None:
        return None
    if not 0 < count <= _MAX_COUNT:
        checker.problem(f"{where}.count", f"must be 1 to {_MAX_COUNT}, not {count}", fix)
        return None
    if not 0 < hours <= _MAX_HOURS:
        checker.problem(f"{where}.hours", f"must be above 0 and at most {_MAX_HOURS:g}", fix)
        return None
    return Limit(count, timedelta(hours=hours))
