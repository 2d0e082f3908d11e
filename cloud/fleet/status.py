"""The fleet at a glance: every site's certificate and renewal, every agent's last report.

One read model for `certdrop status`, the dashboard and the alerts. Agents' status reports are
believed only when their signature verifies with the key the agent enrolled with. Sites the CA's
rate limits hold back show when each will go, by the plan the tick makes (`cloud.limiter`).

An agent's installed version is judged against the one published for that agent (under agent
custody its own certificate's): current, behind, or above it. Above it is explained only by the
version a run recorded and delivered before it died (`pending`, the next run makes it current);
any other is one the issuer never published ("ahead": a planted or restored state, or a lost
site state), and the agent refuses every version up to it.

Errors are read as a stable code and a message; whoever branches does so on the code only.
Reports of agents that predate codes name the error's class instead: the name is mapped to its
code, or to "unknown" when no class has it any more.

A report is untrusted input (`cloud.fleet.agent_report` reads it): one that is too large, not
signed by its agent or malformed marks only that agent "report invalid", and an agent whose
report cannot be read at all is shown as such; no agent's report keeps the others from the view.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cloud.acme.challenge_types import ChallengeType
from cloud.config import Config, KeyCustody, SiteConfig
from cloud.custody.renewal import agent_renewal, decide_agents
from cloud.dns01.solver import ChallengeJournal
from cloud.errors import StoreError
from cloud.fleet.agent_report import ErrorEntry, Installed, load_report
from cloud.limiter.gate import OrderGate
from cloud.limiter.orders import OrderKind
from cloud.limiter.plan import Wait, pace
from cloud.pipeline.renewal import changes, decide
from cloud.pipeline.schedule import (
    UNCONFIGURED_TXT,
    due_sites,
    read_csr_posts,
    read_journalled,
    read_markers,
)
from cloud.pipeline.site_state import (
    AgentCustodyState,
    PersistSeen,
    ReplacedElsewhere,
    SiteState,
    load_site_state,
)
from cloud.publish.registry import AgentRecord, AgentRegistry
from cloud.store import Store
from nas_agent.dsm.errors import DsmDuplicateDescription
from nas_agent.errors import InstallFailed, ServicesNotBound, StatusReportInvalid, is_refusal

log = logging.getLogger(__name__)

# Alerts' `expiry_days` when the configuration has no [alerts] table; the agents' rows flag an
# installed certificate by the same measure, so the views and the alerts agree.
DEFAULT_EXPIRY_DAYS = 14.0
QUIET_AFTER_MISSED = 3  # reports an agent may miss before it counts as quiet
DEFAULT_POLL_INTERVAL = 3600.0  # for reports that do not say
REFUSED = "refused"  # an agent refused a bundle: a check failed, nothing was installed
ROLLED_BACK = "rolled back"  # DSM did not hold the new certificate; the agent put the old back
# DSM holds the new certificate, but not as configured (a service left unbound), or which DSM
# certificate is the site's cannot be told (two share its description): the agent retries.
INCOMPLETE = "incomplete"
_INCOMPLETE_CODES = frozenset({ServicesNotBound.code, DsmDuplicateDescription.code})


@dataclass(frozen=True)
class ReportedError:
    code: str  # stable, from cloud.errors or nas_agent.errors; "unknown" when none could be read
    message: str  # for people only

    @property
    def outcome(self) -> str | None:
        """REFUSED, ROLLED_BACK or INCOMPLETE for an agent's error that is one of those, else
        None."""
        if is_refusal(self.code):
            return REFUSED
        if self.code == InstallFailed.code:
            return ROLLED_BACK
        return INCOMPLETE if self.code in _INCOMPLETE_CODES else None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class SiteStatus:
    site: str
    names: tuple[str, ...]
    version: int | None
    not_before: datetime | None
    not_after: datetime | None
    days_left: float | None
    # "healthy", "due", "failing", "delivery pending", "TXT left", "expired" or "never issued"
    health: str
    next_check: datetime
    next_reason: str
    failures: int
    last_error: ReportedError | None
    # The last certificate the CA said was replaced by an order certdrop did not record, and how
    # often that happened (each such renewal went without `replaces`).
    replaced_elsewhere: ReplacedElsewhere | None = None
    replaced_elsewhere_count: int = 0
    challenge: str = ChallengeType.DNS_01.value  # the site's challenge type
    # dns-persist-01: what the last read of each record found (accounturi, persistUntil, when)
    persist: tuple[PersistSeen, ...] = ()
    # Agents the current certificate has not reached yet (id → why), retried every run.
    undelivered: Mapping[str, str] = field(default_factory=dict)
    # TXT values a run could not remove ("fqdn value"), retried every run and tick.
    leftover_txt: tuple[str, ...] = ()
    # The CA's limits holding the site's order back ("new orders per account", ...); while it
    # waits, next_check is when it will go.
    waiting_for: tuple[str, ...] = ()
    key_custody: str = KeyCustody.ISSUER.value
    # Agent custody: each subscribed agent's certificate and CSR (by agent id).
    agents: Mapping[str, CustodyAgentStatus] = field(default_factory=dict)
    # A certificate a run recorded (version reserved, escrow written) and did not publish: it
    # died before making it current, maybe after delivering it. The next run finishes it.
    pending_version: int | None = None

    def published_for(self, agent_id: str) -> int | None:
        """The version published for that agent: under agent custody its own certificate's
        (each agent has one), otherwise the site's newest."""
        own = self.agents.get(agent_id)
        return own.version if own is not None else self.version

    def pending_for(self, agent_id: str) -> int | None:
        """The version recorded for that agent and not yet made current, if any."""
        own = self.agents.get(agent_id)
        return own.pending_version if own is not None else self.pending_version


