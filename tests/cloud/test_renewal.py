"""The renewal policy as a table: site state and clock in, decision out."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud.acme.ari import SuggestedWindow, pick_renewal_time
from cloud.acme.certificate_keys import KeyType
from cloud.config import SiteConfig
from cloud.pipeline.renewal import BACKOFF_CAP, backoff, decide
from cloud.pipeline.site_state import CertificateRecord, RenewalWindow, SiteState

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SITE = SiteConfig(
    id="example",
    domain="example.test",
    names=("example.test", "*.example.test"),
    key_type=KeyType.EC_P256,
    provider="dns",
)


def _cert(issued_days_ago: float, lifetime_days: float = 90, **changes) -> CertificateRecord:
    not_before = NOW - DAY * issued_days_ago
    record = CertificateRecord(
        version=1,
        cert_sha256="00" * 32,
        serial="1",
        names=SITE.names,
        key_type="ec-p256",
        profile=None,
        not_before=not_before,
        not_after=not_before + DAY * lifetime_days,
        issued_at=not_before,
        escrow_object="escrow/example/1.sealed",
    )
    return replace(record, **changes)


def _window(start_in: float, end_in: float, renew_in: float, check_in: float = 0.25):
    return RenewalWindow(
        start=NOW + DAY * start_in,
        end=NOW + DAY * end_in,
        renew_at=NOW + DAY * renew_in,
        next_check=NOW + DAY * check_in,
    )


CASES = [
    # (id, site, state, due, reason, next_check offset in days)
    ("never issued", SITE, None, True, "never issued", 0),
    ("fresh 90-day cert", SITE, SiteState("example", _cert(10)), False, "valid", 50),
    ("2/3 of 90 days", SITE, SiteState("example", _cert(60)), True, "two thirds", 0),
    ("2/3 of a 6-day cert", SITE, SiteState("example", _cert(4.1, 6)), True, "two thirds", 0),
    ("6-day cert at day 3", SITE, SiteState("example", _cert(3, 6)), False, "valid", 1),
    ("expired", SITE, SiteState("example", _cert(100)), True, "expired", 0),
    (
        "names changed",
        replace(SITE, names=(*SITE.names, "nas.other.test")),
        SiteState("example", _cert(1)),
        True,
        "names changed",
        0,
    ),
    (
        "key type changed",
        replace(SITE, key_type=KeyType.RSA_3072),
        SiteState("example", _cert(1)),
        True,
        "key type changed",
        0,
    ),
    (
        "profile changed",
        replace(SITE, profile="shortlived"),
        SiteState("example", _cert(1)),
        True,
        "profile changed",
        0,
    ),
    (
        "ARI window later: wait for the picked moment or the next check",
        SITE,
        SiteState("example", _cert(10), window=_window(30, 32, 31, check_in=0.25)),
        False,
        "waiting for the ARI window",
        0.25,
    ),
    (
        "ARI moment passed",
        SITE,
        SiteState("example", _cert(10), window=_window(-1, 1, -0.5)),
        True,
        "ARI",
        0,
    ),
    (
        "ARI says renew early even though 2/3 has not passed (e.g. revocation)",
        SITE,
        SiteState("example", _cert(1), window=_window(-0.1, 0.1, -0.01)),
        True,
        "ARI",
        0,
    ),
    (
        "ARI says later than 2/3: the CA knows best",
        SITE,
        SiteState("example", _cert(61), window=_window(5, 6, 5.5, check_in=0.25)),
        False,
        "waiting for the ARI window",
        0.25,
    ),
    (
        "backing off beats everything",
        SITE,
        SiteState("example", None, failures=3, next_attempt=NOW + DAY / 2),
        False,
        "backing off after 3 failures",
        0.5,
    ),
    (
        "backoff over: due again",
        SITE,
        SiteState("example", None, failures=3, next_attempt=NOW - DAY / 24),
        True,
        "never issued",
        0,
    ),
]


@pytest.mark.parametrize(
    ("site", "state", "due", "reason", "next_in"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_renewal_policy(site, state, due, reason, next_in):
    decision = decide(site, state, NOW)

    assert decision.due is due
    assert reason in decision.reason
    assert abs((decision.next_check - (NOW + DAY * next_in)).total_seconds()) < 1


@pytest.mark.parametrize("failures", range(1, 12))
def test_backoff_grows_exponentially_within_jitter_and_is_capped(failures):
    rng = random.Random(failures)
    expected = min(timedelta(minutes=5) * 2 ** (failures - 1), BACKOFF_CAP)

    delay = backoff(failures, NOW, rng) - NOW

    assert expected * 0.8 <= delay <= expected * 1.2


def test_backoff_never_retries_before_the_cas_retry_after():
    retry_after = NOW + timedelta(hours=30)

    assert backoff(1, NOW, random.Random(1), retry_after) == retry_after


def test_the_renewal_moment_is_inside_the_window_and_spread_across_it():
    window = SuggestedWindow(NOW + DAY, NOW + 2 * DAY, NOW + DAY / 4)
    rng = random.Random(7)

    picks = [pick_renewal_time(window, NOW, rng) for _ in range(200)]

    assert all(window.start <= p < window.end for p in picks)
    assert min(picks) < window.start + DAY / 10
    assert max(picks) > window.end - DAY / 10


def test_a_window_already_past_means_now():
    window = SuggestedWindow(NOW - 2 * DAY, NOW - DAY, NOW)

    assert pick_renewal_time(window, NOW, random.Random(1)) == NOW
