"""Token buckets as one moment each (GCRA): `tat`, when the bucket will be full again.

A bucket of `limit.count` tokens refills one every `limit.interval`. At `now` it holds
`count - (tat - now) / interval` tokens (all of them once `tat` has passed), so a missing entry
is a full bucket, and an entry whose `tat` has passed can be dropped. Pure functions; the CA's
stand-in in the lab keeps its buckets with the same arithmetic, as Let's Encrypt describes its
own.
"""

from __future__ import annotations

from datetime import datetime

from cloud.config import Limit


def ready_at(limit: Limit, tat: datetime | None, now: datetime) -> datetime:
    """The first moment from `now` on at which the bucket holds a whole token."""
    if tat is None:
        return now
    return max(now, tat - limit.period + limit.interval)


def has_token(limit: Limit, tat: datetime | None, now: datetime) -> bool:
    return ready_at(limit, tat, now) <= now


def spend(limit: Limit, tat: datetime | None, at: datetime) -> datetime:
    """The bucket after one token is spent at `at`; never below empty (a spend the CA would
    have refused, or a failure it counts anyway, leaves it empty, not in debt)."""
    start = at if tat is None else max(tat, at)
    return min(start + limit.interval, at + limit.period)


def empty_until(limit: Limit, tat: datetime | None, until: datetime) -> datetime:
    """The bucket as the CA says it is: no token before `until` (its Retry-After)."""
    emptied = until + limit.period - limit.interval
    return emptied if tat is None else max(tat, emptied)


def tokens(limit: Limit, tat: datetime | None, now: datetime) -> float:
    if tat is None or tat <= now:
        return float(limit.count)
    return max(0.0, limit.count - (tat - now) / limit.interval)