@dataclass(frozen=True)
class CustodyAgentStatus:
    """One agent of an agent-custody site: its own certificate and where its CSR stands."""

    # "certificate current", "CSR held for renewal", "waiting for CSR", "CSR refused",
    # "CSR waiting for issuance" (the CA's limits), "order in flight", "delivery pending"
    state: str
    code: str | None = None  # a refusal's code (csr.*, registry.*)
    message: str | None = None
    until: datetime | None = None  # waiting for the CA's limits: when it goes
    held_by: tuple[str, ...] = ()
    version: int | None = None
    not_after: datetime | None = None
    sequence: int = 0  # the last CSR sequence used
    pending_version: int | None = None  # issued and recorded, not yet delivered to it

    def describe(self) -> str:
        if self.state == WAITING_FOR_ISSUANCE and self.until is not None:
            return f"{self.state} (limit until {self.until:%Y-%m-%d %H:%M} UTC: " + (
                f"{', '.join(self.held_by)})"
            )
        if self.code is not None:
            return f"{self.state}: {self.code}"
        return self.state


WAITING_FOR_CSR = "waiting for CSR"
WAITING_FOR_ISSUANCE = "CSR waiting for issuance"
CSR_REFUSED = "CSR refused"


CURRENT = "current"  # the version published for the agent
BEHIND = "behind"  # older than that
PENDING = "pending"  # newer: the one a run recorded and delivered, and died before publishing
AHEAD = "ahead"  # newer, and never published: the agent refuses every version up to it
NONE_PUBLISHED = "none published"  # nothing is published for the agent to compare with


@dataclass(frozen=True)
class InstalledStatus:
    version: int
    fingerprint: str
    not_after: datetime
    current: bool  # the version published for this agent (standing == CURRENT)
    standing: str  # CURRENT, BEHIND, PENDING, AHEAD or NONE_PUBLISHED
    days_left: float
    expiring: bool  # fewer than the alerts' `expiry_days` left, or expired


