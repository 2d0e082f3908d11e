# Over 300 lines: the recorded state machine of DESIGN §9 — each step saves what the next run needs.
"""The one issuance pipeline: a run of one site, safe to repeat (DESIGN §9).

    lock → read state → TXT values left before? remove → ARI window → finish what a dead run
    recorded (pending certificate, undelivered agents, an order in flight) → decide → tokens
    taken in the CA's rate limits (cloud.limiter; none: waiting, nothing ordered) → note the
    order is being placed → order (URL saved as the CA returns it) or resume → challenges →
    key sealed to escrow beside the order → finalize → version reserved → escrow copy → state
    "pending" → deliveries, one per agent → state "current" → schedule marker

Each step saves what a later run needs to finish the work, so a run killed at any point is
finished by the next: never a second order for one certificate, never a certificate thrown
away, never one version with two certificates. `certdrop issue` is this run forced;
`certdrop run` (a thread pool), the `issue` Lambda and so the tick's messages all come here. The
site state is read once per run and written only here. Failures are recorded with an exponential
backoff and rescheduled, never retried in a loop; one agent that cannot be written is that
agent's pending delivery; TXT values a run could not remove are retried by every run. What is
delivered from escrow (a recorded certificate, a redelivery) comes only from a copy the issuer's
statement vouches for (`cloud.publish.escrow_statements`): the site state is unsigned, so a
recorded certificate with any other copy is dropped, and a redelivery leaves its agents pending.

A dns-persist-01 site's record check is recorded as it happens; between issuances the site is
looked at daily to read its record again. A CA that offers no challenge of the site's type is
recorded so that the site is not ordered again until its configuration or ca.directory changes.
A renewal the CA refuses because its certificate already has a replacement (alreadyReplaced)
that this state did not record is ordered once without `replaces` and recorded for the alerts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from cryptography.exceptions import InvalidTag

from cloud.acme.ari import SuggestedWindow, pick_renewal_time
from cloud.acme.challenge_types import ChallengeType
from cloud.acme.client import AcmeClient
from cloud.acme.order import Authorizer, IssuedCertificate, issue
from cloud.config import Config, KeyCustody, SiteConfig
from cloud.dns01.solver import ChallengeJournal
from cloud.errors import (
    AcmeError,
    CertdropError,
    EscrowUnavailable,
    KeptKeyMismatch,
    Locked,
    OrderGone,
    RateLimited,
    StoreError,
    ValidationFailed,
    WaitingForLimits,
)
from cloud.keys.store import KeyStore
from cloud.limiter.gate import OrderGate
from cloud.limiter.orders import OrderKind
from cloud.pipeline import parts
from cloud.pipeline.renewal import Decision, backoff, changes, decide, persist_look
from cloud.pipeline.schedule import write_marker
from cloud.pipeline.site_state import (
    CertificateRecord,
    ErrorRecord,
    RenewalWindow,
    ReplacedElsewhere,
    SiteState,
    load_site_state,
    save_site_state,
)
from cloud.publish.order_keys import open_order_key, seal_order_key
from cloud.publish.versions import check_in_range, reserve_next
from cloud.store import Store, conditional_writes

if TYPE_CHECKING:  # types only: a run that publishes nothing imports none of them
    from cloud.dns01.persist.check import RecordCheck
    from cloud.publish.publisher import Publisher
    from nas_agent.bundle import BundlePlaintext

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# Pauses between tries of a store write that holds the CA's work (an order, a certificate).
_STORE_RETRY_PAUSES = (0.2, 1.0, 3.0)


@dataclass(frozen=True)
class Outcome:
    site: str
    result: str  # "issued", "not due", "failed", "locked" or "waiting" (the CA's limits)
    reason: str
    version: int | None = None  # the published version; None when nothing is published
    not_after: datetime | None = None
    error: CertdropError | None = None
    # The certificate this run issued (for `certdrop issue --out`); never logged, see its repr.
    certificate: IssuedCertificate | None = None
    # Agents the site's current certificate has not reached yet, retried every run.
    undelivered: tuple[str, ...] = ()
    # TXT values left in DNS ("fqdn value"), retried every run.
    leftover_txt: tuple[str, ...] = ()
    # Nothing of the site ran: another run holds it, or its lock could not be taken. The
    # issue function hands such a message back to the queue for later.
    not_run: bool = False


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
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config
        self.store = store
        self.keys = keys
        self.publisher = publisher
        self.now = now
        self.rng = rng or random.SystemRandom()
        self.sleep = sleep
        # Locks need them: probed when the store is new to this record, else one GET per runner.
        self._store_gate = conditional_writes.Gate(store)
        # One session with the CA per worker thread, kept for the sites it runs next: the
        # directory is fetched, the account loaded and the TLS connection made once per worker.
        self._acme_sessions = threading.local()
        # The CA's rate limits: each new order takes its tokens first (cloud.limiter).
        self.limits = OrderGate(config.ca.limits, store, config.ca.directory)

    def run_many(
        self, site_ids: Sequence[str], *, concurrency: int = 1, force: bool = False
    ) -> list[Outcome]:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda s: self.run_site(s, force=force), site_ids))

    def acme_session(self) -> AcmeClient:
        """This thread's client of the CA, connected at its first use and reused by the sites
        the thread runs after (an AcmeClient is not shared between threads)."""
        client: AcmeClient | None = getattr(self._acme_sessions, "client", None)
        if client is None:
            client = AcmeClient(self.config.ca, self.keys)
            client.connect()
            self._acme_sessions.client = client
        return client

    def run_site(self, site_id: str, *, force: bool = False) -> Outcome:
        """Raises ConfigError for a site not configured, unless its runs left TXT values: the
        run then only removes those (`_unconfigured`)."""
        site = self.config.sites.get(site_id)
        if site is None and not self._journalled(site_id):
            parts.site(self.config, site_id)  # raises, naming the sites there are
        lock = parts.site_lock(self.config, self.store, site_id, now=self.now)
        try:
            self._store_gate.require()
            lock.acquire()
        except Locked as exc:
            log.info("%s", exc, extra={"site": site_id})
            return Outcome(site_id, "locked", str(exc), error=exc, not_run=True)
        except CertdropError as exc:  # the store failed: this site's outcome, not the run's end
            log.error("lock not taken: %s", exc, extra={"site": site_id})
            return Outcome(site_id, "failed", f"lock not taken: {exc}", error=exc, not_run=True)
        try:
            if site is None:
                return self._unconfigured(site_id)
            try:
                if site.key_custody is KeyCustody.AGENT:
                    from cloud.pipeline.agent_custody import AgentCustodyRun

                    run: AgentCustodyRun | _SiteRun = AgentCustodyRun(self, site)
                else:
                    run = _SiteRun(self, site)
            except CertdropError as exc:  # its state not read: this site's outcome, not the run's
                log.error("site state not read: %s", exc, extra={"site": site_id})
                return Outcome(site_id, "failed", f"state not read: {exc}", error=exc, not_run=True)
            return run.run(force)
        finally:
            try:
                lock.release()
            except CertdropError as exc:  # it expires on its own; the outcome stands
                log.error("lock not released: %s", exc, extra={"site": site_id})

    def _journalled(self, site_id: str) -> bool:
        """Whether the site's challenge journal lists values; a malformed one counts (its read
        set it aside, and the site's run says so)."""
        try:
            return bool(ChallengeJournal(self.store, site_id).entries())
        except CertdropError as exc:
            log.warning("challenge journal: %s", exc, extra={"site": site_id})
            return True

    def _unconfigured(self, site_id: str) -> Outcome:
        """A site taken out of the configuration (by `certdrop site remove`, or from the file)
        while TXT values its runs placed were still in DNS: they go, through the providers that
        placed them; what stays is retried by every run and tick until given up."""
        try:
            left = parts.sweep(self.config, site_id, self.store, self.now)
            leftovers = ChallengeJournal(self.store, site_id).leftovers() if left else ()
        except CertdropError as exc:
            log.error("TXT values still left: %s", exc, extra={"site": site_id})
            return Outcome(site_id, "failed", f"no longer configured; TXT values: {exc}", error=exc)
        reason = f"{len(leftovers)} TXT value(s) still left" if left else "TXT values removed"
        return Outcome(
            site_id, "not due", f"no longer configured; {reason}", leftover_txt=leftovers
        )


