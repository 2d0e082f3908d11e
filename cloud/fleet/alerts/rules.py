"""Which alerts fire now: pure functions over the fleet's status, no I/O.

An agent's refusal or rollback fires only while the agent is failing (its last error is newer
than its last good cycle): agents keep their last error on record after they recover. Which it
is comes from the error's code alone (`ReportedError.outcome`), never from its text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloud.fleet.alerts import Alert
from cloud.fleet.status import (
    REFUSED,
    ROLLED_BACK,
    AgentStatus,
    FleetStatus,
    ReportedError,
    SiteStatus,
)

DEFAULT_EXPIRY_DAYS = 14.0


def evaluate(
    status: FleetStatus, now: datetime, *, expiry_days: float = DEFAULT_EXPIRY_DAYS
) -> list[Alert]:
    """Every alert firing in `status`, sites first, each kind in a fixed order."""
    alerts: list[Alert] = []
    for site in status.sites:
        found = issuance_failed(site.site, site.failures, site.last_error, now, _site_details(site))
        alerts += [a for a in (found, expiring(site, now, expiry_days)) if a is not None]
    for agent in status.agents:
        alerts += [a for a in (agent_error(agent, now), agent_quiet(agent, now)) if a is not None]
    return alerts


def issuance_failed(
    site: str,
    failures: int,
    last_error: ReportedError | None,
    now: datetime,
    details: dict[str, Any],
) -> Alert | None:
    """Plain fields, so the issue function can alert from one site's state right after a run."""
    if failures <= 0:
        return None
    error = str(last_error) if last_error else "unknown error"
    runs = "run" if failures == 1 else f"{failures} runs in a row"
    return Alert(
        kind="issuance_failed",
        severity="error",
        message=f"Issuing the certificate of {site} failed ({runs}): {_sentence(error)}",
        at=now,
        cause=error,
        site=site,
        details={**details, "failures": failures, "last_error": _error_details(last_error)},
    )


def expiring(site: SiteStatus, now: datetime, expiry_days: float) -> Alert | None:
    """The newest published certificate has fewer than `expiry_days` left: no renewal is out."""
    if site.days_left is None or site.not_after is None or site.days_left >= expiry_days:
        return None
    days = site.days_left
    when = f"{site.not_after:%Y-%m-%d %H:%M} UTC"
    if days <= 0:
        text = f"expired {_days(-days)} ago ({when})"
    else:
        text = f"expires in {_days(days)} ({when})"
    return Alert(
        kind="expiring",
        severity="critical" if days <= 0 else "warning",
        message=f"The certificate of {site.site} {text} and no renewal has been published.",
        at=now,
        cause=f"version {site.version}",
        site=site.site,
        details={**_site_details(site), "expiry_days": expiry_days},
    )


def agent_error(agent: AgentStatus, now: datetime) -> Alert | None:
    """A refused bundle or a rolled-back install, while the agent has not recovered from it."""
    error = agent.last_error
    if not agent.failing or error is None:
        return None
    if error.outcome == REFUSED:
        kind, what = "bundle_refused", f"refused a bundle ({error.code})"
    elif error.outcome == ROLLED_BACK:
        kind, what = "bundle_rolled_back", "rolled back an install"
    else:
        return None
    return Alert(
        kind=kind,
        severity="error",
        message=f"Agent {agent.agent_id} {what}: {_sentence(error.message or error.code)}",
        at=now,
        cause=str(error),
        agent=agent.agent_id,
        details=_agent_details(agent),
    )


def agent_quiet(agent: AgentStatus, now: datetime) -> Alert | None:
    if not agent.quiet:
        return None
    every = f"it means to report every {_duration(agent.poll_interval)}"
    if agent.last_seen is None:
        text = f"has sent no status report since it was added ({every})"
    else:
        ago = _duration((now - agent.last_seen).total_seconds())
        text = f"has not reported for {ago}, since {agent.last_seen:%Y-%m-%d %H:%M} UTC ({every})"
    return Alert(
        kind="agent_quiet",
        severity="warning",
        message=f"Agent {agent.agent_id} {text}.",
        at=now,
        cause=agent.last_seen.isoformat() if agent.last_seen else "never reported",
        agent=agent.agent_id,
        details=_agent_details(agent),
    )


def _site_details(site: SiteStatus) -> dict[str, Any]:
    return {
        "names": list(site.names),
        "version": site.version,
        "not_after": site.not_after.isoformat() if site.not_after else None,
        "days_left": round(site.days_left, 2) if site.days_left is not None else None,
        "health": site.health,
        "next_check": site.next_check.isoformat(),
        "next_reason": site.next_reason,
    }


def _agent_details(agent: AgentStatus) -> dict[str, Any]:
    return {
        "sites": list(agent.sites),
        "installed": {site: i.version for site, i in agent.installed.items()},
        "last_seen": agent.last_seen.isoformat() if agent.last_seen else None,
        "poll_interval_s": agent.poll_interval,
        "last_error": _error_details(agent.last_error),
        "site_errors": {site: _error_details(e) for site, e in agent.site_errors.items()},
        "report_problem": agent.report_problem,
    }


def _error_details(error: ReportedError | None) -> dict[str, str] | None:
    return {"code": error.code, "message": error.message} if error else None


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _days(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = int(days)
    return "1 day" if whole == 1 else f"{whole} days"


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"
