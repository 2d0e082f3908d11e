"""Alerts wired to the fleet: evaluate, send what is due, remember what was sent.

Called at the end of every tick and of `certdrop run`, by `certdrop alerts`, and by the issue
function right after its runs, so an issuance failure is known within minutes instead of at the
next daily tick. Nothing is read or sent when the configuration has no [alerts] table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cloud.config import AlertsConfig, Config
from cloud.errors import CertdropError, ConfigError, ConfigProblem
from cloud.fleet.alerts import Alert, Channel, Notice
from cloud.fleet.alerts.memory import AlertMemory, Plan, plan
from cloud.fleet.alerts.rules import DEFAULT_EXPIRY_DAYS, evaluate, issuance_failed
from cloud.fleet.alerts.sns import SnsChannel
from cloud.fleet.alerts.webhook import WebhookChannel
from cloud.fleet.status import ReportedError, collect
from cloud.pipeline.site_state import load_site_state
from cloud.store import Store

if TYPE_CHECKING:
    from cloud.pipeline.site_run import Outcome

log = logging.getLogger(__name__)

_RAN = ("issued", "not due", "failed")  # outcomes that tell a site's issuance as it now stands


def channels_for(
    alerts: AlertsConfig, *, sleep: Callable[[float], None] = time.sleep
) -> list[Channel]:
    """The configured channels: the webhook, the SNS topic, or both."""
    channels: list[Channel] = []
    if alerts.webhook_url:
        channels.append(WebhookChannel(alerts.webhook_url, alerts.webhook_secret, sleep=sleep))
    if alerts.sns_topic_arn:
        channels.append(SnsChannel(alerts.sns_topic_arn))
    return channels


def required(config: Config) -> AlertsConfig:
    """The [alerts] table, for commands that send: its absence is a configuration problem."""
    if config.alerts is None:
        problem = ConfigProblem(
            "alerts", "missing", "add an [alerts] table with webhook_url or sns_topic_arn"
        )
        raise ConfigError([problem], str(config.source))
    return config.alerts


def current_alerts(config: Config, store: Store, now: datetime) -> list[Alert]:
    """Every alert firing now (one read per site and per agent)."""
    days = config.alerts.expiry_days if config.alerts else DEFAULT_EXPIRY_DAYS
    return evaluate(collect(config, store, now), now, expiry_days=days)


def due_notices(config: Config, store: Store, now: datetime) -> Plan:
    """What an evaluation now would send, without sending or remembering it (a dry run)."""
    alerts = config.alerts or AlertsConfig()
    return plan(
        current_alerts(config, store, now), AlertMemory(store).load(), now, alerts.remind_after
    )


def evaluate_and_send(
    config: Config, store: Store, now: datetime, channels: Sequence[Channel]
) -> list[Notice]:
    """Sends the notices due now through every channel and remembers them; returns them.
    Raises AlertDeliveryFailed when a channel did not take them (SecretError when the webhook's
    secret cannot be read): then nothing is remembered and the same notices are due at the next
    evaluation."""
    if config.alerts is None:
        return []
    return _deliver(AlertMemory(store), due_notices(config, store, now), channels, now)


def notify_outcomes(
    config: Config,
    store: Store,
    now: datetime,
    channels: Sequence[Channel],
    outcomes: Iterable[Outcome],
) -> list[Notice]:
    """Right after runs: the issuance alerts of just these sites, from their saved state (one
    read each). A run that succeeded resolves its site's issuance alert; nothing else is
    resolved here, as only these sites were looked at."""
    if config.alerts is None:
        return []
    sites = sorted({o.site for o in outcomes if o.result in _RAN})
    keys = {f"issuance_failed/{site}" for site in sites}
    if not keys:
        return []
    alerts = []
    for site in sites:
        state = load_site_state(store, site)
        if state is None or not state.failures or state.last_error is None:
            continue
        error, current = state.last_error, state.current
        details = {
            "version": current.version if current else None,
            "not_after": current.not_after.isoformat() if current else None,
            "next_check": state.next_attempt.isoformat() if state.next_attempt else None,
        }
        # Read as the fleet's view reads it, so the tick sees the same alert, not a new one.
        cause = ReportedError(error.code, error.message)
        alerts.append(issuance_failed(site, state.failures, cause, now, details))
    memory = AlertMemory(store)
    due = plan(
        [a for a in alerts if a is not None],
        memory.load(keys),
        now,
        config.alerts.remind_after,
        in_scope=keys.__contains__,
    )
    return _deliver(memory, due, channels, now)


def _deliver(
    memory: AlertMemory, due: Plan, channels: Sequence[Channel], now: datetime
) -> list[Notice]:
    if not channels:
        raise ValueError("no channel to send alerts through")
    memory.drop(due.drop)
    if not due.notices:
        return []
    failed: list[CertdropError] = []
    # Every channel is tried: a broken webhook (or its unreadable secret) must not silence SNS.
    # The notices are remembered only if all took them, so a working channel may see them twice
    # (at least once, never lost).
    for channel in channels:
        try:
            channel.send(due.notices, now)
        except CertdropError as exc:
            failed.append(exc)
    for error in failed[1:]:
        log.error("%s", error)
    if failed:
        raise failed[0]
    memory.record(due.notices, now)
    return list(due.notices)
