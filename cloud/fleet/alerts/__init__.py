"""Alerts: what in the fleet needs a human, sent once to a webhook and/or an SNS topic.

    rules.py        the alerts firing now, pure functions over the fleet's status: the sites'
    agent_rules.py  the agents' (rules.py asks them too)
    persist.py      those of dns-persist-01 records (rules.py asks them too)
    wording.py      days, durations and sentences as every rule words them
    memory.py       what was sent (state/alerts/<kind>/<subject>.json) and so what to send now
    webhook.py      one signed JSON POST per evaluation, retried on 5xx and connection errors
    sns.py          one SNS message per alert, with the kind as a message attribute

Kinds (KINDS; the README's table lists the same): "issuance_failed" (a site's last run failed),
"expiring" (a certificate has fewer than `expiry_days` left and no renewal is published),
"bundle_refused" (an agent refused a bundle a check failed on), "bundle_rolled_back" (an agent's
install did not hold and was rolled back), "install_incomplete" (DSM holds an agent's new
certificate, but a configured service is not bound to it, or two DSM certificates share the
site's description), "agent_frozen" (an agent's index expired: the issuer
stopped signing it again, or an old copy is served), "agent_quiet" (an agent missed three
reports), "agent_report_invalid" (an agent's report is not believed: too large, malformed or not
signed by it), "agent_certificate_expiring" (the certificate an agent reports installed for a
site is not the published one and has fewer than `expiry_days` left: the agent is stuck on an
older version), "replaced_elsewhere" (the CA said a certificate already had a replacement
certdrop did not order; the renewal went without `replaces`), "persist_expiring" (a
dns-persist-01 record's persistUntil is fewer than `expiry_days` away),
"persist_account_mismatch" (a dns-persist-01 record names another ACME account), "txt_left" (TXT
values a run could not remove from DNS), "delivery_pending" (the current certificate has not
reached some agents, or a certificate a run recorded is not yet published), "csr_refused" (the
issuer refused agents' CSR statements), "agent_site_unconfigured" (an agent receives a site its
agent.conf has no section for: it never installs it), "agent_version_unpublished" (an agent
reports a version of a site the issuer never published: it refuses every version up to it).

An alert is sent when it is new, when its cause changes (another error, another certificate
version, a later report), and again as a reminder after `remind_after`; when it stops firing a
"resolved" notice is sent once and it is forgotten. Both channels carry the same JSON:

    {"format": "certdrop-alerts-v1",
     "sent_at": "2026-11-28T12:00:00+00:00",
     "alerts": [{"kind": "expiring", "status": "firing", "reason": "new",
                 "severity": "warning", "site": "example", "agent": null,
                 "message": "The certificate of example expires in 12 days (...).",
                 "details": {"version": 5, "days_left": 12.3, ...},
                 "at": "2026-11-28T12:00:00+00:00", "first_seen": "2026-11-28T12:00:00+00:00",
                 "fingerprint": "3f9c0a6e1b2d4c57"}]}

status is "firing" or "resolved"; reason is "new", "changed", "reminder" or "resolved";
severity is "warning", "error" or "critical"; fingerprint changes with the alert's cause.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

FORMAT = "certdrop-alerts-v1"
KINDS = (
    "issuance_failed",
    "expiring",
    "bundle_refused",
    "bundle_rolled_back",
    "agent_frozen",
    "agent_quiet",
    "agent_report_invalid",
    "agent_certificate_expiring",
    "replaced_elsewhere",
    "persist_expiring",
    "persist_account_mismatch",
    "txt_left",
    "delivery_pending",
    "csr_refused",
    "install_incomplete",
    "agent_site_unconfigured",
    "agent_version_unpublished",
)
SEVERITIES = ("warning", "error", "critical")
REASONS = ("new", "changed", "reminder", "resolved")


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str
    message: str  # one sentence for a human
    at: datetime
    cause: str  # what made it fire (the error, the certificate version, the last report)
    site: str | None = None
    agent: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # JSON values only

    @property
    def subject(self) -> str:
        """A site, an agent, or "agent/site" for one agent's copy of a site's certificate (ids
        hold no '/'), so each agent of a site has an alert of its own."""
        if self.site and self.agent:
            return f"{self.agent}/{self.site}"
        return self.site or self.agent or ""

    @property
    def key(self) -> str:
        """One alert of a kind per subject: its name in the memory."""
        return f"{self.kind}/{self.subject}"

    @property
    def fingerprint(self) -> str:
        text = "\0".join((self.kind, self.subject, self.cause))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "site": self.site,
            "agent": self.agent,
            "message": self.message,
            "details": dict(self.details),
            "at": self.at.isoformat(),
            "cause": self.cause,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            kind=data["kind"],
            severity=data["severity"],
            message=data["message"],
            at=datetime.fromisoformat(data["at"]),
            cause=data["cause"],
            site=data.get("site"),
            agent=data.get("agent"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Notice:
    """An alert as it goes out: why now, and since when it has been firing."""

    alert: Alert
    reason: str  # one of REASONS
    first_seen: datetime

    @property
    def status(self) -> str:
        return "resolved" if self.reason == "resolved" else "firing"

    def to_json(self) -> dict[str, Any]:
        alert = self.alert
        return {
            "kind": alert.kind,
            "status": self.status,
            "reason": self.reason,
            "severity": alert.severity,
            "site": alert.site,
            "agent": alert.agent,
            "message": alert.message,
            "details": dict(alert.details),
            "at": alert.at.isoformat(),
            "first_seen": self.first_seen.isoformat(),
            "fingerprint": alert.fingerprint,
        }


def payload(notices: Sequence[Notice], sent_at: datetime) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "sent_at": sent_at.isoformat(),
        "alerts": [n.to_json() for n in notices],
    }


class Channel(Protocol):
    """Delivers notices or raises AlertDeliveryFailed; nothing counts as sent until it returns."""

    name: str
    target: str  # where to, without anything secret: for logs and errors

    def send(self, notices: Sequence[Notice], sent_at: datetime) -> None: ...
