"""What was sent, so an alert goes out when it is new, changed, due a reminder or resolved — not
on every evaluation.

    state/alerts/<kind>/<site, agent or agent/site>.json
        {"format": "certdrop-alert-memory-v1", "fingerprint": "...", "first_seen": "...",
         "last_sent": "...", "alert": {... the alert as last sent ...}}

One object per alert, not one file for all: the issue function records a site's issuance failure
while other runs and the tick record theirs. A record is written only after every channel took
the alert, so a failed delivery is retried at the next evaluation (at least once, never lost).
A record that cannot be read is dropped and its alert, if still firing, is sent as new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cloud.fleet.alerts import Alert, Notice
from cloud.store import Store, StoredObject
from nas_agent import store_layout

log = logging.getLogger(__name__)

PREFIX = store_layout.ALERTS_PREFIX
_FORMAT = "certdrop-alert-memory-v1"


@dataclass(frozen=True)
class Sent:
    alert: Alert  # as last sent
    first_seen: datetime
    last_sent: datetime

    @property
    def fingerprint(self) -> str:
        return self.alert.fingerprint


@dataclass(frozen=True)
class Plan:
    notices: tuple[Notice, ...]
    drop: tuple[str, ...] = ()  # unreadable records, forgotten without a notice


def plan(
    current: Sequence[Alert],
    sent: Mapping[str, Sent | None],
    now: datetime,
    remind_after: timedelta,
    *,
    in_scope: Callable[[str], bool] = lambda key: True,
) -> Plan:
    """The notices due now. `sent` maps alert keys to their records (None: unreadable).
    `in_scope` says which remembered alerts this evaluation saw the whole truth about: only
    those can be resolved (the issue function sees one site's issuance, not the fleet)."""
    notices = []
    firing = {alert.key for alert in current}
    for alert in current:
        prior = sent.get(alert.key)
        if prior is None:
            notices.append(Notice(alert, "new", now))
        elif prior.fingerprint != alert.fingerprint:
            notices.append(Notice(alert, "changed", prior.first_seen))
        elif now - prior.last_sent >= remind_after:
            notices.append(Notice(alert, "reminder", prior.first_seen))
    drop = []
    for key, prior in sorted(sent.items()):
        if key in firing or not in_scope(key):
            continue
        if prior is None:
            drop.append(key)
        else:
            notices.append(Notice(replace(prior.alert, at=now), "resolved", prior.first_seen))
    return Plan(tuple(notices), tuple(drop))


class AlertMemory:
    def __init__(self, store: Store):
        self.store = store

    def load(self, keys: Iterable[str] | None = None) -> dict[str, Sent | None]:
        """The records of the given alert keys that exist, or of all alerts (one listing)."""
        if keys is None:
            names = [info.key for info in self.store.list(PREFIX) if info.key.endswith(".json")]
        else:
            names = [_object_key(key) for key in keys]
        records: dict[str, Sent | None] = {}
        for name in names:
            found = self.store.get(name)
            if isinstance(found, StoredObject):
                records[name[len(PREFIX) : -len(".json")]] = _decode(name, found.body)
        return records

    def record(self, notices: Sequence[Notice], now: datetime) -> None:
        """After delivery: firing alerts are remembered as sent now, resolved ones forgotten."""
        for notice in notices:
            key = _object_key(notice.alert.key)
            if notice.status == "resolved":
                self.store.delete(key)
                continue
            body = {
                "format": _FORMAT,
                "fingerprint": notice.alert.fingerprint,
                "first_seen": notice.first_seen.isoformat(),
                "last_sent": now.isoformat(),
                "alert": notice.alert.to_json(),
            }
            self.store.put(key, json.dumps(body, indent=2, sort_keys=True).encode())

    def drop(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.store.delete(_object_key(key))


def _object_key(alert_key: str) -> str:
    return f"{PREFIX}{alert_key}.json"


def _decode(name: str, data: bytes) -> Sent | None:
    try:
        body = json.loads(data)
        if body.get("format") != _FORMAT:
            raise ValueError(f"format is not {_FORMAT}")
        return Sent(
            alert=Alert.from_json(body["alert"]),
            first_seen=datetime.fromisoformat(body["first_seen"]),
            last_sent=datetime.fromisoformat(body["last_sent"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("alert record %s unreadable (%s): dropped", name, exc)
        return None
