"""The fleet-limits simulation (bench/fleet_limits.py) run small: certdrop's tick, schedule and
limiter against a CA stand-in enforcing Let's Encrypt's limits. With the limiter the CA never
refuses and nothing expires; without it the same fleet hits the limits, which shows the
stand-in enforces them."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from cloud.errors import RateLimited
from lab.fleet_sim import START, Scenario, simulate
from lab.limited_ca import NEW_ORDERS, PER_DOMAIN, LimitedCa

REPO = Path(__file__).resolve().parents[2]
SMALL = Scenario(sites=600, days=5, lifetime=timedelta(days=6))  # renewals from day 4


@pytest.fixture(scope="module")
def limited():
    return simulate(SMALL)


@pytest.fixture(scope="module")
def unlimited():
    return simulate(Scenario(**{**SMALL.__dict__, "limiter": False}))


def test_with_the_limiter_the_ca_never_refuses_and_nothing_expires(limited):
    assert limited.hits == 0
    assert limited.expired == 0
    assert limited.never_issued == 0
    # Let's Encrypt's bucket: 300 at once, then one every 36 s, so at most 600 in any 3 hours.
    assert 300 < limited.peak_counted_3h <= 600
    assert limited.failed_validations > 0  # the broken sites were tried, within their limit


def test_without_the_limiter_the_same_fleet_hits_the_cas_limits(unlimited):
    assert unlimited.limit_hits[NEW_ORDERS] > 100
    assert unlimited.limit_hits[PER_DOMAIN] > 0  # the organisation of 60 sites on one domain


def test_renewals_come_within_a_tick_and_the_queue_of_their_time(limited):
    assert len(limited.lateness) > 0
    # Hours: the tick runs hourly, and the first 300 certificates, issued together, come due
    # together and queue for the issue function (4 at once, 30 s each).
    assert max(limited.lateness) <= 2


def test_the_stand_ins_refusal_reaches_certdrop_as_a_rate_limited_error_with_retry_after():
    ca = LimitedCa(timedelta(days=6))
    for i in range(300):
        ca.order([f"example{i}.com"], START)

    with pytest.raises(RateLimited) as caught:
        ca.order(["one-more.example.com"], START)

    assert caught.value.problem == "rateLimited"
    assert caught.value.retry_after == START + timedelta(seconds=36)
    assert ca.refusals[NEW_ORDERS] == 1


def test_the_bench_prints_every_scenario():
    done = subprocess.run(
        [sys.executable, "bench/fleet_limits.py", "--sites", "200", "--days", "2", "--jobs", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.count("limit hits") == 5  # four with the limiter, one cold start without
    assert "Public Suffix List 20" in done.stdout
