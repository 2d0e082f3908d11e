"""The one issuance pipeline: a run of one site, safe to repeat.

    lock → read state → refresh the CA's window (ARI) → decide → order or resume (the order URL
    saved as soon as the CA returns it) → challenges → finalize → publish → state → schedule

`certdrop issue` is this run forced; `certdrop run` (a thread pool), the `issue` Lambda (one
site per queue message) and so the tick's messages all come here. The site state is read once
per run and written only here, at the steps above. A run killed after ordering is resumed by the
next one instead of ordering again; a redelivered message after success finds the site not due.
Failures are recorded with an exponential backoff and rescheduled, never retried in a loop.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import requests

from cloud.acme.ari import fetch_window, pick_renewal_time
from cloud.acme.client import AcmeClient
from cloud.acme.order import IssuedCertificate, issue
from cloud.config import Config, SiteConfig
from cloud.dns01.solver import ChallengeJournal, Dns01Solver
from cloud.errors import AcmeError, CertdropError, Locked
from cloud.keys.store import KeyStore
from cloud.pipeline import parts
from cloud.pipeline.renewal import Decision, backoff, changes, decide
from cloud.pipeline.schedule import write_marker
from cloud.pipeline.site_state import (
    ErrorRecord,
    RenewalWindow,
    SiteState,
    load_site_state,
    save_site_state,
)
from cloud.publish.publisher import Publisher
from cloud.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    site: str
    result: str  # "issued", "not due", "failed" or "locked"
    reason: str
    version: int | None = None  # the published version; None when nothing is published
    not_after: datetime | None = None
    error: CertdropError | None = None
    # The certificate this run issued (for `certdrop issue --out`); never logged, see its repr.
    certificate: IssuedCertificate | None = None


class Runner:
    """Runs sites through the pipeline. Without a publisher (before `certdrop init` created the
    issuer keys) a forced run still issues, records only that its order is finished, and
    publishes nothing: the site stays due."""

    def __init__(
        self,
        config: Config,
        store: Store,
        keys: KeyStore,
        publisher: Publisher | None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ):
        self.config = config
        self.store = store
        self.keys = keys
        self.publisher = publisher
        self.now = now
        self.rng = rng or random.SystemRandom()

    def run_many(
        self, site_ids: Sequence[str], *, concurrency: int = 1, force: bool = False
    ) -> list[Outcome]:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda s: self.run_site(s, force=force), site_ids))

    def run_site(self, site_id: str, *, force: bool = False) -> Outcome:
        site = parts.site(self.config, site_id)
        lock = parts.site_lock(self.config, self.store, site.id, now=self.now)
        try:
            lock.acquire()
        except Locked as exc:
            log.info("%s", exc, extra={"site": site.id})
            return Outcome(site.id, "locked", str(exc), error=exc)
        try:
            return _SiteRun(self, site).run(force)
        finally:
            lock.release()


class _SiteRun:
    """One run's record: the state as last written, so the run reads it once."""

    def __init__(self, runner: Runner, site: SiteConfig):
        self.runner = runner
        self.site = site
        self.store = runner.store
        self.now = runner.now()
        self.state = load_site_state(self.store, site.id) or SiteState(site.id)
        self._acme: AcmeClient | None = None

    def run(self, force: bool) -> Outcome:
        try:
            if _window_stale(self.state, self.now):
                self._save(self._with_window(self.state))
            decision = decide(self.site, self.state, self.now)
            if not (decision.due or force):
                self._schedule(decision)
                return self._outcome("not due", decision.reason)
            cert = issue(
                self.site,
                self._client(),
                self._solver(),
                order_timeout=self.runner.config.ca.order_timeout,
                preferred_chain=self.runner.config.ca.preferred_chain,
                replaces=_replaces(self.site, self.state),
                resume_order=self.state.order_url,
                on_order=self._order_placed,
            )
            if self.runner.publisher is None:
                self._save(self.state.with_order(None, None))
                return self._outcome("issued", "not published", certificate=cert)
            record = self.runner.publisher.publish(cert, _next_version(self.state))
        except CertdropError as exc:
            return self._failed(exc)
        previous = self.state.current
        issued = replace(
            self.state,
            current=record,
            order_url=None,
            order_placed_at=None,
            failures=0,
            next_attempt=None,
            last_error=None,
            window=None,
        )
        self._save(self._with_window(issued))
        if previous is not None:
            # Only now: until the new state was saved, the old escrow copy was the recorded one.
            self.runner.publisher.retire(previous)
        self._schedule(decide(self.site, self.state, self.now))
        reason = decision.reason if decision.due else "forced"
        return self._outcome("issued", reason, certificate=cert)

    def _order_placed(self, url: str) -> None:
        self._save(self.state.with_order(url, self.now))
        log.info("order saved: a run dying from here on is resumed", extra={"site": self.site.id})

    def _failed(self, exc: CertdropError) -> Outcome:
        log.error("run failed: %s", exc, extra={"site": self.site.id})
        failures = self.state.failures + 1
        retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
        self._save(
            replace(
                self.state,
                failures=failures,
                next_attempt=backoff(failures, self.now, self.runner.rng, retry_after),
                last_error=ErrorRecord(
                    code=exc.code,
                    message=str(exc),
                    at=self.now,
                    transient=exc.transient,
                ),
            )
        )
        self._schedule(decide(self.site, self.state, self.now))
        return self._outcome("failed", str(exc), error=exc)

    def _save(self, state: SiteState) -> None:
        save_site_state(self.store, state)
        self.state = state

    def _schedule(self, decision: Decision) -> None:
        current = self.state.current
        not_after = current.not_after if current else None
        write_marker(self.store, self.site, decision.next_check, not_after)

    def _outcome(self, result: str, reason: str, **extra) -> Outcome:
        current = self.state.current
        version = current.version if current else None
        not_after = current.not_after if current else None
        return Outcome(self.site.id, result, reason, version, not_after, **extra)

    def _with_window(self, state: SiteState) -> SiteState:
        """The state with the CA's current renewal window (ARI), when the CA offers one; on a
        failed fetch the old window stays and the next check is in an hour."""
        url = self._client().renewal_info_url
        if url is None or state.current is None or state.current.ari_id is None:
            return state
        session = requests.Session()
        if self.runner.config.ca.ca_bundle:
            session.verify = str(self.runner.config.ca.ca_bundle)
        try:
            suggested = fetch_window(url, state.current.ari_id, session=session, now=self.now)
        except AcmeError as exc:
            log.warning("no renewal info: %s", exc, extra={"site": state.site})
            if state.window is None:
                return state
            later = replace(state.window, next_check=self.now + timedelta(hours=1))
            return replace(state, window=later)
        finally:
            session.close()
        old = state.window
        same = old is not None and (old.start, old.end) == (suggested.start, suggested.end)
        renew_at = (
            old.renew_at
            if old is not None and same
            else pick_renewal_time(suggested, self.now, self.runner.rng)
        )
        window = RenewalWindow(
            suggested.start,
            suggested.end,
            renew_at,
            suggested.retry_after,
            suggested.explanation_url,
        )
        return replace(state, window=window)

    def _client(self) -> AcmeClient:
        if self._acme is None:
            self._acme = AcmeClient(self.runner.config.ca, self.runner.keys)
            self._acme.connect()
        return self._acme

    def _solver(self) -> Dns01Solver:
        config = self.runner.config
        return Dns01Solver(
            self.site.provider,
            parts.provider(config, self.site.provider),
            config.dns,
            ChallengeJournal(self.store, self.site.id),
            provider_by_name=lambda name: parts.provider(config, name),
        )


def _window_stale(state: SiteState, now: datetime) -> bool:
    """The CA's window should be (re)read: never read for this certificate, or its time came."""
    if state.current is None or state.current.ari_id is None:
        return False
    return state.window is None or state.window.next_check <= now


def _replaces(site: SiteConfig, state: SiteState) -> str | None:
    """The CertID a renewal replaces; none when the names changed (a different certificate)."""
    current = state.current
    if current is None or "names" in changes(site, current):
        return None
    return current.ari_id


def _next_version(state: SiteState) -> int:
    return state.current.version + 1 if state.current else 1
