"""`certdrop status` as text: one table of sites, one of the dns-persist-01 records (when a site
has one), one of agents.

An agent's STATE is its flags (`cloud.fleet.agent_flags`, as on the dashboard), "ok" when none;
its LAST ERROR is each site's latest error and an error of no site, so a refused bundle is not
hidden behind another site's later failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cloud.fleet.agent_flags import agent_flags
from cloud.fleet.status import CURRENT, PENDING, AgentStatus, FleetStatus, SiteStatus
from cloud.pipeline.site_state import PersistSeen


def render(status: FleetStatus) -> str:
    sites = _table(
        ("SITE", "NAMES", "VERSION", "NOT AFTER", "DAYS", "HEALTH", "NEXT RENEWAL", "LAST ERROR"),
        [_site_row(s, status.at) for s in status.sites],
    )
    agents = _table(
        ("AGENT", "INSTALLED", "LAST SEEN", "DSM", "STATE", "LAST ERROR"),
        [_agent_row(a) for a in status.agents],
    )
    records = [(s, seen) for s in status.sites for seen in s.persist]
    if records:
        table = _table(
            ("SITE", "DNS-PERSIST-01 RECORD", "ACCOUNT", "PERSIST UNTIL", "CHECKED", "PROBLEM"),
            [_persist_row(site, seen, status.at) for site, seen in records],
        )
        sites = f"{sites}\n\n{table}"
    custody = [line for s in status.sites for line in _custody_lines(s)]
    if custody:
        sites = f"{sites}\n\nagent custody (one certificate per agent, from its CSR):\n" + (
            "\n".join(custody)
        )
    pending = [line for s in status.sites for line in _pending_lines(s)]
    if pending:
        sites = f"{sites}\n\npending:\n" + "\n".join(pending)
    waiting = sorted((s for s in status.sites if s.waiting_for), key=lambda s: s.next_check)
    if waiting:
        sites = f"{sites}\n\n{_waiting_line(waiting)}"
    return f"{sites}\n\n{agents}" if status.agents else f"{sites}\n\nno agents registered"


def _waiting_line(waiting: list[SiteStatus]) -> str:
    """Sites the CA's rate limits hold back (each row says when it goes): how many, until when."""
    last = waiting[-1].next_check
    return (
        f"waiting for the CA's rate limits: {len(waiting)} site(s), each ordered at its NEXT "
        f"RENEWAL time; the last at {_time(last)}"
    )


def _custody_lines(site: SiteStatus) -> list[str]:
    """Each agent of an agent-custody site: its certificate and where its CSR stands."""
    if site.key_custody != "agent":
        return []
    if not site.agents:
        return [f"  {site.site}: no agent receives it"]
    lines = []
    for agent, shown in sorted(site.agents.items()):
        cert = f"v{shown.version}, until {_time(shown.not_after)}" if shown.version else "none"
        lines.append(f"  {site.site}: {agent}: {shown.describe()} (certificate {cert})")
    return lines


# How an installed version that is not current stands, beside it in the INSTALLED column.
_STANDING = {PENDING: "delivered, not yet current"}


def _pending_lines(site: SiteStatus) -> list[str]:
    """What a run left to finish: a certificate recorded and not published, deliveries and TXT
    values, each retried every run."""
    lines = []
    if site.pending_version is not None:
        lines.append(
            f"  {site.site}: version {site.pending_version} recorded, not yet published to every"
            " agent (a run stopped while delivering it; the next run finishes, nothing is"
            " re-issued)"
        )
    lines += [
        f"  {site.site}: version {site.version} not yet delivered to {agent} ({why})"
        for agent, why in sorted(site.undelivered.items())
    ]
    lines += [f"  {site.site}: TXT value left in DNS: {txt}" for txt in site.leftover_txt]
    return lines


def _persist_row(site: SiteStatus, seen: PersistSeen, now: datetime) -> tuple[str, ...]:
    if seen.account_uri is None:
        account = "-"
    elif seen.account_uri == seen.account:
        account = "this issuer's"
    else:
        account = f"ANOTHER: {seen.account_uri}"
    until = "-"
    if seen.persist_until is not None:
        days = (seen.persist_until - now).total_seconds() / 86400
        left = f"{days:.0f} days" if days > 0 else "PASSED"
        until = f"{_time(seen.persist_until)} ({left})"
    return (
        site.site,
        seen.fqdn,
        account,
        until,
        _time(seen.checked_at),
        seen.code or "-",
    )


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
            unconfigured = site in agent.unconfigured_sites
            installed.append(f"{site} -{' (not in agent.conf)' if unconfigured else ''}")
        elif got.standing == CURRENT:
            installed.append(f"{site} v{got.version}")
        else:
            standing = _STANDING.get(got.standing, got.standing)
            installed.append(f"{site} v{got.version} ({standing})")
    state = "; ".join(flag.text for flag in agent_flags(agent)) or "ok"
    return (
        agent.agent_id,
        ", ".join(installed) or "-",
        _time(agent.last_seen),
        agent.dsm_version or "-",
        state,
        _errors(agent),
    )


def _errors(agent: AgentStatus) -> str:
    """Each site's latest error, and the last error when it is of no site (a DSM login)."""
    shown = [f"{site}: {error}" for site, error in sorted(agent.site_errors.items())]
    if agent.last_error is not None and agent.last_error not in agent.site_errors.values():
        shown.insert(0, str(agent.last_error))
    return "; ".join(shown) or "-"


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _table(header: Sequence[str], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [tuple(header), *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [tuple(header), *rows]]  # fmt: skip
    return "\n".join(lines)