class _SiteRun:
    """One run's record: the state as last written, so the run reads it once."""

    def __init__(self, runner: Runner, site: SiteConfig):
        self.runner = runner
        self.site = site
        self.store = runner.store
        self.now = runner.now()
        self.state = load_site_state(self.store, site.id) or SiteState(site.id)
        self._acme: AcmeClient | None = None
        self._touched_dns = False  # this run placed (or tried to place) dns-01 TXT values
        self._force = False
        self._ahead_of_schedule = False  # a forced run of a site its marker says is not due
        self._ordered: OrderKind | None = None  # the kind of order this run took tokens for
        self._top: int | None = None  # the highest version the issuer chose (_trusted_top)

    def run(self, force: bool) -> Outcome:
        self._force = force
        try:
            self._sync_key_requests()
            self._sweep_leftovers()
            if _window_stale(self.state, self.now):
                self._save(self._with_window(self.state))
            if self.state.pending is not None and self.runner.publisher is not None:
                # A run died after recording its certificate: finish that, order nothing.
                try:
                    return self._publish(
                        self.runner.publisher, None, "finishing a recorded issuance"
                    )
                except EscrowUnavailable as exc:  # raised before anything is delivered
                    self._drop_pending(exc)
            if self.state.undelivered and self.runner.publisher is not None:
                self._redeliver(self.runner.publisher)
            decision = self._decide()
            backing_off = self.state.next_attempt is not None and self.state.next_attempt > self.now
            if not (decision.due or force or backing_off) and self._interrupted_order():
                # A run died with an order in flight (a forced one, say): finish that order,
                # never place a new one for a site that is not due. A run that failed with an
                # order in flight waits out its backoff like any other.
                return self._finish_interrupted_order(decision)
            if not (decision.due or force):
                if (look := persist_look(self.site, self.state, self.now)) and look <= self.now:
                    self._look_at_persist_records()
                    decision = self._decide()
                self._schedule(decision)
                return self._outcome("not due", decision.reason)
            self._ahead_of_schedule = not decision.due
            cert = self._issue()
            if self.runner.publisher is None:
                self._save(self.state.with_order(None, None))
                return self._outcome("issued", "not published", certificate=cert)
            return self._publish(
                self.runner.publisher, cert, decision.reason if decision.due else "forced"
            )
        except WaitingForLimits as wait:  # nothing ordered: looked at again when it fits
            log.info("%s", wait, extra={"site": self.site.id})
            try:
                self._schedule(Decision(False, str(wait), wait.go_at))
            except CertdropError as exc:  # the site stays due: the next tick plans it again
                log.error("next check not recorded: %s", exc, extra={"site": self.site.id})
            return self._outcome("waiting", str(wait), error=wait)
        except CertdropError as exc:
            return self._failed(exc)

    def _issue(self, *, resume_only: bool = False) -> IssuedCertificate:
        self._touched_dns = self.site.challenge is ChallengeType.DNS_01
        return issue(
            self.site,
            self._client(),
            self._authorizer(),
            order_timeout=self.runner.config.ca.order_timeout,
            preferred_chain=self.runner.config.ca.preferred_chain,
            replaces=_replaces(self.site, self.state),
            resume_order=self._interrupted_order(),
            on_order=self._order_placed,
            on_replaces_refused=self._replaces_refused,
            order_key=self._order_key(),
            on_finalizing=self._keep_order_key,
            resume_only=resume_only,
            on_ordering=self._ordering,
        )

    def _sync_key_requests(self) -> None:
        """The site's agents' key requests, when the site left agent custody: written only when
        they differ (cloud.custody.key_requests). A site never in agent custody has nothing to
        withdraw, so its runs read no registry here (`certdrop run` and the tick's re-sign
        message sync every agent once)."""
        publisher = self.runner.publisher
        if publisher is None or not self.state.agents:
            return
        from cloud.custody import key_requests

        records = [r for r in publisher.registry.all() if self.site.id in r.sites]
        key_requests.sync(publisher, self.runner.config, self.now, records)

    def _ordering(self) -> None:
        self._check_versions_left()
        self._take_tokens(self._order_kind())
        if self._ahead_of_schedule:
            # Its marker names a check weeks away, and the tick and `certdrop run` go by the
            # markers: were this run to die with the order in flight or the certificate
            # recorded, no scheduled run would finish it. Due now, until the run's end
            # writes the real next check.
            now_due = Decision(True, "a forced run is ordering", self.now)
            self._durably("schedule the site now", lambda: self._schedule(now_due))
        self._durably(
            "note the order", lambda: self._save(replace(self.state, ordering_since=self.now))
        )

    def _interrupted_order(self) -> str | None:
        """The order a dead run left: its recorded URL, or — when it died between sending the
        newOrder and recording the answer — the one the account's order list holds."""
        if self.state.order_url is not None or self.state.ordering_since is None:
            return self.state.order_url
        found = self._client().find_order(self.site.names)
        self._save(self.state.with_order(found, self.state.ordering_since if found else None))
        if found is not None:
            log.info("found the order a dead run placed: %s", found, extra={"site": self.site.id})
        return found

    def _finish_interrupted_order(self, decision: Decision) -> Outcome:
        try:
            cert = self._issue(resume_only=True)
        except OrderGone as gone:
            log.info("%s: nothing to finish", gone, extra={"site": self.site.id})
            self._save(self.state.with_order(None, None))
            self._schedule(decision)
            return self._outcome("not due", decision.reason)
        if self.runner.publisher is None:
            self._save(self.state.with_order(None, None))
            return self._outcome("issued", "not published", certificate=cert)
        return self._publish(self.runner.publisher, cert, "finishing an interrupted order")

    def _publish(
        self, publisher: Publisher, cert: IssuedCertificate | None, reason: str
    ) -> Outcome:
        """Records the certificate (version reserved, escrow written, state saved as pending)
        before any agent sees it, then delivers it agent by agent, then makes it current. With
        `cert` None, finishes the pending one a dead run recorded."""
        if cert is not None:
            record, plaintext = self._durably(
                "record the certificate", lambda: self._record_issued(publisher, cert)
            )
        else:
            assert self.state.pending is not None
            record = self.state.pending
            plaintext = publisher.open_escrow(self.site.id, record)
        undelivered = publisher.deliver_all(plaintext)
        previous = self.state.current
        issued = replace(
            self.state,
            current=record,
            pending=None,
            undelivered=undelivered,
            failures=0,
            next_attempt=None,
            last_error=None,
            window=None,
            challenge_unavailable=None,
        )
        self._save(self._with_window(issued))
        if previous is not None and previous.escrow_object != record.escrow_object:
            # Only now: until the new state was saved, the old escrow copy was the recorded one.
            try:
                publisher.retire(previous)
            except CertdropError as exc:  # a stale copy nothing names; the issuance stands
                log.warning("old escrow copy not deleted: %s", exc, extra={"site": self.site.id})
        self._schedule(self._decide())
        return self._outcome("issued", _with_pending(reason, undelivered), certificate=cert)

    def _record_issued(
        self, publisher: Publisher, cert: IssuedCertificate
    ) -> tuple[CertificateRecord, BundlePlaintext]:
        """Version reserved, escrow copy written, state saved as pending: from here on the
        certificate survives the run. Each step may repeat (a reservation made by a failed
        attempt stays reserved, unused)."""
        current = self.state.current
        version = self._reserve(publisher, cert, above=current.version if current else 0)
        record, plaintext = publisher.escrow(cert, version)
        self._save(
            replace(
                self.state, pending=record, order_url=None, order_placed_at=None, order_key=None
            )
        )
        return record, plaintext

    def _check_versions_left(self) -> None:
        """Before anything is ordered: a certificate no version is left for would be issued,
        then thrown away, by every run."""
        if self.runner.publisher is not None:
            check_in_range(self.site.id, self._trusted_top(self.runner.publisher) + 1)

    def _reserve(self, publisher: Publisher, cert: IssuedCertificate, *, above: int) -> int:
        """The certificate's version (cloud.publish.versions): `above` (the unsigned state's)
        counts only near the highest version the issuer chose, which this one now is."""
        self._top = reserve_next(
            self.store,
            self.site.id,
            cert.fingerprint_sha256,
            trusted_top=self._trusted_top(publisher),
            above=above,
        )
        return self._top

    def _trusted_top(self, publisher: Publisher) -> int:
        """The highest version of the site the issuer vouched for, from its statements read
        once a run (the site's lock keeps other runs out), then what this run reserved."""
        if self._top is None:
            self._top = publisher.escrow_statements.top_version(self.site.id)
        return self._top

    def _durably(self, what: str, step: Callable[[], _T]) -> _T:
        """Retries a store step whose failure would throw away what the CA already did (an
        order placed, a certificate issued): a few tries, a short pause between them."""
        for pause in _STORE_RETRY_PAUSES:
            try:
                return step()
            except StoreError as exc:
                log.warning("%s: %s; trying again", what, exc, extra={"site": self.site.id})
                self.runner.sleep(pause)
        return step()

    def _redeliver(self, publisher: Publisher) -> None:
        """The current certificate to the agents a run could not reach: no new order. From a
        copy the issuer did not vouch for, or one it cannot deliver (missing, expired), nothing:
        those agents stay pending with its code, and the run goes on to decide, so an expired
        certificate is renewed (the next issuance reaches them)."""
        assert self.state.current is not None
        try:
            plaintext = publisher.open_escrow(self.site.id, self.state.current)
        except EscrowUnavailable as exc:  # forged, missing, or expired: the renewal reaches them
            log.error("nothing redelivered: %s: %s", exc.code, exc, extra={"site": self.site.id})
            why = f"{exc.code}: {exc}"
            undelivered = dict.fromkeys(self.state.undelivered, why)
        else:
            undelivered = publisher.deliver_all(plaintext, only=set(self.state.undelivered))
        self._save(replace(self.state, undelivered=undelivered))

    def _drop_pending(self, exc: EscrowUnavailable) -> None:
        """A recorded issuance whose escrow copy the issuer did not vouch for is none of its
        own (or predates statements); one whose copy is missing, or whose certificate expired
        before a run came to finish it, cannot be delivered either. Dropped (its version stays
        reserved), never delivered, and the run goes on as if no run had died, ordering when the
        site is due. Its copy stays: the unsigned record may name a genuine one."""
        log.error("recorded issuance dropped: %s: %s", exc.code, exc, extra={"site": self.site.id})
        self._save(replace(self.state, pending=None))

    def _keep_order_key(self, url: str, key_pem: bytes) -> None:
        """Just before finalize: the key, sealed to the escrow key, beside the order's URL."""
        publisher = self.runner.publisher
        if publisher is None:
            return  # before `certdrop init` there is no escrow key to seal it to
        sealed = seal_order_key(
            key_pem, publisher.issuer.escrow_key.public_key(), self.site.id, url
        )
        state = replace(self.state.with_order(url, self.state.order_placed_at), order_key=sealed)
        self._durably("keep the order's key", lambda: self._save(state))

    def _order_key(self) -> bytes | None:
        """The key an interrupted run finalized its order with, when it kept one."""
        publisher, state = self.runner.publisher, self.state
        if publisher is None or state.order_key is None or state.order_url is None:
            return None
        issuer = publisher.issuer
        try:
            return open_order_key(
                state.order_key,
                (issuer.escrow_key, *issuer.retired_escrow_keys),
                self.site.id,
                state.order_url,
            )
        except (InvalidTag, ValueError) as exc:  # not sealed by the issuer: base64 or HPKE fails
            # As if none was kept: a finalized order is then not resumed, a new one is placed.
            log.warning(
                "the kept order key cannot be opened: %r", exc, extra={"site": self.site.id}
            )
            return None

    def _order_placed(self, url: str) -> None:
        if url == self.state.order_url:
            # A resumed order: recorded already, perhaps with the key it was finalized with
            # beside it, which a second failed download must not lose (no second order then).
            return
        self._durably("save the order", lambda: self._save(self.state.with_order(url, self.now)))
        log.info("order saved: a run dying from here on is resumed", extra={"site": self.site.id})

    def _replaces_refused(self, exc: AcmeError) -> None:
        """The CA refused the renewal's `replaces`; it is ordered again without, which takes
        tokens. When it says the certificate has a replacement already and this state recorded
        an order, that was it (finished, its key lost with its run); else it was ordered
        elsewhere, which an operator should know: recorded, counted, alerted."""
        current = self.state.current
        if (
            exc.problem == "alreadyReplaced"
            and self.state.order_url is None
            and current is not None
            and current.ari_id is not None
        ):
            record = ReplacedElsewhere(current.ari_id, self.now, exc.detail)
            count = self.state.replaced_elsewhere_count + 1
            elsewhere = replace(self.state, replaced_elsewhere=record)
            self._save(replace(elsewhere, replaced_elsewhere_count=count))
        self._take_tokens(OrderKind.RENEWAL)  # ordered again without `replaces`

    def _order_kind(self) -> OrderKind:
        """What the CA counts the new order as: it `replaces` the current certificate (ARI),
        renews its names, or is a first issuance of these names."""
        if _replaces(self.site, self.state) is not None:
            return OrderKind.ARI_RENEWAL
        current = self.state.current
        if current is not None and "names" not in changes(self.site, current):
            return OrderKind.RENEWAL
        return OrderKind.FIRST

    def _take_tokens(self, kind: OrderKind) -> None:
        """The order's tokens in the CA's limits, or WaitingForLimits (nothing is ordered)."""
        self.runner.limits.take(self.site, kind, self.runner.now(), force=self._force)
        self._ordered = kind

    def _tell_limits(self, exc: CertdropError) -> None:
        """What the CA's refusal says of its limits; a store failing here loses only that."""
        if self._ordered is None:
            return
        try:
            if isinstance(exc, RateLimited):
                now = self.runner.now()
                self.runner.limits.refused(self.site, self._ordered, exc.retry_after, now)
            elif isinstance(exc, ValidationFailed):
                failed = [identifier for identifier, _, _ in exc.failures]
                self.runner.limits.failed_authorizations(self.site, failed, self.runner.now())
        except CertdropError as unrecorded:
            log.error("limits not recorded: %s", unrecorded, extra={"site": self.site.id})

    def _failed(self, exc: CertdropError) -> Outcome:
        # The dns-persist-01 watch only where needed: importing it is not free (issue 16).
        from cloud.pipeline import persist_watch

        log.error("run failed: %s", exc, extra={"site": self.site.id})
        self._tell_limits(exc)
        failures = self.state.failures + 1
        retry_after = exc.retry_after if isinstance(exc, AcmeError) else None
        failed = replace(
            self.state,
            failures=failures,
            next_attempt=backoff(failures, self.now, self.runner.rng, retry_after),
            last_error=ErrorRecord(
                code=exc.code, message=str(exc), at=self.now, transient=exc.transient
            ),
            challenge_unavailable=persist_watch.refusal(exc, self.site, self.now),
        )
        if isinstance(exc, KeptKeyMismatch):
            failed = failed.with_order(None, None)  # resuming it again would fail again
        reason = str(exc)
        if self.state.pending is not None:
            reason += (
                f" (version {self.state.pending.version} is recorded and may already have "
                "reached agents; the next run finishes it, with no new order)"
            )
        try:
            self._save(failed)
            self._schedule(self._decide())
        except CertdropError as unrecorded:
            # The store failing too must not lose this outcome (nor the run's table): say it.
            log.error("failure not recorded: %s", unrecorded, extra={"site": self.site.id})
            reason = f"{reason} (and not recorded: {unrecorded})"
        return self._outcome("failed", reason, error=exc)

    def _decide(self) -> Decision:
        return decide(self.site, self.state, self.now, directory=self.runner.config.ca.directory)

    def _persist_checked(self, checks: tuple[RecordCheck, ...], account: str) -> None:
        from cloud.pipeline import persist_watch

        self._save(replace(self.state, persist=persist_watch.seen(checks, account)))

    def _look_at_persist_records(self) -> None:
        """A dns-persist-01 site between issuances: its records read again (daily), for the
        status and the alerts. Not a failure of the run when the CA cannot be reached."""
        try:
            acme = self._client()
        except CertdropError as exc:
            log.warning("dns-persist-01 record not read: %s", exc, extra={"site": self.site.id})
            return
        from cloud.pipeline import persist_watch

        found = persist_watch.look(self.site, acme, self.runner.config.dns, self.now)
        self._save(replace(self.state, persist=found))

    def _save(self, state: SiteState) -> None:
        save_site_state(self.store, state)
        self.state = state

    def _schedule(self, decision: Decision) -> None:
        current = self.state.current
        not_after = current.not_after if current else None
        write_marker(self.store, self.site, decision.next_check, not_after)

    def _sweep_leftovers(self) -> None:
        """Removes the TXT values an earlier run could not (every run, not only the next
        issuance, and also once the site moved to dns-persist-01); what stays is recorded for
        status and alerts, never a reason to fail."""
        try:
            journalled = bool(ChallengeJournal(self.store, self.site.id).entries())
        except CertdropError as exc:  # a malformed journal, set aside by the read
            log.warning("challenge journal: %s", exc, extra={"site": self.site.id})
            journalled = True  # what status shows of it is noted below
        if journalled:
            try:
                parts.sweep(self.runner.config, self.site.id, self.store, self.runner.now)
            except CertdropError as exc:
                log.warning("TXT values still left: %s", exc, extra={"site": self.site.id})
            self._note_leftovers()
        elif self.state.leftover_txt:
            self._save(replace(self.state, leftover_txt=()))

    def _note_leftovers(self) -> None:
        left = ChallengeJournal(self.store, self.site.id).leftovers()
        if left != self.state.leftover_txt:
            self._save(replace(self.state, leftover_txt=left))

    def _outcome(self, result: str, reason: str, **extra) -> Outcome:
        if self._touched_dns:  # only a run that placed values can have left new ones
            try:
                self._note_leftovers()
            except CertdropError as exc:
                log.error("TXT leftovers not recorded: %s", exc, extra={"site": self.site.id})
        if self.state.leftover_txt:
            left = ", ".join(self.state.leftover_txt)
            reason = f"{reason}; TXT values left in DNS, retried every run: {left}"
        current = self.state.current
        version = current.version if current else None
        not_after = current.not_after if current else None
        pending = tuple(sorted(self.state.undelivered))
        return Outcome(
            self.site.id,
            result,
            reason,
            version,
            not_after,
            undelivered=pending,
            leftover_txt=self.state.leftover_txt,
            **extra,
        )

    def _with_window(self, state: SiteState) -> SiteState:
        """The state with the CA's current renewal window (ARI), when the CA offers one; on a
        failed fetch the old window stays and the next check is in an hour."""
        if state.current is None or state.current.ari_id is None:
            return state
        try:
            # Connecting is inside: a CA that cannot be reached must not fail a run that only
            # redelivers or finishes a recorded certificate, neither of which needs the CA.
            acme = self._client()
            if acme.renewal_info_url is None:
                return state
            suggested = acme.renewal_window(state.current.ari_id, self.now)
        except AcmeError as exc:
            log.warning("no renewal info: %s", exc, extra={"site": state.site})
            if state.window is None:
                return state
            later = replace(state.window, next_check=self.now + timedelta(hours=1))
            return replace(state, window=later)
        return replace(
            state, window=kept_window(state.window, suggested, self.now, self.runner.rng)
        )

    def _client(self) -> AcmeClient:
        if self._acme is None:
            self._acme = self.runner.acme_session()
        return self._acme

    def _authorizer(self) -> Authorizer:
        return parts.authorizer(
            self.runner.config,
            self.site,
            self.store,
            on_persist_check=self._persist_checked,
            now=self.runner.now,
        )


