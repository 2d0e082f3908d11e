"""Agents' errors reach the operator by code: a refused bundle and a rolled-back install are told
apart by the code in the agent's signed report, alike by the alerts and the dashboard, whatever
the message says; reports of agents from before codes are still read."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from cloud.fleet.alerts.evaluate import current_alerts
from cloud.fleet.dashboard import make_app
from cloud.fleet.status import ReportedError, collect
from lab.sample_fleet import add_agent, make_fleet
from nas_agent import status
from nas_agent.state import AgentState

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SEEN = NOW - timedelta(minutes=5)
MESSAGE = "see the agent's log"  # the same text for every error: only the code tells them apart


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, NOW)


def _failing(code: str) -> AgentState:
    return AgentState().with_error(code, MESSAGE, SEEN - timedelta(minutes=1), "healthy")


def _alert_kinds(fleet, agent: str) -> list[str]:
    return [a.kind for a in current_alerts(fleet.config, fleet.store, NOW) if a.agent == agent]


def _badges(page: str, tag: str, **attributes: str) -> list[tuple[str, str]]:
    """(colour, text) of each badge inside the first `tag` carrying these data-* attributes."""
    wanted = "".join(rf'(?=[^>]*\bdata-{k}="{re.escape(v)}")' for k, v in attributes.items())
    inside = re.search(rf"<{tag}\b{wanted}[^>]*>(.*?)</{tag}>", page, re.S)
    assert inside, f"no <{tag}> with {attributes}"
    found = re.findall(r'<span class="badge (\w+)">(.*?)</span>', inside.group(1), re.S)
    return [(level, html.unescape(text).strip()) for level, text in found]


@pytest.mark.parametrize(
    ("code", "alert", "badge"),
    [
        ("bundle.names_not_covered", "bundle_refused", ("red", "refused")),
        ("bundle.signature_invalid", "bundle_refused", ("red", "refused")),
        ("install.failed", "bundle_rolled_back", ("red", "rolled back")),
        ("dsm.unreachable", None, ("amber", "error")),
    ],
)
def test_the_alerts_and_the_dashboard_classify_an_agents_error_by_its_code(
    fleet, code, alert, badge
):
    add_agent(fleet, "nas-x", ("healthy",), _failing(code), SEEN)

    kinds = _alert_kinds(fleet, "nas-x")
    page = make_app(lambda: collect(fleet.config, fleet.store, NOW)).test_client().get("/").text

    assert kinds == ([alert] if alert else [])
    assert badge in _badges(page, "td", agent="nas-x", site="healthy")  # the grid
    assert badge in _badges(page, "tr", agent="nas-x")  # the agents table
    assert f"{code}: {MESSAGE}" in html.unescape(page)


def test_the_alert_carries_the_code_and_the_message_apart(fleet):
    add_agent(fleet, "nas-x", ("healthy",), _failing("bundle.chain_invalid"), SEEN)

    (alert,) = [a for a in current_alerts(fleet.config, fleet.store, NOW) if a.agent == "nas-x"]

    assert "refused a bundle (bundle.chain_invalid)" in alert.message
    assert alert.details["last_error"] == {"code": "bundle.chain_invalid", "message": MESSAGE}
    assert alert.details["site_errors"] == {
        "healthy": {"code": "bundle.chain_invalid", "message": MESSAGE}
    }


def _report_before_codes(last_error: object, **more: object):
    """What an agent from before codes wrote (its signature is still made the current way)."""

    def report(state, *, agent_id, now, poll_interval, csr_pending=None):
        body = {
            "format": status.STATUS_FORMAT,
            "agent": agent_id,
            "poll_interval_s": 900,
            "seen_at": "2026-11-28T11:55:00Z",
            "dsm_version": None,
            "sites": {},
            "last_success": None,
            "last_error": last_error,
            "failing": True,
            **more,
        }
        return json.dumps(body).encode()

    return report


def _old(kind: str) -> dict:
    return {"kind": kind, "message": MESSAGE, "at": "2026-11-28T11:54:00Z", "site": "healthy"}


@pytest.mark.parametrize(
    ("last_error", "code", "alert"),
    [
        (_old("SealedHashMismatch"), "bundle.sealed_hash_mismatch", "bundle_refused"),
        (_old("InstallFailed"), "install.failed", "bundle_rolled_back"),
        (_old("AnErrorRenamedLongAgo"), "unknown", None),
        ({"message": MESSAGE}, "unknown", None),
    ],
)
def test_a_report_from_before_codes_is_read_by_the_class_it_names(
    fleet, monkeypatch, last_error, code, alert
):
    monkeypatch.setattr(status, "status_report", _report_before_codes(last_error))
    add_agent(fleet, "nas-old", ("healthy",), AgentState(), SEEN)

    agent = collect(fleet.config, fleet.store, NOW).agent("nas-old")

    assert agent.last_error == ReportedError(code, MESSAGE)
    assert agent.site_errors == {} and agent.failing
    assert _alert_kinds(fleet, "nas-old") == ([alert] if alert else [])


def test_errors_a_report_holds_in_the_wrong_shape_make_it_invalid_not_a_crash(fleet, monkeypatch):
    wrong = _report_before_codes("not an object", site_errors=["healthy"])
    monkeypatch.setattr(status, "status_report", wrong)
    add_agent(fleet, "nas-odd", ("healthy",), AgentState(), SEEN)

    agent = collect(fleet.config, fleet.store, NOW).agent("nas-odd")
    page = make_app(lambda: collect(fleet.config, fleet.store, NOW)).test_client().get("/")

    assert agent.last_error is None and agent.site_errors == {}
    assert agent.report_invalid and "last_error must be an object" in agent.report_problem
    assert page.status_code == 200
