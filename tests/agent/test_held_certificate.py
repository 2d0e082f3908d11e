"""The rollback guard's comparison of a new certificate with the one DSM holds for the site."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from nas_agent.held_certificate import LeafFacts, Verdict, could_be_same, judge

T = datetime(2027, 3, 16, 15, 49, 37, tzinfo=timezone.utc)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
A = "a" * 64
B = "b" * 64


@pytest.mark.parametrize(
    ("new", "held", "verdict"),
    [
        pytest.param(LeafFacts(T, T + 90 * DAY, A), None, Verdict.NEWER, id="dsm-holds-none"),
        pytest.param(
            LeafFacts(T, T + 90 * DAY, A),
            LeafFacts(T - 60 * DAY, T + 30 * DAY),
            Verdict.NEWER,
            id="renewal",
        ),
        pytest.param(
            LeafFacts(T - 60 * DAY, T + 30 * DAY, A),
            LeafFacts(T, T + 90 * DAY),
            Verdict.OLDER,
            id="rollback",
        ),
        pytest.param(
            LeafFacts(T - SECOND, T + 90 * DAY, A),
            LeafFacts(T, T + 90 * DAY, B),
            Verdict.OLDER,
            id="older-by-one-second",
        ),
        pytest.param(
            LeafFacts(T, T + 90 * DAY, A),
            LeafFacts(T, T + 90 * DAY, A),
            Verdict.SAME,
            id="same-certificate",
        ),
        pytest.param(
            LeafFacts(T, T + 90 * DAY, A),
            LeafFacts(T, T + 90 * DAY, B),
            Verdict.NEWER,
            id="same-second-other-certificate",
        ),
        pytest.param(
            LeafFacts(T, T + 90 * DAY, A),
            LeafFacts(T, T + 90 * DAY, None),
            Verdict.NEWER,
            id="same-dates-fingerprint-unknown",
        ),
        pytest.param(
            LeafFacts(T - DAY, T + 90 * DAY, A),
            LeafFacts(T, None, A),
            Verdict.SAME,
            id="same-fingerprint-wins-over-dates",
        ),
        pytest.param(
            LeafFacts(T, T + 90 * DAY, A),
            LeafFacts(T, None),
            Verdict.NEWER,
            id="valid-till-unreadable",
        ),
    ],
)
def test_judge_compares_the_new_certificate_with_the_held_one(new, held, verdict):
    assert judge(new, held) is verdict


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (LeafFacts(T, T + 90 * DAY), True),
        (LeafFacts(T, T + 89 * DAY), False),
        (LeafFacts(T - SECOND, T + 90 * DAY), False),
        (LeafFacts(T, None), False),
    ],
)
def test_the_held_fingerprint_is_fetched_only_when_the_dates_match(held, expected):
    assert could_be_same(LeafFacts(T, T + 90 * DAY, A), held) is expected
