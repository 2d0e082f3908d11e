"""How alerts word days, durations and sentences; shared by the site and the agent rules."""

from __future__ import annotations

from datetime import datetime


def expiry(not_after: datetime, days: float) -> tuple[str, str]:
    """The severity and words of a certificate with `days` left: critical once expired."""
    when = f"{not_after:%Y-%m-%d %H:%M} UTC"
    if days <= 0:
        return "critical", f"expired {day_count(-days)} ago ({when})"
    return "warning", f"expires in {day_count(days)} ({when})"


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def day_count(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = int(days)
    return "1 day" if whole == 1 else f"{whole} days"


def duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"