@dataclass(frozen=True)
class AgentStatus:
    agent_id: str
    sites: tuple[str, ...]  # the sites it receives
    installed: Mapping[str, InstalledStatus]
    last_seen: datetime | None
    poll_interval: float
    quiet: bool  # no report for longer than QUIET_AFTER_MISSED poll intervals
    dsm_version: str | None
    last_error: ReportedError | None
    site_errors: Mapping[str, ReportedError]  # sites whose latest attempt failed
    failing: bool
    report_problem: str | None  # a report that is missing, unreadable or not believed
    report_invalid: bool = False  # a report was found and is not believed (an alert)
    frozen: bool = False  # its index expired: it installs nothing until the issuer re-signs
    no_report: bool = False  # none written yet: neutral until overdue (then `quiet`)
    # Sites it receives that its agent.conf has no [site:] section for: it never installs them.
    unconfigured_sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetStatus:
    at: datetime
    sites: tuple[SiteStatus, ...]
    agents: tuple[AgentStatus, ...]

    def site(self, site_id: str) -> SiteStatus:
        return next(s for s in self.sites if s.site == site_id)

    def agent(self, agent_id: str) -> AgentStatus:
        return next(a for a in self.agents if a.agent_id == agent_id)

    def as_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def collect(config: Config, store: Store, now: datetime) -> FleetStatus:
    states = {sid: load_site_state(store, sid) for sid in config.sites}
    directory = config.ca.directory
    records = sorted(AgentRegistry(store).all(), key=lambda r: r.agent_id)
    sites = tuple(
        _custody_site(site, states[site.id], records, now, directory)
        if site.key_custody is KeyCustody.AGENT
        else _site(site, states[site.id], now, directory)
        for site in config.sites.values()
    )
    waiting = _waiting(config, store, now, states)
    sites = tuple(_held(s, waiting[s.site]) if s.site in waiting else s for s in sites)
    sites += _unconfigured(config, store, now)
    by_id = {s.site: s for s in sites}
    expiry_days = config.alerts.expiry_days if config.alerts else DEFAULT_EXPIRY_DAYS
    agents = tuple(
        _agent_or_problem(record, store, _Judge(by_id, now, expiry_days)) for record in records
    )
    return FleetStatus(now, sites, agents)


def _unconfigured(config: Config, store: Store, now: datetime) -> tuple[SiteStatus, ...]:
    """Sites taken out of the configuration whose runs left TXT values still journalled (one
    listing): shown, and alerted as `txt_left`, until their runs remove them or give them up."""
    gone = sorted(read_journalled(store) - set(config.sites))
    return tuple(
        SiteStatus(
            site=site,
            names=(),
            version=None,
            not_before=None,
            not_after=None,
            days_left=None,
            health="TXT left",
            next_check=now,
            next_reason=UNCONFIGURED_TXT,
            failures=0,
            last_error=None,
            leftover_txt=left,
        )
        for site in gone
        if (left := ChallengeJournal(store, site).leftovers())
    )


def _custody_site(
    site: SiteConfig,
    state: SiteState | None,
    records: list[AgentRecord],
    now: datetime,
    directory: str,
) -> SiteStatus:
    """An agent-custody site: one certificate per agent; the site shows the earliest expiry,
    the newest version, and each subscribed agent's certificate and CSR."""
    base = _site(site, state, now, directory)
    decision = decide_agents(site, state, now, directory=directory)
    entries = state.agents if state is not None else {}
    agents = {
        r.agent_id: _custody_agent(site, entries.get(r.agent_id), now)
        for r in records
        if site.id in r.sites
    }
    held = [a for a in agents.values() if a.not_after is not None]
    not_after = min((a.not_after for a in held if a.not_after), default=None)
    version = max((a.version for a in held if a.version), default=None)
    states = {a.state for a in agents.values()}
    if not held:
        # Failures and refused CSRs first: a first issuance that keeps failing is trouble, not
        # a site nobody has tried yet.
        if state is not None and state.failures:
            health = "failing"
        elif CSR_REFUSED in states:
            health = CSR_REFUSED
        else:
            health = "never issued"
    elif not_after is not None and not_after <= now:
        health = "expired"
    elif state is not None and state.failures:
        health = "failing"
    elif CSR_REFUSED in states:
        health = CSR_REFUSED
    elif state is not None and (state.undelivered or state.pending is not None):
        # A certificate recorded and not yet published (its run died) reaches no agent yet.
        health = "delivery pending"
    elif WAITING_FOR_ISSUANCE in states:
        health = "waiting"
    elif WAITING_FOR_CSR in states:
        health = WAITING_FOR_CSR
    elif decision.due or (
        state is not None and (state.order_url is not None or state.ordering_since is not None)
    ):
        # An order in flight (its run died): the next run finishes it.
        health = "due"
    else:
        health = "healthy"
    earliest = min((a for a in held), key=lambda a: a.not_after or now, default=None)
    return replace(
        base,
        version=version,
        not_before=None,
        not_after=not_after,
        days_left=(not_after - now).total_seconds() / 86400 if not_after else None,
        health=health,
        next_check=decision.next_check,
        next_reason=decision.reason,
        key_custody=site.key_custody.value,
        agents=agents,
        waiting_for=earliest.held_by if earliest and earliest.until else (),
    )


