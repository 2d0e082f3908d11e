"""The fleet read model behind `certdrop status`, the dashboard and the alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cloud.fleet.status import ReportedError, collect
from lab.sample_fleet import make_fleet

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, NOW)


def test_each_site_has_its_health_days_left_and_next_renewal(fleet):
    status = collect(fleet.config, fleet.store, NOW)

    expired, due, healthy = (status.site(s) for s in ("expired", "due", "healthy"))
    assert (expired.health, round(expired.days_left)) == ("expired", -5)
    assert expired.failures == 4
    assert expired.last_error == ReportedError("acme.rate_limited", "too many certificates")
    assert "backing off" in expired.next_reason
    assert (due.health, round(due.days_left)) == ("due", 25)
    assert due.next_check == NOW
    assert (healthy.health, round(healthy.days_left)) == ("healthy", 80)
    assert healthy.next_check > NOW


def test_each_agent_shows_what_it_has_installed_and_whether_it_is_current(fleet):
    status = collect(fleet.config, fleet.store, NOW)

    ok, behind, quiet = (status.agent(a) for a in ("nas-ok", "nas-behind", "nas-quiet"))
    assert ok.installed["healthy"].current and ok.installed["due"].current
    assert not ok.quiet and not ok.failing and ok.report_problem is None
    assert ok.poll_interval == 900
    assert not behind.installed["healthy"].current
    assert behind.failing
    assert behind.last_error.code == "install.failed"
    assert "restored" in behind.last_error.message
    assert quiet.quiet


def test_a_status_report_not_signed_by_the_agent_is_not_believed(fleet):
    forged = fleet.store.get("agents/nas-ok/status.json").body  # signed by nas-ok, not nas-quiet
    fleet.store.put("agents/nas-quiet/status.json", forged)

    status = collect(fleet.config, fleet.store, NOW)

    quiet = status.agent("nas-quiet")
    assert quiet.report_problem is not None
    assert quiet.installed == {}


def test_the_status_serialises_to_json(fleet):
    data = collect(fleet.config, fleet.store, NOW).as_json()

    assert json.loads(json.dumps(data))["sites"][0]["site"] == "expired"
    assert data["agents"][0]["agent_id"] == "nas-behind"