def _window_stale(state: SiteState, now: datetime) -> bool:
    """The CA's window should be (re)read: never read for this certificate, or its time came."""
    if state.current is None or state.current.ari_id is None:
        return False
    return state.window is None or state.window.next_check <= now


def _replaces(site: SiteConfig, state: SiteState) -> str | None:
    """The CertID a renewal replaces; none when the names changed (a different certificate)
    or the CA already said it was replaced elsewhere (asking again is refused again)."""
    current = state.current
    if current is None or "names" in changes(site, current):
        return None
    elsewhere = state.replaced_elsewhere
    if elsewhere is not None and elsewhere.cert_id == current.ari_id:
        return None
    return current.ari_id


def _with_pending(reason: str, undelivered: dict[str, str]) -> str:
    if not undelivered:
        return reason
    # Each why starts with its error's code ("registry.record_tampered: …"): name the code.
    agents = ", ".join(f"{a} ({undelivered[a].split(':')[0]})" for a in sorted(undelivered))
    return f"{reason}; not yet delivered to {agents} (retried every run)"


def kept_window(
    old: RenewalWindow | None, suggested: SuggestedWindow, now: datetime, rng: random.Random
) -> RenewalWindow:
    """The CA's suggested window as the state keeps it: the renewal time picked in it stays as
    long as the CA suggests the same window, so asking again does not move it."""
    same = old is not None and (old.start, old.end) == (suggested.start, suggested.end)
    renew_at = old.renew_at if old is not None and same else pick_renewal_time(suggested, now, rng)
    return RenewalWindow(
        suggested.start, suggested.end, renew_at, suggested.retry_after, suggested.explanation_url
    )
