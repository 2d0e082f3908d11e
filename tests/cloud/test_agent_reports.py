"""Agents' status reports are untrusted input: a report that is too large, has a field of the wrong
type or lacks one, or claims the future marks only its own agent, and never blinds the fleet's
monitoring (`certdrop status`, `certdrop alerts`, the dashboard, the tick)."""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.cli.exit_codes import EXIT_OK
from cloud.config import AlertsConfig, load
from cloud.fleet.alerts.evaluate import current_alerts
from cloud.fleet.alerts.webhook import WebhookChannel
from cloud.fleet.dashboard import make_app
from cloud.fleet.status import collect
from cloud.fleet.status_table import render
from cloud.pipeline.tick import run_tick
from cloud.store.local import LocalStore
from lab.sample_fleet import Fleet, add_agent, make_fleet
from lab.webhook_receiver import WebhookReceiver
from nas_agent import status
from nas_agent.state import AgentState
from tests.cloud.test_cli_alerts import _fleet_config
from tests.cloud.test_cli_issue import _run

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SEEN = NOW - timedelta(minutes=5)
GONE = object()  # a field left out of the report
MAX_REPORT_BYTES = 64 * 1024
# Reports each of which once made `status`, `alerts`, the dashboard or the tick fail for everyone.
HOSTILE = {
    "seen_at is a number": {"seen_at": 5},
    "seen_at is missing": {"seen_at": GONE},
    "poll_interval_s is text": {"poll_interval_s": "fast"},
    "sites is a list": {"sites": ["healthy"]},
    "a site entry lacks its fingerprint": {"sites": {"healthy": {"version": 2}}},
    "failing is text": {"failing": "no"},
    "last_error is text": {"last_error": "boom"},
}


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, NOW)


def _reported(fleet, monkeypatch, agent_id: str, changes: dict[str, Any], seen=SEEN) -> None:
    """An agent receiving `healthy` whose report, signed by its own key, is a genuine one with
    `changes` made to it."""
    genuine = status.status_report

    def report(state, *, agent_id, now, poll_interval, **more):
        body = json.loads(
            genuine(state, agent_id=agent_id, now=now, poll_interval=poll_interval, **more)
        )
        for field, value in changes.items():
            if value is GONE:
                body.pop(field)
            else:
                body[field] = value
        return json.dumps(body).encode()

    with monkeypatch.context() as patched:
        patched.setattr(status, "status_report", report)
        add_agent(fleet, agent_id, ("healthy",), AgentState(), seen)


def _status_file(fleet, agent_id: str) -> str:
    return os.path.join(fleet.store.root, "agents", agent_id, "status.json")


def _stored_at(fleet, agent_id: str, moment: datetime) -> None:
    """Sets when the store says the report was written (what S3 calls LastModified)."""
    os.utime(_status_file(fleet, agent_id), (moment.timestamp(), moment.timestamp()))


# --- one bad report marks only its agent ---------------------------------------------------------


@pytest.mark.parametrize("changes", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_malformed_report_marks_only_its_agent_and_the_dashboard_still_answers(
    fleet, monkeypatch, changes
):
    _reported(fleet, monkeypatch, "nas-bad", changes)

    response = make_app(lambda: collect(fleet.config, fleet.store, NOW)).test_client().get("/")

    assert response.status_code == 200
    page = response.text
    bad = re.search(r'<tr\b[^>]*data-agent="nas-bad"[^>]*>(.*?)</tr>', page, re.S)
    assert bad and "report invalid" in html.unescape(bad.group(1))
    assert 'data-agent="nas-ok"' in page and 'data-agent="nas-behind"' in page


def test_a_report_with_a_wrong_type_is_read_as_report_invalid_naming_the_field(fleet, monkeypatch):
    _reported(fleet, monkeypatch, "nas-bad", {"seen_at": 5})

    fleet_status = collect(fleet.config, fleet.store, NOW)

    bad = fleet_status.agent("nas-bad")
    assert bad.report_invalid and bad.report_problem.startswith("report invalid: ")
    assert "seen_at" in bad.report_problem
    assert bad.installed == {} and bad.last_seen is None and not bad.quiet
    assert fleet_status.agent("nas-ok").report_problem is None
    assert "report invalid: " in render(fleet_status)


def test_a_report_invalid_is_an_alert_and_the_others_still_fire(fleet, monkeypatch):
    _reported(fleet, monkeypatch, "nas-bad", {"sites": {"healthy": {"version": 2}}})
    config = replace(fleet.config, alerts=AlertsConfig(webhook_url="http://127.0.0.1:9/unused"))

    alerts = {(a.kind, a.subject): a for a in current_alerts(config, fleet.store, NOW)}

    invalid = alerts[("agent_report_invalid", "nas-bad")]
    assert invalid.severity == "error"
    assert "nas-bad" in invalid.message and "fingerprint" in invalid.message
    assert invalid.details["report_problem"].startswith("report invalid: ")
    assert ("agent_quiet", "nas-quiet") in alerts
    assert ("bundle_rolled_back", "nas-behind") in alerts
    assert ("agent_quiet", "nas-bad") not in alerts


def _cli_fleet(tmp_path, alerts: str = "") -> tuple[str, Fleet]:
    """The sample fleet behind a configuration file, for the commands as a user runs them."""
    path = _fleet_config(tmp_path, alerts)
    fleet = Fleet(load(Path(path)), LocalStore(str(tmp_path / "store")), datetime.now(UTC), {})
    return path, fleet


def test_certdrop_status_shows_the_invalid_report_and_every_other_agent(tmp_path, monkeypatch):
    config, fleet = _cli_fleet(tmp_path)
    _reported(fleet, monkeypatch, "nas-bad", {"seen_at": 5}, seen=fleet.now)

    shown = _run("--config", config, "status")

    assert shown.returncode == EXIT_OK, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith("nas-bad"))
    assert "report invalid: " in row and "seen_at" in row
    assert any(line.startswith("nas-ok") for line in shown.stdout.splitlines())