def _custody_agent(
    site: SiteConfig, entry: AgentCustodyState | None, now: datetime
) -> CustodyAgentStatus:
    if entry is None:
        return CustodyAgentStatus(WAITING_FOR_CSR)
    current = entry.current.record if entry.current is not None else None
    held = CustodyAgentStatus(
        "certificate current",
        version=current.version if current else None,
        not_after=current.not_after if current else None,
        sequence=entry.sequence,
        pending_version=entry.pending.record.version if entry.pending is not None else None,
    )
    if entry.order is not None:
        return replace(held, state="order in flight")
    if entry.pending is not None:
        return replace(held, state="delivery pending")
    if entry.refusal is not None:
        refusal = entry.refusal
        return replace(held, state=CSR_REFUSED, code=refusal.code, message=refusal.message)
    if entry.waiting is not None and entry.waiting.go_at > now:
        wait = entry.waiting
        return replace(held, state=WAITING_FOR_ISSUANCE, until=wait.go_at, held_by=wait.held_by)
    if current is None:
        return replace(held, state=WAITING_FOR_ISSUANCE if entry.csr_seen else WAITING_FOR_CSR)
    if entry.csr_seen:
        return replace(held, state="CSR held for renewal")
    renewal = agent_renewal(site, entry, now)
    if renewal.due:  # due, and no CSR to order with: the agent must send one
        return replace(held, state=WAITING_FOR_CSR, message=renewal.reason)
    return held


def _site(site: SiteConfig, state: SiteState | None, now: datetime, directory: str) -> SiteStatus:
    decision = decide(site, state, now, directory=directory)
    cert = state.current if state is not None else None
    if cert is None:
        # A first issuance that keeps failing is trouble, not a site nobody has tried yet.
        health = "failing" if state is not None and state.failures else "never issued"
    elif cert.not_after <= now:
        health = "expired"
    elif state is not None and state.failures:
        health = "failing"
    elif state is not None and (state.undelivered or state.pending is not None):
        # A certificate recorded and not yet published (its run died) reaches no agent yet.
        health = "delivery pending"
    elif state is not None and state.leftover_txt:
        health = "TXT left"
    elif decision.due or (
        state is not None and (state.order_url is not None or state.ordering_since is not None)
    ):
        # An order in flight (its run died): the next run finishes it.
        health = "due"
    else:
        health = "healthy"
    error = state.last_error if state is not None and state.failures else None
    return SiteStatus(
        site=site.id,
        names=site.names,
        version=cert.version if cert else None,
        not_before=cert.not_before if cert else None,
        not_after=cert.not_after if cert else None,
        days_left=(cert.not_after - now).total_seconds() / 86400 if cert else None,
        health=health,
        next_check=decision.next_check,
        next_reason=decision.reason,
        failures=state.failures if state is not None else 0,
        last_error=ReportedError(error.code, error.message) if error else None,
        replaced_elsewhere=state.replaced_elsewhere if state is not None else None,
        replaced_elsewhere_count=state.replaced_elsewhere_count if state is not None else 0,
        undelivered=dict(state.undelivered) if state is not None else {},
        leftover_txt=state.leftover_txt if state is not None else (),
        challenge=site.challenge.value,
        persist=state.persist if state is not None else (),
        pending_version=state.pending.version if state is not None and state.pending else None,
    )


def _waiting(
    config: Config, store: Store, now: datetime, states: Mapping[str, SiteState | None]
) -> Mapping[str, Wait]:
    """The due sites the CA's limits hold back, as the tick plans them (one listing, one read),
    and those a run held back itself (its own names' buckets): due by their state while their
    marker says later, at the very moment the ledgers say they fit (a read each; rare)."""
    if config.ca.limits is None:
        return {}
    markers = read_markers(store)
    posts = read_csr_posts(store, config.sites)
    due = due_sites(config.sites, markers, now, read_journalled(store), posts)
    found = dict(pace(config, store, due, markers, now).waiting)
    planned = {d.site for d in due}
    gate = OrderGate(config.ca.limits, store, config.ca.directory)
    for site in config.sites.values():
        marker, state = markers.get(site.id), states.get(site.id)
        if site.id in planned or marker is None or marker.next_check <= now:
            continue
        if site.key_custody is KeyCustody.AGENT:
            continue  # each agent's own wait is in its CustodyAgentStatus
        if not decide(site, state, now, directory=config.ca.directory).due:
            continue
        current = state.current if state is not None else None
        renews = current is not None and "names" not in changes(site, current)
        held = gate.held(site, OrderKind.RENEWAL if renews else OrderKind.FIRST, now)
        if held is not None and abs((held[0] - marker.next_check).total_seconds()) < 60:
            found[site.id] = Wait(site.id, held[0], held[1])
    return found


