"""The "agent_certificate_expiring" alert: an agent that reports on every poll but is stuck on an
older certificate (its source unreachable, its DSM login failing) is alerted per agent and site,
while the site it serves looks healthy; an agent with the published version is left to the
site's own "expiring" alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud.config import AlertsConfig
from cloud.fleet.alerts import KINDS, Notice
from cloud.fleet.alerts.evaluate import current_alerts, evaluate_and_send
from cloud.fleet.alerts.memory import PREFIX
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.dashboard import view
from cloud.fleet.status import (
    BEHIND,
    CURRENT,
    AgentStatus,
    CustodyAgentStatus,
    FleetStatus,
    InstalledStatus,
    SiteStatus,
    collect,
)
from cloud.fleet.status_table import render
from lab.sample_fleet import DAY, add_agent, make_fleet
from nas_agent.state import AgentState, InstalledSite
from nas_agent.status import signed_status

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KIND = "agent_certificate_expiring"


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, NOW)


class RecordingChannel:
    """Takes every notice it is given, so a test sees what one evaluation sent."""

    name = "recording"
    target = "memory"

    def __init__(self) -> None:
        self.sent: list[Notice] = []

    def send(self, notices, sent_at):
        self.sent += notices


def _config(fleet, **alerts):
    return replace(
        fleet.config, alerts=AlertsConfig(webhook_url="http://127.0.0.1:9/unused", **alerts)
    )


def _add_stuck_agent(fleet, agent_id: str, not_after: datetime) -> None:
    """An agent of site "healthy" (version 2 published, 80 days left) still holding version 1,
    reporting on every poll and failing every cycle: its source cannot be reached (not a
    refusal, not a rollback)."""
    seen = fleet.now - timedelta(minutes=5)
    installed = InstalledSite(1, "01" * 32, not_after, "Ab12Cd", fleet.now - 60 * DAY)
    state = AgentState(sites={"healthy": installed}, last_success=None).with_error(
        "source.unavailable", "the bucket could not be reached", seen - timedelta(minutes=1)
    )
    add_agent(fleet, agent_id, ("healthy",), state, seen)


def _report(fleet, agent_id: str, state: AgentState, seen: datetime) -> None:
    """A later signed report of an agent already added."""
    body = signed_status(
        state,
        agent_id=agent_id,
        signing_key=fleet.agents[agent_id].signing_key,
        now=seen,
        poll_interval=900,
    )
    fleet.store.put(f"agents/{agent_id}/status.json", body)


def _of_kind(alerts):
    return {a.subject: a for a in alerts if a.kind == KIND}


def test_an_agent_reporting_every_poll_while_serving_an_expired_certificate_is_alerted(fleet):
    _add_stuck_agent(fleet, "nas-stuck", fleet.now - 2 * DAY)
    config = _config(fleet)

    status = collect(config, fleet.store, fleet.now)
    alerts = _of_kind(current_alerts(config, fleet.store, fleet.now))

    assert status.agent("nas-stuck").installed["healthy"].not_after < fleet.now
    assert status.site("healthy").health == "healthy"
    alert = alerts["nas-stuck/healthy"]
    assert (alert.agent, alert.site, alert.severity) == ("nas-stuck", "healthy", "critical")
    assert alert.message == (
        "Agent nas-stuck has version 1 of healthy installed, which expired 2 days ago "
        "(2026-11-26 12:00 UTC); version 2 is published. Its last error: "
        "source.unavailable: the bucket could not be reached."
    )
    assert (alert.details["version"], alert.details["published_version"]) == (1, 2)
    assert alert.details["days_left"] == -2.0
    assert KIND in KINDS


def test_an_agent_certificate_expiring_but_not_expired_is_a_warning(fleet):
    _add_stuck_agent(fleet, "nas-stuck", fleet.now + 5 * DAY)

    alerts = _of_kind(current_alerts(_config(fleet, expiry_days=14), fleet.store, fleet.now))

    alert = alerts["nas-stuck/healthy"]
    assert alert.severity == "warning"
    assert "which expires in 5 days (2026-12-03 12:00 UTC)" in alert.message
    assert alert.details["expiry_days"] == 14


def test_an_agent_certificate_with_more_than_expiry_days_left_is_not_alerted(fleet):
    _add_stuck_agent(fleet, "nas-stuck", fleet.now + 20 * DAY)

    alerts = _of_kind(current_alerts(_config(fleet, expiry_days=14), fleet.store, fleet.now))

    assert alerts == {}


def test_an_agent_with_the_published_version_is_left_to_the_sites_expiring_alert(fleet):
    # Site "due" has 25 days left; nas-ok and nas-quiet both have its version 5 installed.
    # nas-behind's copy of "healthy" (version 1, 20 days left) is the only one behind.
    alerts = current_alerts(_config(fleet, expiry_days=30), fleet.store, fleet.now)

    assert {a.site for a in alerts if a.kind == "expiring"} == {"due", "expired"}
    assert set(_of_kind(alerts)) == {"nas-behind/healthy"}


def test_each_agent_of_a_site_has_an_alert_of_its_own(fleet):
    _add_stuck_agent(fleet, "nas-a", fleet.now - 2 * DAY)
    _add_stuck_agent(fleet, "nas-b", fleet.now + 3 * DAY)
    channel = RecordingChannel()

    evaluate_and_send(_config(fleet), fleet.store, fleet.now, [channel])

    sent = {n.alert.subject: n.alert.severity for n in channel.sent if n.alert.kind == KIND}
    assert sent == {"nas-a/healthy": "critical", "nas-b/healthy": "warning"}
    remembered = {info.key.removeprefix(PREFIX) for info in fleet.store.list(PREFIX + KIND)}
    assert remembered == {f"{KIND}/nas-a/healthy.json", f"{KIND}/nas-b/healthy.json"}


def test_the_alert_is_sent_again_when_the_certificate_expires(fleet):
    _add_stuck_agent(fleet, "nas-stuck", fleet.now + DAY / 2)
    channel = RecordingChannel()
    config = _config(fleet)

    evaluate_and_send(config, fleet.store, fleet.now, [channel])
    evaluate_and_send(config, fleet.store, fleet.now + timedelta(hours=1), [channel])
    evaluate_and_send(config, fleet.store, fleet.now + DAY, [channel])

    ours = [(n.reason, n.alert.severity) for n in channel.sent if n.alert.kind == KIND]
    assert ours == [("new", "warning"), ("changed", "critical")]


def test_the_alert_resolves_once_the_agent_reports_the_published_version(fleet):
    _add_stuck_agent(fleet, "nas-stuck", fleet.now - 2 * DAY)
    channel = RecordingChannel()
    config = _config(fleet)
    evaluate_and_send(config, fleet.store, fleet.now, [channel])
    later = fleet.now + timedelta(minutes=20)
    seen = later - timedelta(minutes=1)
    current = InstalledSite(2, "02" * 32, fleet.now + 80 * DAY, "Ef34Gh", seen)
    _report(fleet, "nas-stuck", AgentState(sites={"healthy": current}, last_success=seen), seen)
    channel.sent.clear()

    evaluate_and_send(config, fleet.store, later, [channel])

    resolved = [n for n in channel.sent if n.alert.kind == KIND]
    assert [(n.alert.subject, n.reason, n.status) for n in resolved] == [
        ("nas-stuck/healthy", "resolved", "resolved")
    ]
    assert list(fleet.store.list(PREFIX + KIND)) == []


def test_under_agent_custody_an_agent_with_its_own_certificate_is_current():
    """Each agent has a certificate of its own: nas-a's version 3 is what is published for it,
    even though nas-b's version 4 is the site's newest."""
    now = NOW
    site = SiteStatus(
        site="shop",
        names=("shop.example.test",),
        version=4,
        not_before=None,
        not_after=now + 5 * DAY,
        days_left=5.0,
        health="healthy",
        next_check=now + DAY,
        next_reason="renewal window",
        failures=0,
        last_error=None,
        key_custody="agent",
        agents={
            "nas-a": CustodyAgentStatus("certificate current", version=3, not_after=now + 5 * DAY),
            "nas-b": CustodyAgentStatus("certificate current", version=4, not_after=now + 60 * DAY),
        },
    )
    agents = tuple(
        AgentStatus(
            agent_id=agent_id,
            sites=("shop",),
            installed={
                "shop": InstalledStatus(
                    version,
                    "ab" * 32,
                    not_after,
                    version == site.published_for(agent_id),
                    CURRENT if version == site.published_for(agent_id) else BEHIND,
                    days_left=5.0,
                    expiring=True,
                )
            },
            last_seen=now,
            poll_interval=900.0,
            quiet=False,
            dsm_version=None,
            last_error=None,
            site_errors={},
            failing=False,
            report_problem=None,
        )
        for agent_id, version, not_after in (
            ("nas-a", 3, now + 5 * DAY),
            ("nas-b", 3, now + 5 * DAY),  # behind: its own version 4 is not installed
        )
    )

    alerts = evaluate(FleetStatus(now, (site,), agents), now, expiry_days=14)

    assert [a.kind for a in alerts if a.kind == "expiring"] == ["expiring"]
    assert set(_of_kind(alerts)) == {"nas-b/shop"}
    assert _of_kind(alerts)["nas-b/shop"].message.endswith(
        "version 4 is published. It reports no error."
    )


# --- found by an independent review of what the views tell (each failed before its fix) ---


def _agent_row(text: str, agent_id: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith(f"{agent_id} ")]
    return row


def _site_row(text: str, site_id: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{site_id} "))


def test_status_does_not_call_an_agent_ok_while_it_serves_an_expired_certificate(fleet, tmp_path):
    """The original complaint: "a NAS serving an expired certificate while status said healthy".
    README (Alerts): `agent_certificate_expiring` is critical when the certificate an agent
    reports installed "has expired ... while the site looks healthy".

    Reproduction: nas-stale installed version 1 of "healthy" long ago; its agent.conf later lost
    the [site:healthy] section (so it reports `unconfigured_sites: ["healthy"]`, no error,
    `failing` false, reporting every 15 min). Version 2 is published; version 1 expired 2 days
    ago and is what the NAS serves.

    Expected: `certdrop status` and the dashboard's agent flags say something is wrong with
    nas-stale (the alert does: critical `agent_certificate_expiring`).
    Instead: the site row says "healthy", the agent row says "ok" with just "healthy v1
    (behind)" (the text table shows no expiry for an agent's certificate at all), and the
    dashboard's agent flags are a single green "ok" (only the grid cell is red). `certdrop
    status` tells the operator the very thing users reported.
    Fix: status_table._agent_row / view.agent_flags should flag an agent whose installed
    certificate for a site it receives has expired (or is expiring and not current).

    Found by an independent review of what the views tell; it failed before the fix.
    """
    now = fleet.now
    seen = now - timedelta(minutes=5)
    state = replace(
        AgentState(
            sites={"healthy": InstalledSite(1, "01" * 32, now - 2 * DAY, "x", now - 92 * DAY)},
            last_success=seen,
        ),
        unconfigured_sites=("healthy",),
    )
    add_agent(fleet, "nas-stale", ("healthy",), state, seen)

    status = collect(fleet.config, fleet.store, now)
    alerts = {(a.kind, a.agent, a.severity) for a in evaluate(status, now)}
    assert ("agent_certificate_expiring", "nas-stale", "critical") in alerts  # alerts know
    text = render(status)
    row = _agent_row(text, "nas-stale")
    flags = [b.word for b in view.agent_flags(status.agent("nas-stale"))]

    problems = []
    if " ok " in f" {row} " and "expired" not in row:
        problems.append(f"status text: {row!r} (site: {_site_row(text, 'healthy')!r})")
    if flags == ["ok"]:
        problems.append("dashboard agent flags: green ok")
    assert not problems, "; ".join(problems)
    # The expiry itself is what both say, not only that its agent.conf lacks the site.
    assert "healthy v1 expired 2 days ago" in row
    assert "certificate expired" in flags
