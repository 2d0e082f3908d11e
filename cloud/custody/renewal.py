"""When an agent-custody site needs work: pure functions of its configuration, its state and now.

Per agent (one certificate each):
- an order in flight, or a certificate recorded and not yet delivered: now;
- held back by the CA's limits, or a rekey held back (one a day per agent, after the due
  orders of the site): when it may go;
- no certificate yet: now when its CSR was usable at the last look (else the next CSR the agent
  posts makes the site due: the tick sees it, `cloud.pipeline.schedule`);
- a certificate: renewed when its names or key type changed, inside the CA's ARI window, or at
  two thirds of its lifetime (as `cloud.pipeline.renewal` for a site); a rekey statement makes
  it due at once (seen when the run reads it; `cloud.pipeline.agent_custody` may hold it).

The site's next check is the earliest of its agents'; backoff after failures comes first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cloud.config import SiteConfig
from cloud.pipeline.renewal import UNAVAILABLE_LOOK, Decision, challenge_unavailable, changes
from cloud.pipeline.site_state import AgentCustodyState, SiteState

LOOK_AGAIN = timedelta(days=1)  # a site whose agents all wait for something else


def agent_renewal(site: SiteConfig, entry: AgentCustodyState, now: datetime) -> Decision:
    """Whether the agent's certificate is to be replaced now (given a usable CSR)."""
    if entry.current is None:
        return Decision(True, "no certificate yet", now)
    current = entry.current.record
    changed = changes(site, current)
    if changed:
        return Decision(True, f"{' and '.join(changed)} changed", now)
    if current.not_after <= now:
        return Decision(True, "expired", now)
    if entry.window is not None:
        if entry.window.renew_at <= now:
            return Decision(True, "inside the CA's renewal window (ARI)", now)
        return Decision(
            False, "waiting for the ARI window", min(entry.window.renew_at, entry.window.next_check)
        )
    renew_at = current.not_before + (current.not_after - current.not_before) * 2 / 3
    if renew_at <= now:
        return Decision(True, "two thirds of the lifetime passed", now)
    return Decision(False, "valid", renew_at)


def agent_next(site: SiteConfig, entry: AgentCustodyState, now: datetime) -> Decision:
    """When this agent needs the site's run next, and why."""
    if entry.order is not None:
        return Decision(True, f"{entry.agent}: an order to finish", now)
    if entry.pending is not None:
        return Decision(True, f"{entry.agent}: a certificate to deliver", now)
    if entry.waiting is not None:
        due = entry.waiting.go_at <= now
        return Decision(due, f"{entry.agent}: waiting for the CA's limits", entry.waiting.go_at)
    renewal = agent_renewal(site, entry, now)
    if not renewal.due:
        return Decision(False, f"{entry.agent}: {renewal.reason}", renewal.next_check)
    if entry.csr_seen and entry.refusal is None:
        return Decision(True, f"{entry.agent}: {renewal.reason}", now)
    # Due, with no usable CSR: the agent's next statement makes the site due (the tick sees it).
    return Decision(
        False, f"{entry.agent}: {renewal.reason}, waiting for its CSR", now + LOOK_AGAIN
    )


def decide_agents(
    site: SiteConfig, state: SiteState | None, now: datetime, *, directory: str | None = None
) -> Decision:
    """The site's decision: due when one of its agents is; next check the earliest of theirs."""
    if state is not None and state.next_attempt is not None and state.next_attempt > now:
        failures = f"{state.failures} failure{'s' if state.failures != 1 else ''}"
        return Decision(False, f"backing off after {failures}", state.next_attempt)
    if state is not None and challenge_unavailable(site, state, directory):
        return Decision(
            False,
            f"the CA offers no {site.challenge.value}: not ordered again until the site's "
            "configuration or ca.directory changes",
            now + UNAVAILABLE_LOOK,
        )
    entries = list(state.agents.values()) if state is not None else []
    decisions = [agent_next(site, entry, now) for entry in entries]
    due = [d for d in decisions if d.due]
    if due:
        return Decision(True, "; ".join(d.reason for d in due), now)
    if not decisions:
        return Decision(False, "agent custody: waiting for the agents' CSRs", now + LOOK_AGAIN)
    first = min(decisions, key=lambda d: d.next_check)
    return Decision(False, first.reason, min(first.next_check, now + LOOK_AGAIN))