def _held(site: SiteStatus, wait: Wait) -> SiteStatus:
    reason = f"{wait.describe()}; {site.next_reason}"
    return replace(site, next_check=wait.go_at, next_reason=reason, waiting_for=wait.held_by)


@dataclass(frozen=True)
class _Judge:
    """What an agent's installed certificates are judged against."""

    sites: Mapping[str, SiteStatus]
    now: datetime
    expiry_days: float

    def installed(self, agent_id: str, site_id: str, entry: Installed) -> InstalledStatus:
        days = (entry.not_after - self.now).total_seconds() / 86400
        standing = _standing(agent_id, entry.version, self.sites.get(site_id))
        return InstalledStatus(
            version=entry.version,
            fingerprint=entry.fingerprint,
            not_after=entry.not_after,
            current=standing == CURRENT,
            standing=standing,
            days_left=days,
            expiring=days < self.expiry_days,
        )


def _standing(agent_id: str, version: int, site: SiteStatus | None) -> str:
    """How an installed version stands against what is published for that agent."""
    published = site.published_for(agent_id) if site is not None else None
    if version == published:
        return CURRENT
    if site is not None and version == site.pending_for(agent_id):
        # Delivered by a run that died before recording it as current: the next run does.
        return PENDING
    if published is None:
        return NONE_PUBLISHED
    return BEHIND if version < published else AHEAD


def _agent_or_problem(record: AgentRecord, store: Store, judge: _Judge) -> AgentStatus:
    """The agent's status; whatever goes wrong with its report stays with this agent."""
    try:
        return _agent(record, store, judge)
    except StatusReportInvalid as exc:
        return _unknown(record, f"report invalid: {exc.reason}", invalid=True)
    except StoreError as exc:
        log.warning("status report unreadable: %s", exc, extra={"agent": record.agent_id})
        return _unknown(record, f"status report unreadable ({exc.code}): {exc}")
    except Exception:  # a bug, seen as this agent's problem, never as the whole fleet's
        log.exception("status report not read", extra={"agent": record.agent_id})
        return _unknown(record, "report invalid: it could not be read (see the log)", invalid=True)


def _agent(record: AgentRecord, store: Store, judge: _Judge) -> AgentStatus:
    now = judge.now
    report = load_report(store, record.agent_id, record.enrollment.signing_public_key, now)
    if report is None:
        # Quiet also before the first report, once it is overdue since the agent was added.
        overdue = now - record.added_at > timedelta(
            seconds=DEFAULT_POLL_INTERVAL * QUIET_AFTER_MISSED
        )
        return replace(_unknown(record, "no status report yet"), quiet=overdue, no_report=True)
    interval = report.poll_interval or DEFAULT_POLL_INTERVAL
    return AgentStatus(
        agent_id=record.agent_id,
        sites=record.sites,
        installed={
            site: judge.installed(record.agent_id, site, entry)
            for site, entry in report.sites.items()
        },
        last_seen=report.seen_at,
        poll_interval=interval,
        quiet=now - report.seen_at > timedelta(seconds=interval * QUIET_AFTER_MISSED),
        dsm_version=report.dsm_version,
        last_error=_reported(report.last_error),
        site_errors={
            site: ReportedError(e.code, e.message) for site, e in report.site_errors.items()
        },
        failing=report.failing,
        report_problem=None,
        frozen=report.frozen,
        # Only the sites it receives: an index not yet signed again may still list a site
        # withdrawn from it, which it rightly leaves alone.
        unconfigured_sites=tuple(s for s in report.unconfigured_sites if s in record.sites),
    )


def _unknown(record: AgentRecord, problem: str, *, invalid: bool = False) -> AgentStatus:
    """An agent whose report says nothing that can be believed: nothing installed, never seen,
    not counted as quiet (a report was written; `report_invalid` is what alerts)."""
    return AgentStatus(
        agent_id=record.agent_id,
        sites=record.sites,
        installed={},
        last_seen=None,
        poll_interval=DEFAULT_POLL_INTERVAL,
        quiet=False,
        dsm_version=None,
        last_error=None,
        site_errors={},
        failing=False,
        report_problem=problem,
        report_invalid=invalid,
    )


def _reported(error: ErrorEntry | None) -> ReportedError | None:
    return ReportedError(error.code, error.message) if error is not None else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
