"""Which alerts fire now: pure functions over the fleet's status, no I/O. The sites' rules are
here, the agents' in `agent_rules`.

A renewal the CA said was already replaced by an order certdrop did not place fires for a week:
nothing in the fleet's state says when someone looked into it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cloud.fleet.alerts import Alert
from cloud.fleet.alerts.agent_rules import (
    agent_certificate_expiring,
    agent_error,
    agent_quiet,
    agent_report_invalid,
    agent_site_unconfigured,
    agent_version_unpublished,
    error_details,
)
from cloud.fleet.alerts.persist import persist_account_mismatch, persist_expiring
from cloud.fleet.alerts.wording import expiry, sentence
from cloud.fleet.status import (
    CSR_REFUSED,
    DEFAULT_EXPIRY_DAYS,
    FleetStatus,
    ReportedError,
    SiteStatus,
)

__all__ = ["DEFAULT_EXPIRY_DAYS", "evaluate", "issuance_failed"]
REPLACED_ELSEWHERE_FIRES = timedelta(days=7)


def evaluate(
    status: FleetStatus, now: datetime, *, expiry_days: float = DEFAULT_EXPIRY_DAYS
) -> list[Alert]:
    """Every alert firing in `status`, sites first, each kind in a fixed order."""
    alerts: list[Alert] = []
    for site in status.sites:
        found = issuance_failed(site.site, site.failures, site.last_error, now, _site_details(site))
        more = (
            found,
            expiring(site, now, expiry_days),
            replaced_elsewhere(site, now),
            persist_expiring(site, now, expiry_days),
            persist_account_mismatch(site, now),
        )
        alerts += [a for a in more if a is not None]
        alerts += pending_work(site, now)
        refused = csr_refused(site, now)
        if refused is not None:
            alerts.append(refused)
    by_id = {site.site: site for site in status.sites}
    for agent in status.agents:
        # Only the sites it receives and the configuration has: those certdrop answers for.
        sites = [by_id[site] for site in agent.sites if site in by_id]
        checks = (
            agent_quiet(agent, now),
            agent_report_invalid(agent, now),
            agent_site_unconfigured(agent, now),
            *(agent_certificate_expiring(agent, site, now, expiry_days) for site in sites),
            *(agent_version_unpublished(agent, site, now) for site in sites),
        )
        alerts += agent_error(agent, now)
        alerts += [a for a in checks if a is not None]
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
        message=f"Issuing the certificate of {site} failed ({runs}): {sentence(error)}",
        at=now,
        cause=error,
        site=site,
        details={**details, "failures": failures, "last_error": error_details(last_error)},
    )


def expiring(site: SiteStatus, now: datetime, expiry_days: float) -> Alert | None:
    """The newest published certificate has fewer than `expiry_days` left: no renewal is out."""
    if site.days_left is None or site.not_after is None or site.days_left >= expiry_days:
        return None
    days = site.days_left
    severity, text = expiry(site.not_after, days)
    whose, version = site.site, site.version
    details: dict[str, object] = {**_site_details(site), "expiry_days": expiry_days}
    held = [(a, s) for a, s in site.agents.items() if s.not_after is not None]
    if held:  # agent custody: one certificate per agent, the earliest is the one expiring
        agent, status = min(held, key=lambda pair: pair[1].not_after or now)
        whose, version = f"{site.site} for agent {agent}", status.version
        details.update(agent=agent, version=version)
    return Alert(
        kind="expiring",
        severity=severity,
        message=f"The certificate of {whose} {text} and no renewal has been published.",
        at=now,
        cause=f"version {version}",
        site=site.site,
        details=details,
    )


def pending_work(site: SiteStatus, now: datetime) -> list[Alert]:
    """Work a run left that every run retries: a certificate recorded and not yet published
    (the run died before delivering it), agents the current certificate has not reached (their
    prefix could not be written), TXT values that could not be removed from DNS."""
    alerts = []
    if site.undelivered or site.pending_version is not None:
        said = []
        details: dict[str, Any] = {"undelivered": dict(site.undelivered)}
        if site.pending_version is not None:
            said.append(
                f"Version {site.pending_version} of {site.site} was recorded and not yet "
                "published (a run stopped before delivering it)."
            )
            # A list, as every value of the details the alert's cause is made of.
            details["pending_version"] = [f"v{site.pending_version}"]
        if site.undelivered:
            agents = ", ".join(sorted(site.undelivered))
            why = "; ".join(site.undelivered.values())
            said.append(f"Version {site.version} of {site.site} has not reached {agents}: {why}.")
        message = " ".join([*said, "Every run tries again; nothing is re-issued."])
        alerts.append(_pending_alert(site, now, ("delivery_pending", "error"), message, details))
    if site.leftover_txt:
        left = ", ".join(site.leftover_txt)
        message = (
            f"{len(site.leftover_txt)} TXT value(s) of {site.site} could not be removed from "
            f"DNS ({left}); every run tries again. Check the DNS provider."
        )
        details = {"leftover_txt": list(site.leftover_txt)}  # what is left: the alert's cause
        alerts.append(_pending_alert(site, now, ("txt_left", "warning"), message, details))
    return alerts


def csr_refused(site: SiteStatus, now: datetime) -> Alert | None:
    """Agents of an agent-custody site whose CSR statement the issuer refused: each gets no
    certificate until it sends one that passes (its code says which check failed)."""
    refused = {
        agent: shown.code or "unknown"
        for agent, shown in site.agents.items()
        if shown.state == CSR_REFUSED
    }
    if not refused:
        return None
    listed = ", ".join(f"{agent} ({code})" for agent, code in sorted(refused.items()))
    return Alert(
        kind="csr_refused",
        severity="error",
        message=(
            f"The CSR statement of {listed} for {site.site} was refused: no certificate is "
            "ordered for that agent until it sends one that passes (`certdrop-agent rekey "
            f"{site.site}` on the NAS makes a new one)."
        ),
        at=now,
        cause=" ".join(f"{agent}={code}" for agent, code in sorted(refused.items())),
        site=site.site,
        details={**_site_details(site), "refused": refused},
    )


def _pending_alert(
    site: SiteStatus,
    now: datetime,
    kind_and_severity: tuple[str, str],
    message: str,
    left: dict[str, Any],
) -> Alert:
    """Its cause is what is still left, so the alert changes (and is re-sent) when that does."""
    kind, severity = kind_and_severity
    return Alert(
        kind=kind,
        severity=severity,
        message=message,
        at=now,
        cause=" ".join(sorted(str(item) for value in left.values() for item in value)),
        site=site.site,
        details={**_site_details(site), **left},
    )


def replaced_elsewhere(site: SiteStatus, now: datetime) -> Alert | None:
    """The CA said a certificate of the site already had a replacement that certdrop did not
    order (alreadyReplaced): another client may hold the ACME account's key, or a site state was
    lost. Fires for REPLACED_ELSEWHERE_FIRES after it happened."""
    record = site.replaced_elsewhere
    if record is None or now - record.at >= REPLACED_ELSEWHERE_FIRES:
        return None
    count = site.replaced_elsewhere_count
    times = "once" if count == 1 else f"{count} times"
    return Alert(
        kind="replaced_elsewhere",
        severity="warning",
        message=(
            f"The CA says the certificate {record.cert_id} of {site.site} was already replaced "
            f"by an order certdrop did not place (alreadyReplaced, {times} so far); it was "
            "renewed without `replaces`. Check who else uses the ACME account."
        ),
        at=now,
        cause=f"{record.cert_id} at {record.at.isoformat()}",
        site=site.site,
        details={
            **_site_details(site),
            "replaced_cert_id": record.cert_id,
            "replaced_at": record.at.isoformat(),
            "ca_detail": record.detail,
            "count": count,
        },
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
