"""What the dashboard says about each number: the colour of days left, with a word beside it (so
the page does not rely on colour alone), what an agent's error did to its certificate (told by
the error's code), what each dns-persist-01 record was last seen to say, and times as a person
reads them.

Pure functions over the fleet read model; the page template and the timeline both use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloud.fleet import agent_flags as flags_of
from cloud.fleet.status import (
    AgentStatus,
    FleetStatus,
    InstalledStatus,
    ReportedError,
    SiteStatus,
)

RED_DAYS = 7  # fewer days left than this (or expired): red
AMBER_DAYS = 21  # fewer than this: amber; otherwise green


@dataclass(frozen=True)
class Badge:
    level: str  # "red", "amber", "green" or "grey": the colour
    word: str  # what the colour means
    text: str  # what the page shows: the word, and the figure if there is one


@dataclass(frozen=True)
class Cell:
    """One site on one agent in the grid."""

    # how the installed version stands (`cloud.fleet.status`: "current", "behind", "pending",
    # "ahead", "none published"), or "not installed" or "not assigned"
    state: str
    version: int | None
    expiry: Badge | None  # of the certificate the agent has installed
    error: ReportedError | None = None  # why the agent's latest attempt at the site failed
    custody: str | None = None  # agent custody: where this agent's certificate and CSR stand


def level_for(days_left: float) -> str:
    if days_left < RED_DAYS:
        return "red"
    return "amber" if days_left < AMBER_DAYS else "green"


def expiry_badge(days_left: float) -> Badge:
    if days_left <= 0:
        word = "expired"
    elif days_left < RED_DAYS:
        word = "expires soon"
    elif days_left < AMBER_DAYS:
        word = "renew soon"
    else:
        word = "ok"
    figure = days_text(days_left)
    # "80 days left" needs no word, and "expired" is one.
    text = figure if word == "ok" or figure == word else f"{word} · {figure}"
    return Badge(level_for(days_left), word, text)


def days_text(days_left: float) -> str:
    if days_left <= -1:
        return f"{_count(-days_left, 'day')} ago"
    if days_left < 1:
        return "expired" if days_left <= 0 else "less than a day left"
    return f"{_count(days_left, 'day')} left"


# Every health `cloud.fleet.status` gives a site, worst first: the summary's order.
_HEALTH_LEVELS = {
    "expired": "red",
    "failing": "red",
    "delivery pending": "red",
    "CSR refused": "red",
    "TXT left": "amber",
    "due": "amber",
    "waiting": "amber",
    "waiting for CSR": "amber",
    "never issued": "grey",
    "healthy": "green",
}


def health_badge(site: SiteStatus) -> Badge:
    return Badge(_HEALTH_LEVELS.get(site.health, "grey"), site.health, site.health)


def cell(agent: AgentStatus, site: SiteStatus, now: datetime) -> Cell:
    got: InstalledStatus | None = agent.installed.get(site.site)
    error = agent.site_errors.get(site.site)
    own = site.agents.get(agent.agent_id)  # agent custody: this agent's own certificate
    custody = own.describe() if own is not None else None
    if got is not None:
        days = (got.not_after - now).total_seconds() / 86400
        return Cell(got.standing, got.version, expiry_badge(days), error, custody)
    if site.site in agent.sites:
        return Cell("not installed", None, None, error, custody)
    return Cell("not assigned", None, None, error)


def problem_badge(error: ReportedError) -> Badge:
    """What an agent's error did: a bundle refused or an install rolled back (red), or another
    failure (amber: DSM or the source unreachable, a login refused)."""
    if error.outcome is None:
        return Badge("amber", "error", "error")
    return Badge("red", error.outcome, error.outcome)


def agent_flags(agent: AgentStatus) -> tuple[Badge, ...]:
    """What is wrong with an agent, worst first (`cloud.fleet.agent_flags`, as `certdrop
    status` says it); a single green "ok" when nothing is."""
    found = tuple(Badge(f.level, f.word, f.word) for f in flags_of.agent_flags(agent))
    return found or (Badge("green", "ok", "ok"),)


_WAITING, _AGENTS = "waiting for the CA's limits", "agents needing a look"
_NOT_HEALTHS = (_WAITING, _AGENTS)  # counted beside the healths, shown on their own


def counts(status: FleetStatus) -> dict[str, int]:
    """Sites by health and agents needing a look, for the page's summary line."""
    found = {h: 0 for h in _HEALTH_LEVELS}
    for site in status.sites:
        found[site.health] = found.get(site.health, 0) + 1
    found[_WAITING] = sum(1 for s in status.sites if s.waiting_for)
    found[_AGENTS] = sum(1 for a in status.agents if flags_of.needs_a_look(a))
    return found


def summary(found: dict[str, int]) -> list[Badge]:
    """The summary's sites, from `counts`: every site under its health, worst first; a health
    this page does not know yet is still counted, in grey."""
    healths = [*_HEALTH_LEVELS, *sorted(h for h in found if h not in _HEALTH_LEVELS)]
    healths = [h for h in healths if h not in _NOT_HEALTHS]
    return [Badge(_HEALTH_LEVELS.get(h, "grey"), h, f"{found[h]} {h}") for h in healths if found[h]]


@dataclass(frozen=True)
class PersistRow:
    """One dns-persist-01 record as last seen."""

    site: str
    fqdn: str
    account: Badge  # whether it names this issuer's ACME account
    account_uri: str | None
    until: Badge | None  # how long its persistUntil leaves; None without one
    persist_until: datetime | None
    checked_at: datetime
    problem: str | None


def persist_rows(status: FleetStatus) -> list[PersistRow]:
    rows = []
    for site in status.sites:
        for seen in site.persist:
            if seen.account_uri is None:
                account = Badge("grey", "none found", "none found")
            elif seen.account_uri == seen.account:
                account = Badge("green", "this issuer's", "this issuer's")
            else:
                account = Badge("red", "another account", "another account")
            until = None
            if seen.persist_until is not None:
                days = (seen.persist_until - status.at).total_seconds() / 86400
                until = persist_until_badge(days)
            rows.append(
                PersistRow(
                    site.site,
                    seen.fqdn,
                    account,
                    seen.account_uri,
                    until,
                    seen.persist_until,
                    seen.checked_at,
                    f"{seen.code}: {seen.problem}" if seen.code else None,
                )
            )
    return rows


def persist_until_badge(days_left: float) -> Badge:
    """After persistUntil the CA refuses the record: red when passed or close, amber soon."""
    if days_left <= 0:
        return Badge("red", "passed", "passed")
    word = "ok" if days_left >= AMBER_DAYS else "replace soon"
    figure = days_text(days_left)
    return Badge(level_for(days_left), word, figure if word == "ok" else f"{word} · {figure}")


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def ago(now: datetime, moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return f"in {_duration(-seconds)}"
    return "just now" if seconds < 60 else f"{_duration(seconds)} ago"


def interval_text(seconds: float) -> str:
    return f"every {_duration(seconds)}"


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = seconds / size
            return _count(amount, unit) if unit == "day" else f"{amount:.0f} {unit}"
    return f"{seconds:.0f} s"


def _count(amount: float, noun: str) -> str:
    whole = int(amount)
    return f"{whole} {noun}" if whole == 1 else f"{whole} {noun}s"
