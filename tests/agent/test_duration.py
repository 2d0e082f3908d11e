"""The agent's one duration grammar, shared by its configuration file and `run --every`."""

from __future__ import annotations

import pytest

from nas_agent.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1.5h", 5400), ("2 h", 7200), (" 1H ", 3600)],
)
def test_a_duration_is_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5", "1d", "1.h", "fortnight", "1 h 30 m"])
def test_anything_else_is_no_duration(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(604800, "168h"), (3600, "1h"), (5400, "90m"), (60, "1m"), (90, "90s")]
)
def test_a_bound_is_written_in_its_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