def test_certdrop_alerts_sends_the_fleets_alerts_with_one_for_the_invalid_report(
    tmp_path, monkeypatch
):
    with WebhookReceiver() as hook:
        config, fleet = _cli_fleet(tmp_path, f'[alerts]\nwebhook_url = "{hook.url}"\n')
        _reported(fleet, monkeypatch, "nas-bad", {"seen_at": 5}, seen=fleet.now)

        sent = _run("--config", config, "alerts")

    assert sent.returncode == EXIT_OK, sent.stderr
    kinds = {(a["kind"], a["agent"] or a["site"]) for a in hook.requests[0].json()["alerts"]}
    assert ("agent_report_invalid", "nas-bad") in kinds
    assert ("agent_quiet", "nas-quiet") in kinds and ("expiring", "expired") in kinds


class _Queue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, bodies):
        self.sent += bodies


def test_the_tick_queues_and_sends_every_alert_when_one_report_is_invalid(fleet, monkeypatch):
    _reported(fleet, monkeypatch, "nas-bad", {"failing": "no", "seen_at": 5})
    with WebhookReceiver() as hook:
        config = replace(fleet.config, alerts=AlertsConfig(webhook_url=hook.url))

        result = run_tick(config, fleet.store, _Queue(), NOW, channels=[WebhookChannel(hook.url)])

    assert result.alerts_error is None
    kinds = {(n.alert.kind, n.alert.subject) for n in result.alerts}
    assert ("agent_report_invalid", "nas-bad") in kinds
    assert ("agent_quiet", "nas-quiet") in kinds and ("issuance_failed", "expired") in kinds


class _BrokenChannel:
    name, target = "broken", "nowhere"

    def send(self, notices, sent_at):
        raise RuntimeError("a bug in a channel")


def test_a_bug_in_the_alerts_leaves_the_sites_queued_and_is_kept_for_the_handler(fleet):
    queue = _Queue()
    config = replace(fleet.config, alerts=AlertsConfig(webhook_url="http://127.0.0.1:9/unused"))

    result = run_tick(config, fleet.store, queue, NOW, channels=[_BrokenChannel()])

    assert isinstance(result.alerts_error, RuntimeError) and result.alerts == ()
    assert len(queue.sent) == len(result.due) > 0


# --- size -----------------------------------------------------------------------------------------


def test_a_report_larger_than_64_kib_is_refused_before_it_is_parsed(fleet, monkeypatch):
    padding = [f"site-{n:05d}" for n in range(8000)]  # a valid field, ~140 kB of it
    _reported(fleet, monkeypatch, "nas-big", {"unconfigured_sites": padding})
    assert MAX_REPORT_BYTES < os.path.getsize(_status_file(fleet, "nas-big")) < 256 * 1024

    big = collect(fleet.config, fleet.store, NOW).agent("nas-big")

    assert big.report_problem is not None
    assert "more than the 65536 bytes a report may have" in big.report_problem
    assert big.report_invalid and big.installed == {}


def test_a_huge_report_is_never_read_whole(fleet, monkeypatch):
    add_agent(fleet, "nas-huge", ("healthy",), AgentState(), SEEN)
    with open(_status_file(fleet, "nas-huge"), "wb") as file:
        file.truncate(200 * 1024 * 1024)  # sparse: 200 MB to read, nothing on disk
    asked, returned = [], []
    real_get = fleet.store.get

    def counting_get(key, **kwargs):
        asked.append((key, kwargs.get("max_bytes")))
        found = real_get(key, **kwargs)
        returned.append(len(getattr(found, "body", b"")))
        return found

    monkeypatch.setattr(fleet.store, "get", counting_get)

    huge = collect(fleet.config, fleet.store, NOW).agent("nas-huge")

    assert huge.report_problem is not None and "209715200 bytes" in huge.report_problem
    assert huge.report_invalid
    assert ("agents/nas-huge/status.json", MAX_REPORT_BYTES) in asked
    assert max(returned) <= MAX_REPORT_BYTES


# --- time -----------------------------------------------------------------------------------------


def test_a_report_dated_in_the_future_counts_as_written_now(fleet, monkeypatch):
    ahead = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _reported(fleet, monkeypatch, "nas-ahead", {"seen_at": ahead})

    agent = collect(fleet.config, fleet.store, NOW).agent("nas-ahead")

    assert agent.last_seen == NOW
    assert agent.report_problem is None and not agent.quiet


def test_a_report_claiming_the_future_does_not_keep_a_silent_agent_from_counting_as_quiet(
    fleet, monkeypatch
):
    next_year = (NOW + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _reported(fleet, monkeypatch, "nas-dead", {"seen_at": next_year})
    _stored_at(fleet, "nas-dead", NOW - timedelta(days=2))  # its last write, by the store's clock

    agent = collect(fleet.config, fleet.store, NOW).agent("nas-dead")
    alerts = current_alerts(fleet.config, fleet.store, NOW)

    assert agent.last_seen == NOW - timedelta(days=2)
    assert agent.quiet
    assert ("agent_quiet", "nas-dead") in {(a.kind, a.subject) for a in alerts}
