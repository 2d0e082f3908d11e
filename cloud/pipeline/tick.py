"""The scheduler's tick: which sites are due, from one listing, and one queue message each (and
one asking the issue function to sign agents' indexes again, when one nears its expiry); then
the alerts, when the configuration has an [alerts] table (one read per site and agent).

When the CA has rate limits (`[ca.limits]`), one read of the limiter's ledger says which of the
due sites fit now, most urgent first; the others wait for a later tick (`cloud.limiter`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from cloud.config import Config
from cloud.errors import CertdropError
from cloud.fleet.alerts import Channel, Notice
from cloud.fleet.alerts.evaluate import channels_for, evaluate_and_send
from cloud.limiter.plan import pace
from cloud.pipeline.schedule import (
    Due,
    days_to_expiry,
    due_sites,
    read_csr_posts,
    read_journalled,
    read_markers,
)
from cloud.publish.indexes import resign_wanted
from cloud.store import Store

log = logging.getLogger(__name__)


class Queue(Protocol):
    def send(self, bodies: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class TickResult:
    due: tuple[Due, ...]  # every site due; those not waiting were sent
    days_to_expiry: dict[str, float]
    # Due sites the CA's rate limits hold back (cloud.limiter): not sent, left for a later tick.
    waiting: tuple[str, ...] = ()
    alerts: tuple[Notice, ...] = ()  # the notices sent
    # Alerts that could not be sent (they are due again next tick), or the error that kept them
    # from being evaluated. Kept, not raised, so the caller still reports its metric; the
    # Lambda handler raises it then.
    alerts_error: Exception | None = None


RESIGN_MESSAGE = json.dumps({"resign_indexes": True})


def message_for(site: str) -> str:
    return json.dumps({"site": site})


def site_of(body: str) -> str | None:
    """The site a queue message asks to run; None for the message asking to re-sign indexes."""
    message = json.loads(body)
    return None if message.get("resign_indexes") is True else message["site"]


def run_tick(
    config: Config,
    store: Store,
    queue: Queue,
    now: datetime,
    *,
    channels: Sequence[Channel] | None = None,
) -> TickResult:
    """`channels` default to the configuration's (webhook and/or SNS)."""
    markers = read_markers(store)
    posts = read_csr_posts(store, config.sites)
    due = due_sites(config.sites, markers, now, read_journalled(store), posts)
    paced = pace(config, store, due, markers, now, full=False)  # most urgent first, in limits
    messages = [message_for(site) for site in paced.go]
    if resign_wanted(store, now):
        messages.append(RESIGN_MESSAGE)  # the issue function holds the signing key
    if messages:
        queue.send(messages)
    log.info(
        "tick: %d of %d site(s) due, %d of them waiting for the CA's limits",
        len(due),
        len(config.sites),
        len(paced.held_back),
    )
    # Only configured sites: a site taken out of the file keeps its marker, whose expiry would
    # hold the stack's ExpiryAlarm on for good.
    configured = {site: marker for site, marker in markers.items() if site in config.sites}
    result = TickResult(tuple(due), days_to_expiry(configured, now), waiting=paced.held_back)
    if config.alerts is None:
        return result
    if channels is None:
        channels = channels_for(config.alerts)
    try:
        sent = evaluate_and_send(config, store, now, channels)
    except CertdropError as exc:
        log.error("alerts not sent: %s", exc)
        return replace(result, alerts_error=exc)
    except Exception as exc:  # a bug: the sites are queued, the metric must still go out
        log.exception("alerts not evaluated")
        return replace(result, alerts_error=exc)
    log.info("tick: %d alert notice(s) sent", len(sent))
    return replace(result, alerts=tuple(sent))
