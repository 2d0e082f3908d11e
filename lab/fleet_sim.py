"""A fleet under the CA's rate limits, simulated over weeks with a fake clock: certdrop's real
tick, schedule and limiter against `lab.limited_ca`, which enforces Let's Encrypt's limits.

Every `tick` the real `run_tick` lists the schedule (`state/schedule/` in an in-memory store),
plans with the limiter and queues the sites that go. The issue function is modelled: `workers`
runs at once, `order_seconds` each, taking queued sites in order (a backlog carries over to the
next tick, as in SQS). A run is `site_run`'s decisions with its real parts: `renewal.decide` and
`backoff` on a real `SiteState`, the limiter's `OrderGate` (tokens taken before the order,
refusals and failed authorizations told after), the CA's answer translated by certdrop's ACME
boundary, and the next check written by `schedule.write_marker`. What it leaves out (DNS,
keys, sealing, publishing) neither orders nor waits.

The fleet: nine sites in ten have their own registered domain (under .com, .co.uk, .de, .net),
every tenth belongs to an organisation of 100 sites under one registered domain (`orgN.co.uk`),
every site an apex and its wildcard. One site in 200 has broken DNS for the first day
(validation fails).
A cold start has nothing issued; a steady state has every certificate issued at a spread-out
moment of its lifetime, then takes on 10% more sites at once on day 10 (a new organisation of
them among those).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePath
from typing import Sequence

from cloud.acme.certificate_keys import KeyType
from cloud.config import (
    LETSENCRYPT_LIMITS,
    LETSENCRYPT_PRODUCTION,
    CaConfig,
    Config,
    SiteConfig,
    StorageConfig,
)
from cloud.dns01.propagation import DnsCheckSettings
from cloud.errors import RateLimited, ValidationFailed, WaitingForLimits
from cloud.limiter.gate import OrderGate
from cloud.limiter.orders import OrderKind
from cloud.pipeline.renewal import backoff, decide
from cloud.pipeline.schedule import write_marker
from cloud.pipeline.site_state import CertificateRecord, ErrorRecord, SiteState
from cloud.pipeline.tick import run_tick, site_of

from lab.limited_ca import Issued, LimitedCa
from lab.memory_store import MemoryStore

START = datetime(2028, 3, 1, tzinfo=timezone.utc)
ORG_SIZE = 100  # sites per organisation (one registered domain)
_TLDS = ("com", "co.uk", "de", "net")


@dataclass(frozen=True)
class Scenario:
    sites: int = 10_000
    days: float = 30.0
    lifetime: timedelta = timedelta(days=6)
    cold: bool = True  # nothing issued at the start; else a steady state
    limiter: bool = True  # Let's Encrypt's limits in [ca.limits]; False: no limits configured
    tick: timedelta = timedelta(hours=1)
    workers: int = 4  # issue runs at once
    order_seconds: float = 30.0  # one run that orders (DNS-01 propagation included)
    broken_every: int = 200  # one site in this many fails validation for the first day
    seed: int = 1

    def describe(self) -> str:
        start = "cold start" if self.cold else "steady state"
        limiter = "limiter on" if self.limiter else "limiter off"
        return f"{self.lifetime.days}-day certificates, {start}, {limiter}"


@dataclass
class Result:
    scenario: Scenario
    orders: int = 0  # orders the CA created
    peak_orders_3h: int = 0  # most orders in any 3 hours
    peak_counted_3h: int = 0  # most counted against new orders per account in any 3 hours
    limit_hits: Counter = field(default_factory=Counter)  # rateLimited answers, by limit
    expired: int = 0  # certificates that expired before their renewal was issued
    never_issued: int = 0  # sites with no certificate at the end
    lateness: list[float] = field(default_factory=list)  # hours past the renewal's due moment
    first_waits: list[float] = field(default_factory=list)  # hours from onboarding to first cert
    waiting_runs: int = 0  # runs the limiter held back at the last moment (gate)
    failed_validations: int = 0
    ticks: int = 0
    wall: float = 0.0

    @property
    def hits(self) -> int:
        return sum(self.limit_hits.values())


@dataclass
class _Site:
    onboarded: datetime
    state: SiteState


class _Queue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, bodies: Sequence[str]) -> None:
        self.sent.extend(bodies)


def fleet(count: int, first: int = 0) -> dict[str, SiteConfig]:
    """`count` sites from number `first`: every tenth an organisation's (`ORG_SIZE` of them
    under one registered domain, `orgN.co.uk`), the others each their own registered domain."""
    sites = {}
    for i in range(first, first + count):
        if i % 10 == 9:
            domain = f"nas{(i // 10) % ORG_SIZE:03d}.org{i // (10 * ORG_SIZE):03d}.co.uk"
        else:
            domain = f"customer{i:05d}.{_TLDS[i % len(_TLDS)]}"
        sid = f"s{i:05d}"
        sites[sid] = SiteConfig(sid, domain, (domain, f"*.{domain}"), KeyType.EC_P256, "dns")
    return sites


def _config(sites: dict[str, SiteConfig], limiter: bool) -> Config:
    ca = CaConfig(LETSENCRYPT_PRODUCTION, limits=LETSENCRYPT_LIMITS if limiter else None)
    return Config(
        source=PurePath("/simulation/certdrop.toml"),
        ca=ca,
        storage=StorageConfig("memory://", Path("/nonexistent")),
        dns=DnsCheckSettings(),
        providers={},
        sites=sites,
    )


def simulate(scenario: Scenario) -> Result:
    return _Simulation(scenario).run()


class _Simulation:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.rng = random.Random(scenario.seed)
        self.now = START
        self.store = MemoryStore(lambda: self.now)
        self.sites = fleet(scenario.sites)
        self.config = _config(self.sites, scenario.limiter)
        self.ca = LimitedCa(scenario.lifetime, broken=self._broken)
        self.gate = OrderGate(self.config.ca.limits, self.store, self.config.ca.directory)
        self.fleet: dict[str, _Site] = {}
        self.result = Result(scenario)
        self.queue: deque[str] = deque()
        self.queued: set[str] = set()
        self.free_at = START  # when the issue function can start its next run
        self.broken: set[str] = set()
        self._break(self.sites)

    def _break(self, sites: dict[str, SiteConfig]) -> None:
        self.broken |= {
            site.domain
            for i, site in enumerate(sites.values())
            if i % self.s.broken_every == self.s.broken_every // 2
        }

    def _broken(self, names: Sequence[str], now: datetime) -> bool:
        """Validation fails for the broken sites' names during the first day."""
        return now < START + timedelta(days=1) and any(n in self.broken for n in names)

    def run(self) -> Result:
        started = time.perf_counter()
        for sid in self.sites:
            self.fleet[sid] = _Site(START, SiteState(sid))
        if not self.s.cold:
            self._steady_start()
        end = START + timedelta(days=self.s.days)
        onboard_at = None if self.s.cold else START + timedelta(days=10)
        tick_at = START
        while tick_at < end:
            if onboard_at is not None and tick_at >= onboard_at:
                self._onboard(tick_at)
                onboard_at = None
            self._drain(until=tick_at)
            self.now = tick_at
            queue = _Queue()
            run_tick(self.config, self.store, queue, tick_at)
            self.result.ticks += 1
            for body in queue.sent:
                site = site_of(body)
                if site is not None and site not in self.queued:
                    self.queue.append(site)
                    self.queued.add(site)
            tick_at += self.s.tick
        self._drain(until=end)
        self._finish(end)
        self.result.wall = time.perf_counter() - started
        return self.result

    def _steady_start(self) -> None:
        """Every site holds a certificate issued at a random moment of the first two thirds of
        its lifetime before the start, so renewals come due evenly."""
        for sid, site in self.sites.items():
            age = self.s.lifetime * (2 / 3) * self.rng.random()
            issued = self.ca.issued_before(site.names, START - age)
            self._record(sid, issued, START - age)
            self.fleet[sid].onboarded = START - age

    def _onboard(self, at: datetime) -> None:
        extra = max(1, self.s.sites // 10)
        added = fleet(extra, first=self.s.sites)
        self._break(added)
        self.sites = {**self.sites, **added}
        self.config = replace(self.config, sites=self.sites)
        for sid in added:
            self.fleet[sid] = _Site(at, SiteState(sid))

    def _drain(self, until: datetime) -> None:
        """Runs the queued sites whose turn comes before `until`, one `order_seconds /
        workers` apart (the issue function's throughput)."""
        step = timedelta(seconds=self.s.order_seconds / self.s.workers)
        while self.queue:
            start = max(self.free_at, self.now)
            if start >= until:
                return
            site = self.queue.popleft()
            self.queued.discard(site)
            self.now = start
            if self._run(site, start):
                self.free_at = start + step
            else:
                self.free_at = start + step / 10  # nothing ordered: a quick run

    def _run(self, sid: str, now: datetime) -> bool:
        """One site's run; True when it placed an order."""
        site = self.sites[sid]
        entry = self.fleet[sid]
        state = entry.state
        decision = decide(site, state, now, directory=self.config.ca.directory)
        if not decision.due:
            self._schedule(site, state, decision.next_check)
            return False
        current = state.current
        replaces = current.ari_id if current is not None else None
        kind = OrderKind.ARI_RENEWAL if replaces else OrderKind.FIRST
        try:
            self.gate.take(site, kind, now)
        except WaitingForLimits as wait:
            self.result.waiting_runs += 1
            self._schedule(site, state, wait.go_at)  # as site_run: looked at when it fits
            return False
        try:
            issued = self.ca.order(site.names, now, replaces)
        except (RateLimited, ValidationFailed) as exc:
            if isinstance(exc, RateLimited):
                self.gate.refused(site, kind, exc.retry_after, now)
            else:
                self.gate.failed_authorizations(site, [i for i, _, _ in exc.failures], now)
            failures = state.failures + 1
            entry.state = replace(
                state,
                failures=failures,
                next_attempt=backoff(failures, now, self.rng, exc.retry_after),
                last_error=ErrorRecord(exc.code, str(exc), now, exc.transient),
            )
            self._schedule(site, entry.state, entry.state.next_attempt or now)
            return True
        self._issued(sid, issued, now)
        return True

    def _issued(self, sid: str, issued: Issued, now: datetime) -> None:
        entry = self.fleet[sid]
        current = entry.state.current
        if current is None:
            self.result.first_waits.append(_hours(now - entry.onboarded))
        else:
            if current.not_after <= now:
                self.result.expired += 1
            due = current.not_before + (current.not_after - current.not_before) * 2 / 3
            self.result.lateness.append(max(0.0, _hours(now - due)))
        self._record(sid, issued, now)

    def _record(self, sid: str, issued: Issued, now: datetime) -> None:
        site = self.sites[sid]
        record = CertificateRecord(
            version=1,
            cert_sha256="-",
            serial=issued.cert_id,
            names=site.names,
            key_type=site.key_type.value,
            profile=site.profile,
            not_before=issued.not_before,
            not_after=issued.not_after,
            issued_at=now,
            escrow_object="-",
            ari_id=issued.cert_id,
        )
        entry = self.fleet[sid]
        entry.state = replace(
            entry.state, current=record, failures=0, next_attempt=None, last_error=None
        )
        decision = decide(site, entry.state, now)
        self._schedule(site, entry.state, decision.next_check)

    def _schedule(self, site: SiteConfig, state: SiteState, next_check: datetime) -> None:
        not_after = state.current.not_after if state.current is not None else None
        write_marker(self.store, site, next_check, not_after)

    def _finish(self, end: datetime) -> None:
        r = self.result
        r.orders = len(self.ca.orders)
        r.peak_orders_3h = _peak([o.at for o in self.ca.orders], timedelta(hours=3))
        r.peak_counted_3h = _peak([o.at for o in self.ca.orders if o.counted], timedelta(hours=3))
        r.limit_hits = Counter(self.ca.refusals)
        r.failed_validations = self.ca.failed_validations
        for entry in self.fleet.values():
            current = entry.state.current
            if current is None:
                r.never_issued += 1
            elif current.not_after <= end:
                r.expired += 1


def _peak(moments: list[datetime], window: timedelta) -> int:
    ordered = sorted(moments)
    best, left = 0, 0
    for right, moment in enumerate(ordered):
        while ordered[left] <= moment - window:
            left += 1
        best = max(best, right - left + 1)
    return best


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def percentiles(values: list[float], points: Sequence[float] = (50, 90, 99, 100)) -> list[float]:
    if not values:
        return [0.0 for _ in points]
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in points]
