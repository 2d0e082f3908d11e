"""The agent's one duration grammar, for its configuration file and its command line.

Seconds, or a number with a unit: `90`, `90s`, `15m`, `1.5h`, `2 h` (case and spaces do not
matter).
"""

from __future__ import annotations

import re

# What to write instead of a value `parse_duration` refuses.
DURATION_FIX = "write seconds, or a number with s, m or h (90, 15m, 1h)"

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smh]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float | None:
    """The seconds `text` stands for; None when it is not a duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    return float(match.group(1)) * _UNIT[match.group(2)]


def format_duration(seconds: float) -> str:
    """`seconds` in the grammar above, in its largest whole unit: 3600 -> 1h, 90 -> 90s."""
    for unit in ("h", "m"):
        if seconds % _UNIT[unit] == 0:
            return f"{seconds / _UNIT[unit]:g}{unit}"
    return f"{seconds:g}s"
