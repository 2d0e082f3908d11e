"""One run of one site, safe to repeat: lock, decide, issue (or resume), publish, record.

The same core serves the `issue` Lambda (one site per queue message) and `certdrop run` (a thread
pool). A run holds the site's lock for its whole length; it saves the order URL before touching
any challenge, so a run killed after ordering is resumed by the next one instead of ordering
again; a delivery of the same message after success finds the site not due and does nothing.
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

from cloud import runtime
from cloud.acme_client import AcmeClient
from cloud.ari import fetch_window, pick_renewal_time
from cloud.challenges import ChallengeJournal, Dns01Solver
from cloud.config import Config, SiteConfig
from cloud.errors import AcmeError, CertdropError
from cloud.issuance import issue
from cloud.issuer import load_issuer
from cloud.keystore import KeyStore
from cloud.lock import Locked
from cloud.publish import Publisher
from cloud.renewal import Decision, backoff, decide
from cloud.schedule import write_marker
from cloud.sitestate import ErrorRecord, RenewalWindow, SiteState, load_site_state, save_site_state
from cloud.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    site: str
    result: str  # "issued", "not due", "failed" or "locked"
    reason: str
    version: int | None = None
    not_after: datetime | None = None
    error: CertdropError | None = None


class Runner:
    def __init__(
        self,
        config: Config,
        store: Store,
        keys: KeyStore,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ):
        self.config = config
        self.store = store
        self.keys = keys
        self.now = now
        self.rng = rng or random.SystemRandom()
        self.publisher = Publisher(store, load_issuer(keys), now=now)

    def run_many(
        self, site_ids: Sequence[str], *, concurrency: int = 1, force: bool = False
    ) -> list[Outcome]:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda s: self.run_site(s, force=force), site_ids))

    def run_site(self, site_id: str, *, force: bool = False) -> Outcome:
        site = runtime.site(self.config, site_id)
        lock = runtime.site_lock(self.config, self.store, site.id, now=self.now)
        try:
            lock.acquire()
        except Locked as exc:
            log.info("%s", exc, extra={"site": site.id})
            return Outcome(site.id, "locked", str(exc))
        try:
            return self._run(site, force)
        finally:
            lock.release()

    def _run(self, site: SiteConfig, force: bool) -> Outcome:
        now = self.now()
        state = load_site_state(self.store, site.id) or SiteState(site.id)
        acme: AcmeClient | None = None
        try:
            if _window_stale(state, now):
                acme = self._acme()
                state = self._with_window(acme, state, now)
                save_site_state(self.store, state)
            decision = decide(site, state, now)
            if not (decision.due or force):
                self._schedule(site, state, decision)
                return Outcome(site.id, "not due", decision.reason, _version(state), _expiry(state))
            acme = acme or self._acme()
            cert = issue(
                site,
                acme,
                self._solver(site),
                order_timeout=self.config.ca.order_timeout,
                preferred_chain=self.config.ca.preferred_chain,
                replaces=_replaces(site, state),
                resume_order=state.order_url,
                on_order=lambda url: self._order_placed(state, url, now),
            )
            published = self.publisher.publish(cert)
        except CertdropError as exc:
            return self._failed(site, exc, now)
        state = replace(published, failures=0, next_attempt=None, last_error=None, window=None)
        state = self._with_window(acme, state, now)
        save_site_state(self.store, state)
        self._schedule(site, state, decide(site, state, now))
        reason = decision.reason if decision.due else "forced"
        return Outcome(site.id, "issued", reason, _version(state), _expiry(state))

    def _order_placed(self, state: SiteState, url: str, now: datetime) -> None:
        save_site_state(self.store, state.with_order(url, now))
        log.info("order saved: a run dying from here on is resumed", extra={"site": state.site})

    def _failed(self, site: SiteConfig, exc: CertdropError, now: datetime) -> Outcome:
        log.error("run failed: %s", exc, extra={"site": site.id})
        # Reload: the run may have saved an order URL worth resuming.
        state = load_site_state(self.store, site.id) or SiteState(site.id)
        failures = state.failures + 1
        retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
        state = replace(
            state,
            failures=failures,
            next_attempt=backoff(failures, now, self.rng, retry_after),
            last_error=ErrorRecord(
                code=getattr(exc, "code", type(exc).__name__),
                message=str(exc),
                at=now,
                transient=exc.transient,
            ),
        )
        save_site_state(self.store, state)
        self._schedule(site, state, decide(site, state, now))
        return Outcome(site.id, "failed", str(exc), _version(state), _expiry(state), error=exc)

    def _schedule(self, site: SiteConfig, state: SiteState, decision: Decision) -> None:
        write_marker(self.store, site, decision.next_check, _expiry(state))

    def _with_window(self, acme: AcmeClient, state: SiteState, now: datetime) -> SiteState:
        """The state with the CA's current renewal window (ARI), when the CA offers one; on a
        failed fetch the old window stays and the next check is in an hour."""
        url = acme.renewal_info_url
        if url is None or state.current is None or state.current.ari_id is None:
            return state
        session = requests.Session()
        if self.config.ca.ca_bundle:
            session.verify = str(self.config.ca.ca_bundle)
        try:
            suggested = fetch_window(url, state.current.ari_id, session=session, now=now)
        except AcmeError as exc:
            log.warning("no renewal info: %s", exc, extra={"site": state.site})
            if state.window is None:
                return state
            return replace(state, window=replace(state.window, next_check=now + timedelta(hours=1)))
        finally:
            session.close()
        same = state.window is not None and (state.window.start, state.window.end) == (
            suggested.start,
            suggested.end,
        )
        renew_at = state.window.renew_at if same else pick_renewal_time(suggested, now, self.rng)
        window = RenewalWindow(
            suggested.start,
            suggested.end,
            renew_at,
            suggested.retry_after,
            suggested.explanation_url,
        )
        return replace(state, window=window)

    def _acme(self) -> AcmeClient:
        client = AcmeClient(self.config.ca, self.keys)
        client.connect()
        return client

    def _solver(self, site: SiteConfig) -> Dns01Solver:
        return Dns01Solver(
            site.provider,
            runtime.provider(self.config, site.provider),
            self.config.dns,
            ChallengeJournal(self.store, site.id),
            provider_by_name=lambda name: runtime.provider(self.config, name),
        )


def _window_stale(state: SiteState, now: datetime) -> bool:
    """The CA's window should be (re)read: never read for this certificate, or its time came."""
    if state.current is None or state.current.ari_id is None:
        return False
    return state.window is None or state.window.next_check <= now


def _replaces(site: SiteConfig, state: SiteState) -> str | None:
    """The CertID a renewal replaces; none when the names changed (a different certificate)."""
    current = state.current
    if current is None or set(current.names) != set(site.names):
        return None
    return current.ari_id


def _version(state: SiteState) -> int | None:
    return state.current.version if state.current else None


def _expiry(state: SiteState) -> datetime | None:
    return state.current.not_after if state.current else None
