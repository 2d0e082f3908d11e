"""The fleet read model behind `certdrop status`, the dashboard and the alerts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.dashboard import make_app, view
from cloud.fleet.status import ReportedError, collect
from cloud.fleet.status_table import render
from cloud.pipeline.site_state import (
    ErrorRecord,
    SiteState,
    load_site_state,
    save_site_state,
)
from lab.sample_fleet import (
    DAY,
    SITES,
    _record,
    add_agent,
    add_custody_site,
    make_fleet,
    with_sites,
)
from nas_agent.state import AgentState, InstalledSite

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


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


# --- found by an independent review of what the views tell (each failed before its fix) ---


def _custody_fleet(fleet, tmp_path):
    """Site "cust" under agent custody, two agents with a certificate each: nas-ca got version
    1, nas-cb version 2 (versions are per site, so the second agent's order took the next one).
    Both have installed exactly the certificate published for them."""
    now = fleet.now
    records = {
        "nas-ca": _record("cust", 1, now - 10 * DAY, 90 * DAY),
        "nas-cb": _record("cust", 2, now - 5 * DAY, 90 * DAY),
    }
    return add_custody_site(fleet, tmp_path, records)


def _agent_row(text: str, agent_id: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith(f"{agent_id} ")]
    return row


def test_an_agent_custody_agent_with_its_own_current_certificate_is_not_shown_behind(
    fleet, tmp_path
):
    """README (Operating a fleet): the agents table shows "what each has installed and whether
    that is current"; (Dashboard) the timeline draws each agent's installed certificate as a dot,
    "hollow when behind". Under agent custody each agent has its own certificate
    (`SiteStatus.published_for`), and the alerts and the dashboard grid use that.

    Reproduction: agent-custody site "cust", nas-ca holds version 1 (its own, current), nas-cb
    version 2 (its own, current); both report exactly those.

    Expected: nas-ca's installed certificate is current everywhere.
    Instead: `status.collect` compares every agent with the site's *newest* version (2), so
    `certdrop status` prints "cust v1 (behind)", `status --json` says `"current": false`, and
    the timeline draws a hollow "(behind)" dot, while the dashboard grid says "current" and no
    alert fires: a healthy NAS is shown behind, and the views disagree.
    Fix: `cloud/fleet/status.py::_agent` should compare with `site.published_for(agent)`.

    Found by an independent review of what the views tell; it failed before the fix.
    """
    fleet = _custody_fleet(fleet, tmp_path)
    now = fleet.now
    status = collect(fleet.config, fleet.store, now)

    grid = view.cell(status.agent("nas-ca"), status.site("cust"), now)
    assert grid.state == "current"  # the dashboard grid gets it right
    text = render(status)
    data = status.as_json()
    in_json = next(a for a in data["agents"] if a["agent_id"] == "nas-ca")["installed"]["cust"]
    picture = make_app(lambda: status).test_client().get("/timeline.svg").text
    dots = {
        c.find(f"{SVG}title").text.split(":")[0]: c.get("fill")
        for g in ET.fromstring(picture).iter(f"{SVG}g")
        if g.get("data-site") == "cust"
        for c in g.iter(f"{SVG}circle")
    }

    problems = []
    if "(behind)" in _agent_row(text, "nas-ca"):
        problems.append(f"status text: {_agent_row(text, 'nas-ca')!r}")
    if in_json["current"] is not True:
        problems.append(f"status --json installed.cust: {in_json}")
    if dots.get("nas-ca") == "#ffffff":
        problems.append("timeline: hollow (behind) dot for nas-ca")
    assert not problems, "; ".join(problems)


def test_an_agent_that_ignores_a_site_it_receives_is_not_shown_ok_and_is_alerted(fleet, tmp_path):
    """README (The NAS agent): "Index entries for sites `agent.conf` does not name are never
    installed; ... the status report lists them under `unconfigured_sites`". The bar: a NAS in
    trouble is never shown healthy.

    Reproduction: agent nas-unconf is registered for "healthy" and "due"; its agent.conf has no
    [site:healthy] section (a typo'd site id), so it installs "due" and reports "healthy" under
    `unconfigured_sites`, with no error and `failing` false. It will never install "healthy".

    Expected: the operator can tell: `certdrop status` / `--json` / dashboard show the agent is
    not taking "healthy", and an alert fires (nothing else will: with nothing installed,
    `agent_certificate_expiring` can never fire).
    Instead: `agent_report.parse_report` type-checks `unconfigured_sites` and throws it away;
    status says "ok" ("healthy -"), the JSON has no trace of it, the dashboard flag is green
    "ok", and no alert ever fires, for as long as the NAS keeps serving whatever certificate it
    had (until it expires and beyond).

    Found by an independent review of what the views tell; it failed before the fix.
    """
    now = fleet.now
    seen = now - timedelta(minutes=5)
    due = load_site_state(fleet.store, "due").current
    state = replace(
        AgentState(
            sites={"due": InstalledSite(5, due.cert_sha256, due.not_after, "x", seen)},
            last_success=seen,
        ),
        unconfigured_sites=("healthy",),
    )
    add_agent(fleet, "nas-unconf", ("healthy", "due"), state, seen)

    status = collect(fleet.config, fleet.store, now)
    text = render(status)
    alerts = [a for a in evaluate(status, now) if a.agent == "nas-unconf"]
    as_json = json.dumps(
        next(a for a in status.as_json()["agents"] if a["agent_id"] == "nas-unconf")
    )
    flags = [b.word for b in view.agent_flags(status.agent("nas-unconf"))]

    problems = []
    if _agent_row(text, "nas-unconf").split()[-2:] == ["ok", "-"]:
        problems.append(f"status text: {_agent_row(text, 'nas-unconf')!r}")
    if "unconfigured" not in as_json:
        problems.append("status --json: nothing says it does not take 'healthy'")
    if flags == ["ok"]:
        problems.append("dashboard: green ok")
    if not alerts:
        problems.append("no alert")
    assert not problems, "; ".join(problems)


def test_an_agent_claiming_a_version_never_published_is_not_shown_as_merely_behind(fleet):
    """README (Operating a fleet): the agents table shows what each agent "has installed and
    whether that is current". DESIGN §8: versions only grow; an agent refuses anything not newer
    than what it has installed.

    Reproduction: "healthy" has version 2 published (and no higher version was ever reserved);
    agent nas-ahead's signed report says it has version 9 installed, 80 days left, no error.

    Expected: flagged: the agent holds (or claims) a certificate the issuer never published,
    and it will refuse every version up to 9 the issuer publishes next, so it is not "behind",
    and something (the agent's state or an alert) should say so.
    Instead: `current = entry.version == published`, so `certdrop status` shows
    "healthy v9 (behind)" with state "ok", `--json` `current: false`, the timeline a hollow
    "behind" dot, and no alert fires (`agent_certificate_expiring` needs < expiry_days left).
    The same "(behind)" can appear for an agent that is ahead because a run died after
    delivering v3 and before recording it as the site's current version.

    Found by an independent review of what the views tell; it failed before the fix.
    """
    now = fleet.now
    seen = now - timedelta(minutes=5)
    state = AgentState(
        sites={"healthy": InstalledSite(9, "09" * 32, now + 80 * DAY, "x", seen)},
        last_success=seen,
    )
    add_agent(fleet, "nas-ahead", ("healthy",), state, seen)

    status = collect(fleet.config, fleet.store, now)
    row = _agent_row(render(status), "nas-ahead")
    alerts = [a for a in evaluate(status, now) if a.agent == "nas-ahead"]

    assert "(behind)" not in row or alerts, f"status text {row!r} and no alert for nas-ahead"


def test_a_site_whose_first_issuance_keeps_failing_is_shown_failing(fleet, tmp_path):
    """README (Operating a fleet): health is one of "healthy, due, failing, delivery pending,
    TXT left, expired, never issued"; "failing" is what a site whose runs fail is.

    Reproduction: a new site "fresh": its first 5 runs failed (the CA refuses: acme.unauthorized),
    backing off; no certificate yet.

    Expected: health "failing" (red) in `certdrop status`, `--json` and the dashboard, and
    counted under "failing" in the dashboard's summary (as the `issuance_failed` alert does).
    Instead: `_site` checks "no certificate" before failures, so it is "never issued": grey on
    the dashboard, counted as "1 never issued" in its summary, never as failing, the same as a
    site just added and not yet tried. Same in `_custody_site` (`if not held`).

    Found by an independent review of what the views tell; it failed before the fix.
    """
    fleet = with_sites(fleet, tmp_path, sites=(*SITES, "fresh"))
    now = fleet.now
    save_site_state(
        fleet.store,
        SiteState(
            "fresh",
            None,
            failures=5,
            next_attempt=now + DAY,
            last_error=ErrorRecord(
                "acme.unauthorized", "the CA refuses to issue for fresh.example.test", now, False
            ),
        ),
    )

    status = collect(fleet.config, fleet.store, now)
    assert ("issuance_failed", "fresh") in {(a.kind, a.site) for a in evaluate(status, now)}
    counts = view.counts(status)

    assert status.site("fresh").health == "failing", (
        f"health {status.site('fresh').health!r}, dashboard badge "
        f"{view.health_badge(status.site('fresh')).level}, summary failing={counts['failing']}"
    )
