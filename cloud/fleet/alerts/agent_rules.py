"""Which alerts fire for each agent: pure functions over its status and its sites', no I/O.

An agent's refusal or rollback fires only while the agent is failing (its last error is newer
than its last good cycle): agents keep their last error on record after they recover. Each
site's latest error counts, not only the last one: a bundle refused every cycle stays alerted
when another site fails after it in the same cycle. Which it is comes from the error's code
alone (`ReportedError.outcome`), never from its text.

What the agent says of its sites is alerted too: a site it receives and its agent.conf does not
configure is never installed ("agent_site_unconfigured"), and a version it holds that the issuer
never published ("agent_version_unpublished") makes it refuse every version up to that one. A
version above the published one that a run recorded and delivered before dying is no such
version: the site's `delivery_pending` says so, and the next run makes it current.

A site's health speaks of the certificate it publishes; what each NAS serves is what its agent
reports installed. An agent that keeps failing for any reason (its source unreachable, DSM
refusing its login, a refused bundle) keeps an older certificate while the site looks healthy,
so that certificate's expiry is alerted per agent and site ("agent_certificate_expiring").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloud.fleet.alerts import Alert
from cloud.fleet.alerts.wording import duration, expiry, sentence
from cloud.fleet.status import (
    AHEAD,
    INCOMPLETE,
    REFUSED,
    ROLLED_BACK,
    AgentStatus,
    ReportedError,
    SiteStatus,
)


def agent_certificate_expiring(
    agent: AgentStatus, site: SiteStatus, now: datetime, expiry_days: float
) -> Alert | None:
    """The certificate the agent reports installed for `site` has fewer than `expiry_days` left
    and is not the one published for it: the NAS serves it until the agent installs the new
    one, whatever keeps it from doing so."""
    got = agent.installed.get(site.site)
    if got is None:
        return None
    days = (got.not_after - now).total_seconds() / 86400
    published = site.published_for(agent.agent_id)
    # Not for an agent that has the published version: it serves the very certificate the
    # site's `expiring` alert measures (under agent custody that alert measures the earliest of
    # the agents' own certificates, so it fires whenever this one is that close too), and what
    # is missing is a renewal, not this agent's install: a second alert would say it again. An
    # agent behind holds an older certificate, expiring on its own schedule, that no site alert
    # sees.
    if days >= expiry_days or got.version == published:
        return None
    severity, text = expiry(got.not_after, days)
    newer = "none is published" if published is None else f"version {published} is published"
    error = agent.site_errors.get(site.site) or agent.last_error
    said = f"Its last error: {sentence(str(error))}" if error else "It reports no error."
    return _installed_alert(
        "agent_certificate_expiring",
        severity,
        f"Agent {agent.agent_id} has version {got.version} of {site.site} installed, which "
        f"{text}; {newer}. {said}",
        # The severity is part of the cause, so the step to critical (expired) is sent at once
        # rather than with the next reminder.
        f"installed {got.version}, published {published}, {severity}",
        agent,
        site,
        now,
        not_after=got.not_after.isoformat(),
        days_left=round(days, 2),
        expiry_days=expiry_days,
    )


def agent_error(agent: AgentStatus, now: datetime) -> list[Alert]:
    """Refused bundles and rolled-back installs (one alert of each kind, naming every site),
    or the agent frozen, while the agent has not recovered."""
    error = agent.last_error
    if not agent.failing or error is None:
        return []
    if agent.frozen:  # it installs nothing at all: what it refused before matters no more
        what = (
            "is frozen: its index has expired, so it installs nothing new (is `certdrop run`"
            " or the tick signing indexes again? or is an old copy being served?)"
        )
        message = f"Agent {agent.agent_id} {what}: {sentence(error.message or error.code)}"
        return [_error_alert(agent, now, "agent_frozen", message, [error])]
    # Each site's latest error, and the last error when it is of no site.
    errors: list[tuple[str | None, ReportedError]] = sorted(agent.site_errors.items())
    if error not in agent.site_errors.values():
        errors.insert(0, (None, error))
    alerts = []
    for outcome, kind, what in (
        (REFUSED, "bundle_refused", "refused a bundle"),
        (ROLLED_BACK, "bundle_rolled_back", "rolled back an install"),
        (INCOMPLETE, "install_incomplete", "could not complete an install"),
    ):
        found = [(site, e) for site, e in errors if e.outcome == outcome]
        if not found:
            continue
        message = " ".join(
            f"Agent {agent.agent_id} {what} ({e.code}){'' if site is None else f' for {site}'}: "
            + sentence(e.message or e.code)
            for site, e in found
        )
        alerts.append(_error_alert(agent, now, kind, message, [e for _, e in found]))
    return alerts


def _error_alert(
    agent: AgentStatus, now: datetime, kind: str, message: str, errors: list[ReportedError]
) -> Alert:
    return Alert(
        kind=kind,
        severity="error",
        message=message,
        at=now,
        cause="; ".join(str(error) for error in errors),
        agent=agent.agent_id,
        details=_agent_details(agent),
    )


def agent_site_unconfigured(agent: AgentStatus, now: datetime) -> Alert | None:
    """Sites the agent receives and never installs: its agent.conf has no [site:] section for
    them (a typo'd id, a section removed). Nothing else would tell: with nothing installed, no
    expiry is ever alerted, and the NAS serves whatever it had until long after it expired."""
    if not agent.unconfigured_sites:
        return None
    listed = ", ".join(agent.unconfigured_sites)
    sections = ", ".join(f"[site:{site}]" for site in agent.unconfigured_sites)
    return Alert(
        kind="agent_site_unconfigured",
        severity="error",
        message=(
            f"Agent {agent.agent_id} receives {listed} but never installs it: its agent.conf "
            f"has no {sections} section. Add it on the NAS, or stop sending the site to this "
            "agent."
        ),
        at=now,
        cause=listed,
        agent=agent.agent_id,
        details={**_agent_details(agent), "unconfigured_sites": list(agent.unconfigured_sites)},
    )


def agent_version_unpublished(agent: AgentStatus, site: SiteStatus, now: datetime) -> Alert | None:
    """The agent reports a version of `site` above the one published for it that no run
    recorded: the issuer never published it (a planted or restored agent state, or a lost site
    state). The agent refuses every version up to it, so it takes no renewal until then."""
    got = agent.installed.get(site.site)
    if got is None or got.standing != AHEAD:
        return None
    published = site.published_for(agent.agent_id)
    return _installed_alert(
        "agent_version_unpublished",
        "error",
        f"Agent {agent.agent_id} reports version {got.version} of {site.site} installed, "
        f"which was never published (version {published} is): it refuses every version up "
        f"to {got.version}, so it takes no renewal. Check the NAS's state and the site's.",
        f"installed {got.version}, published {published}",
        agent,
        site,
        now,
        fingerprint=got.fingerprint,
    )


def _installed_alert(
    kind: str,
    severity: str,
    message: str,
    cause: str,
    agent: AgentStatus,
    site: SiteStatus,
    now: datetime,
    **details: Any,
) -> Alert:
    """An alert about what `agent` reports installed for `site`: its details name both
    versions, the installed and the published one."""
    got = agent.installed[site.site]
    return Alert(
        kind=kind,
        severity=severity,
        message=message,
        at=now,
        cause=cause,
        site=site.site,
        agent=agent.agent_id,
        details={
            **_agent_details(agent),
            "site": site.site,
            "version": got.version,
            "published_version": site.published_for(agent.agent_id),
            **details,
        },
    )


def agent_quiet(agent: AgentStatus, now: datetime) -> Alert | None:
    if not agent.quiet:
        return None
    every = f"it means to report every {duration(agent.poll_interval)}"
    if agent.last_seen is None:
        text = f"has sent no status report since it was added ({every})"
    else:
        ago = duration((now - agent.last_seen).total_seconds())
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


def agent_report_invalid(agent: AgentStatus, now: datetime) -> Alert | None:
    """The agent's report is not believed (too large, malformed, not signed by it): what it has
    installed and whether it is quiet are unknown until it writes one that is."""
    if not agent.report_invalid or agent.report_problem is None:
        return None
    reason = agent.report_problem.removeprefix("report invalid: ")
    return Alert(
        kind="agent_report_invalid",
        severity="error",
        message=(
            f"The status report of agent {agent.agent_id} is not believed: {sentence(reason)} "
            "What it has installed is unknown until it writes a valid one: check the agent's "
            f"version and log, and who else can write agents/{agent.agent_id}/status.json."
        ),
        at=now,
        cause=reason,
        agent=agent.agent_id,
        details=_agent_details(agent),
    )


def _agent_details(agent: AgentStatus) -> dict[str, Any]:
    return {
        "sites": list(agent.sites),
        "installed": {site: i.version for site, i in agent.installed.items()},
        "last_seen": agent.last_seen.isoformat() if agent.last_seen else None,
        "poll_interval_s": agent.poll_interval,
        "last_error": error_details(agent.last_error),
        "site_errors": {site: error_details(e) for site, e in agent.site_errors.items()},
        "unconfigured_sites": list(agent.unconfigured_sites),
        "report_problem": agent.report_problem,
    }


def error_details(error: ReportedError | None) -> dict[str, str] | None:
    return {"code": error.code, "message": error.message} if error else None
