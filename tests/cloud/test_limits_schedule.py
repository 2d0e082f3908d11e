"""The limiter in the scheduler and in what the operator sees: the tick queues only the sites the
CA's limits let through, most urgent first; `certdrop status`, its JSON and the dashboard show
the others waiting, each with when it will go."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud.config import CaLimits, Limit
from cloud.fleet.dashboard import make_app
from cloud.fleet.status import collect
from cloud.fleet.status_table import render
from cloud.limiter import buckets, ledger
from cloud.pipeline.renewal import decide
from cloud.pipeline.schedule import write_marker
from cloud.pipeline.site_state import load_site_state
from cloud.pipeline.tick import run_tick, site_of
from lab.sample_fleet import make_fleet

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# One order every 2 hours, renewals counted like first issuances: a CA stricter than any.
STRICT = CaLimits(new_orders=Limit(1, 2 * HOUR))


class _Queue:
    def __init__(self):
        self.sites = []

    def send(self, bodies):
        self.sites += [site_of(b) for b in bodies]


@pytest.fixture
def fleet(tmp_path):
    """The sample fleet (an expired site, one due, one healthy) with its schedule markers, under
    a CA that allows one order every two hours, and that order spent a moment ago."""
    fleet = make_fleet(tmp_path, NOW)
    config = replace(fleet.config, ca=replace(fleet.config.ca, limits=STRICT))
    for site in config.sites.values():
        state = load_site_state(fleet.store, site.id)
        state = replace(state, next_attempt=None)  # the expired one no longer backs off
        decision = decide(site, state, NOW)
        write_marker(fleet.store, site, decision.next_check, state.current.not_after)
    spent = buckets.spend(STRICT.new_orders, None, NOW - HOUR / 2)
    key = ledger.ledger_key(config.ca.directory)
    ledger.change(fleet.store, key, config.ca.directory, NOW, lambda _: {"orders": spent})
    return replace(fleet, config=config)


def test_the_tick_queues_nothing_the_limits_hold_back_and_says_which_wait(fleet):
    queue = _Queue()

    result = run_tick(fleet.config, fleet.store, queue, NOW)

    assert {d.site for d in result.due} == {"expired", "due"}
    assert queue.sites == []
    assert set(result.waiting) == {"expired", "due"}


def test_the_tick_queues_the_most_urgent_site_first_when_a_token_is_back(fleet):
    queue = _Queue()

    result = run_tick(fleet.config, fleet.store, queue, NOW + 2 * HOUR)

    assert queue.sites == ["expired"]  # the fewest days left
    assert result.waiting == ("due",)


def test_without_limits_the_tick_queues_every_due_site(fleet):
    config = replace(fleet.config, ca=replace(fleet.config.ca, limits=None))
    queue = _Queue()

    run_tick(config, fleet.store, queue, NOW)

    assert sorted(queue.sites) == ["due", "expired"]


def test_status_shows_each_waiting_site_and_when_it_will_go(fleet):
    status = collect(fleet.config, fleet.store, NOW)
    expired, due = status.site("expired"), status.site("due")

    assert expired.waiting_for == due.waiting_for == ("new orders per account",)
    assert expired.next_check == NOW + 1.5 * HOUR  # when the spent token is back
    assert due.next_check == NOW + 3.5 * HOUR  # the refill after that
    assert expired.next_reason.startswith("waiting for the CA's limits (new orders per account)")
    assert status.site("healthy").waiting_for == ()
    table = render(status)
    assert "2026-11-28 13:30 (waiting for the CA's limits" in table
    assert "waiting for the CA's rate limits: 2 site(s)" in table
    shown = {site["site"]: site for site in status.as_json()["sites"]}
    assert shown["due"]["waiting_for"] == ["new orders per account"]
    assert shown["due"]["next_check"] == "2026-11-28T15:30:00+00:00"
    assert shown["healthy"]["waiting_for"] == []


def test_the_dashboard_shows_the_waiting_sites_and_when_they_go(fleet):
    client = make_app(lambda: collect(fleet.config, fleet.store, NOW)).test_client()

    page = client.get("/").get_data(as_text=True)

    assert "2 waiting for the CA's limits" in page
    assert page.count('<span class="badge amber">waiting</span>') == 2
    assert "2026-11-28 15:30 UTC" in page  # the due site's turn
