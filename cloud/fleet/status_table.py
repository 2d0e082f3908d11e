"""`certdrop status` as text: one table of sites, one of agents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cloud.fleet.status import AgentStatus, FleetStatus, SiteStatus


def render(status: FleetStatus) -> str:
    sites = _table(
        ("SITE", "NAMES", "VERSION", "NOT AFTER", "DAYS", "HEALTH", "NEXT RENEWAL", "LAST ERROR"),
        [_site_row(s, status.at) for s in status.sites],
    )
    agents = _table(
        ("AGENT", "INSTALLED", "LAST SEEN", "DSM", "STATE", "LAST ERROR"),
        [_agent_row(a) for a in status.agents],
    )
    return f"{sites}\n\n{agents}" if status.agents else f"{sites}\n\nno agents registered"


def _site_row(site: SiteStatus, now: datetime) -> tuple[str, ...]:
    when = "now" if site.next_check <= now else _time(site.next_check)
    return (
        site.site,
        ", ".join(site.names),
        f"v{site.version}" if site.version else "-",
        _time(site.not_after),
        f"{site.days_left:.0f}" if site.days_left is not None else "-",
        site.health,
        f"{when} ({site.next_reason})",
        str(site.last_error) if site.last_error else "-",
    )


def _agent_row(agent: AgentStatus) -> tuple[str, ...]:
    installed = []
    for site in agent.sites:
        got = agent.installed.get(site)
        if got is None:
            installed.append(f"{site} -")
        else:
            installed.append(f"{site} v{got.version}{'' if got.current else ' (behind)'}")
    if agent.report_problem:
        state = agent.report_problem
    elif agent.quiet:
        state = "quiet"
    elif agent.failing:
        state = "failing"
    else:
        state = "ok"
    return (
        agent.agent_id,
        ", ".join(installed) or "-",
        _time(agent.last_seen),
        agent.dsm_version or "-",
        state,
        str(agent.last_error) if agent.last_error else "-",
    )


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _table(header: Sequence[str], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [tuple(header), *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [tuple(header), *rows]]  # fmt: skip
    return "\n".join(lines)
