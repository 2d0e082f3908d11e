# Over 300 lines: the per-agent state machine of an agent-custody site's run, each step recorded.
"""A run of an agent-custody site (docs/key-custody.md): one certificate per agent, ordered with
the CSR the agent signed; no private key anywhere on this side.

    lock (site_run) → TXT values left before? remove → key requests up to date → backing off?
    deliver what is recorded, nothing else → per subscribed agent, in turn: a recorded
    certificate not delivered? deliver → an order in flight? its journalled statement checked
    again (refused: the order is dropped), then finish it → read and check its CSR statement
    (refusal recorded, the next agent goes on) → due? (no certificate, renewal) → tokens in the
    CA's limits (none: that agent waits) → order journalled with its CSR and statement → order
    (URL saved) → challenges → finalize → version reserved → escrow copy (leaf only) → state
    "pending" → delivered to that agent → state "current" → then the agents whose statement
    asks for a rekey alone, held back (waiting) while a due order of the site waits for tokens
    or when the agent had a rekey order in the last 24 hours → schedule marker

The same guarantees as the issuer-custody run (cloud.pipeline.site_run), per agent: an order is
journalled with its CSR before it is sent and resumed by the next run, a CSR's sequence is used
for one certificate only, a certificate is recorded before any agent sees it, TXT values are
always removed. The site state is not signed, so a journalled order is resumed only when the
statement journalled with it is the agent's (cloud.custody.order_journal). A failing agent (its
statement, its delivery) is that agent's; a failing order (the CA, DNS) ends the run with the
site's backoff, keeping what the other agents got; until the backoff ends a run (planned because
an agent posted a CSR, say) goes to the CA for nothing.

An agent's statement may name (`current_cert_sha256`) the certificate last delivered to it, the
one delivered before (it could not install the last), the site's issuer-custody certificate
(every agent got that one) or none: what it serves is not always what was delivered last. The
sequence, above every one used for the agent, is what refuses a replay.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.serialization import Encoding

from cloud.acme.challenge_types import ChallengeType
from cloud.acme.order import IssuedCertificate, issue_for_csr
from cloud.custody import key_requests
from cloud.custody.agent_side import (
    MAX_CSR_STATEMENT_BYTES,
    CheckedCsr,
    CsrError,
    CsrMalformed,
    CsrSequenceStale,
    check_csr_statement,
    csr_statement_key,
    statement_sequence,
)
from cloud.custody.leaves import deliver_leaf, escrow_leaf, open_escrow_leaf
from cloud.custody.order_journal import (
    ORDER_UNSIGNED,
    AcceptedStatement,
    journal,
    journalled_statement,
    unsigned_part,
)
from cloud.custody.renewal import agent_renewal, decide_agents
from cloud.errors import (
    AcmeError,
    CertdropError,
    EscrowForged,
    ObjectTooLarge,
    StoreError,
    WaitingForLimits,
)
from cloud.limiter.orders import OrderKind
from cloud.pipeline.renewal import Decision, changes
from cloud.pipeline.schedule import write_marker
from cloud.pipeline.site_run import Outcome, _SiteRun, kept_window
from cloud.pipeline.site_state import (
    AgentCertificate,
    AgentCustodyState,
    AgentOrder,
    CsrRefusal,
    LimitWait,
)
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRecord
from cloud.store import StoredObject
from nas_agent._encoding import b64url_decode, b64url_encode

log = logging.getLogger(__name__)

_WINDOW_RETRY = timedelta(hours=1)
# An agent's statements asking for a rekey spend the tokens the site's agents share (5 per exact
# set of names a week at Let's Encrypt): one such order per agent a day, after the due ones.
REKEY_INTERVAL = timedelta(hours=24)
REKEY_HELD = "one rekey order per agent per 24 hours"
# What a CA answers about the CSR itself (a blocked or weak key, a key of an ACME account, its
# form): one agent's problem, which must not stop the site's other agents.
_CA_REFUSES_CSR = frozenset({"badCSR", "badPublicKey", "badSignatureAlgorithm"})
CA_REFUSED = "csr.ca_refused"
DUE_FIRST = "first issuances and due renewals of the site go first"


class AgentCustodyRun(_SiteRun):
    """One run of an agent-custody site, under the site's lock (taken by the Runner)."""

    def run(self, force: bool) -> Outcome:
        self._force = force
        self._done: dict[str, str] = {}  # agent → what this run did for it, for the outcome
        # Statements asking for a rekey alone, ordered after every other agent's turn.
        self._rekeys: list[tuple[AgentRecord, AcceptedStatement]] = []
        # Agents whose first issuance or due renewal waits for the CA's limits: until when.
        self._held_due: dict[str, datetime] = {}
        self._site_leaf_read: list[str | None] = []  # the issuer-custody leaf, once read
        publisher = self.runner.publisher
        if publisher is None:
            return self._outcome(
                "not due", "agent custody needs the issuer's keys: run `certdrop init`"
            )
        try:
            self._sweep_leftovers()
            records = [r for r in publisher.registry.all() if self.site.id in r.sites]
            key_requests.sync(publisher, self.runner.config, self.now, records)
            self._forget_unsubscribed(publisher, {r.agent_id for r in records})
            if not force and self._backing_off():
                return self._wait_out_backoff(publisher, records)
            issued = False
            for record in sorted(records, key=self._urgency):
                issued = self._agent(publisher, record) or issued
            for record, accepted in self._rekeys:
                issued = self._rekey(publisher, record, accepted) or issued
            decision = self._decide()
            self._schedule(decision)
            if issued:
                return self._outcome("issued", self._summary())
            if any(e.waiting is not None for e in self.state.agents.values()):
                return self._outcome("waiting", self._summary())
            return self._outcome("not due", self._summary() or decision.reason)
        except CertdropError as exc:
            return self._failed(exc)

    def _backing_off(self) -> bool:
        return self.state.next_attempt is not None and self.state.next_attempt > self.now

    def _wait_out_backoff(self, publisher: Publisher, records: list[AgentRecord]) -> Outcome:
        """A run during the site's backoff (as `_SiteRun`'s): the certificates already recorded
        are delivered; nothing is ordered or resumed, no statement is read."""
        issued = False
        for record in records:
            entry = self.state.agents.get(record.agent_id)
            pending = entry.pending if entry is not None else None
            if pending is not None and publisher.registry.problem(record) is None:
                issued = self._deliver(publisher, record, pending, None) or issued
        decision = self._decide()
        self._schedule(decision)
        if issued:
            return self._outcome("issued", self._summary())
        return self._outcome("not due", decision.reason)

    # --- one agent ------------------------------------------------------------------------

    def _agent(self, publisher: Publisher, record: AgentRecord) -> bool:
        """This agent's turn; True when a certificate was issued for it."""
        aid = record.agent_id
        entry = self.state.agents.get(aid) or AgentCustodyState(aid)
        untrusted = publisher.registry.problem(record)
        if untrusted is not None:
            refusal = CsrRefusal(untrusted.code, str(untrusted), self.now)
            self._put(replace(entry, refusal=refusal, csr_seen=False))
            self._done[aid] = f"record not trusted ({untrusted.code})"
            return False
        if entry.pending is not None:
            return self._deliver(publisher, record, entry.pending, None)
        if entry.order is not None:
            order = self._journalled(publisher, record, entry, entry.order)
            if order is None:
                return False
            return self._order_and_publish(publisher, record, self.state.agents[aid], order)
        entry = self._with_agent_window(entry)
        accepted = self._statement(publisher, record, entry)
        entry = self.state.agents[aid]
        renewal = agent_renewal(self.site, entry, self.now)
        if accepted is None:
            self._put(replace(entry, waiting=None))  # nothing to order: nothing waits either
            if entry.refusal is not None:
                self._done[aid] = f"CSR refused ({entry.refusal.code})"
            elif renewal.due:
                self._done[aid] = "waiting for CSR"
            return False
        if renewal.due or self._force:
            why = renewal.reason if renewal.due else "forced"
            return self._order_for(publisher, record, entry, accepted, why, rekey=False)
        if accepted.checked.statement.rekey:
            self._rekeys.append((record, accepted))  # after the due ones (`_rekey`)
            return False
        self._put(replace(entry, waiting=None))
        return False

    def _rekey(
        self, publisher: Publisher, record: AgentRecord, accepted: AcceptedStatement
    ) -> bool:
        """A statement asking for a rekey alone (nothing due): ordered unless a first issuance
        or due renewal of the site waits for the CA's limits, or the agent had a rekey order in
        the last 24 hours; then it waits (status: waiting), and is not refused."""
        aid = record.agent_id
        entry = self.state.agents[aid]
        if entry.rekeyed_at is not None and entry.rekeyed_at + REKEY_INTERVAL > self.now:
            return self._rekey_waits(entry, entry.rekeyed_at + REKEY_INTERVAL, REKEY_HELD)
        if self._held_due:
            return self._rekey_waits(entry, min(self._held_due.values()), DUE_FIRST)
        return self._order_for(publisher, record, entry, accepted, "rekey", rekey=True)

    def _rekey_waits(self, entry: AgentCustodyState, go_at: datetime, why: str) -> bool:
        self._put(replace(entry, waiting=LimitWait(go_at, (why,), self.now)))
        self._done[entry.agent] = f"rekey waiting until {go_at:%Y-%m-%d %H:%M} ({why})"
        log.info("rekey waits until %s: %s", go_at, why, extra=self._extra(entry.agent))
        return False

    def _statement(
        self, publisher: Publisher, record: AgentRecord, entry: AgentCustodyState
    ) -> AcceptedStatement | None:
        """The agent's CSR statement if every check passes; a refusal is recorded (with its
        code). The statement the last certificate answered is no refusal: its successor is
        awaited."""
        try:
            body = self._read_statement(record.agent_id)
        except CsrMalformed as too_large:
            self._refused(entry, too_large, None)
            return None
        if body is None:
            self._put(replace(entry, csr_seen=False, refusal=None))
            return None
        try:
            checked = self._check(publisher, body, record, entry)
        except CsrError as exc:
            sequence = statement_sequence(body)
            if isinstance(exc, CsrSequenceStale) and sequence == entry.sequence:
                # Answered already (or refused by the CA: that refusal stays shown until the
                # agent's next statement).
                kept = (
                    entry.refusal if entry.refusal and entry.refusal.sequence == sequence else None
                )
                self._put(replace(entry, csr_seen=False, refusal=kept))
                return None
            self._refused(entry, exc, sequence)
            return None
        self._put(replace(entry, csr_seen=True, refusal=None))
        return AcceptedStatement(checked, body)

    def _read_statement(self, aid: str) -> bytes | None:
        """The agent's statement in the store (None: there is none), read with its size cap; a
        larger object is CsrMalformed."""
        try:
            found = self.store.get(
                csr_statement_key(aid, self.site.id), max_bytes=MAX_CSR_STATEMENT_BYTES
            )
        except ObjectTooLarge as exc:
            size = f"{exc.size} bytes, " if exc.size is not None else ""
            raise CsrMalformed(
                f"{size}more than the {MAX_CSR_STATEMENT_BYTES} bytes a statement may have",
                agent_id=aid,
                site=self.site.id,
            ) from exc
        return found.body if isinstance(found, StoredObject) else None

    def _journalled(
        self,
        publisher: Publisher,
        record: AgentRecord,
        entry: AgentCustodyState,
        order: AgentOrder,
    ) -> AgentOrder | None:
        """The agent's journalled order, to place, resume or finalize, if the statement
        journalled with it passes every check of `_check` again and signs all of it
        (cloud.custody.order_journal); else None, the order dropped and refused.

        An entry written before statements were journalled is checked with the agent's statement
        in the store, and the statement is journalled with it from then on. That is as safe as
        any statement read from there (the same checks, and the CSR must be the one it signs),
        and an order already placed or finalized is finished, not ordered a second time: dropping
        it would spend another token and could issue a second certificate. The store's statement
        differs only when the agent posted another since: the order is then refused, and that
        one is read at the agent's next run."""
        aid = record.agent_id
        body: bytes | None = None
        try:
            body = journalled_statement(order, agent=aid, site=self.site.id)
            if body is None:
                body = self._read_statement(aid)
            if body is None:
                why = "it carries no statement, and the agent has none in the store"
                self._order_refused(entry, order, ORDER_UNSIGNED, why, None)
                return None
            checked = self._check(publisher, body, record, entry)
        except CsrError as exc:
            sequence = statement_sequence(body) if body is not None else None
            self._order_refused(entry, order, exc.code, str(exc), sequence)
            return None
        unsigned = unsigned_part(order, checked)
        if unsigned is not None:
            self._order_refused(entry, order, ORDER_UNSIGNED, unsigned, checked.statement.sequence)
            return None
        verified = replace(order, statement=b64url_encode(body))
        self._put(replace(entry, order=verified))
        return verified

    def _order_refused(
        self,
        entry: AgentCustodyState,
        order: AgentOrder,
        code: str,
        why: str,
        sequence: int | None,
    ) -> None:
        """A journalled order the agent did not sign: dropped, never placed or finalized, and
        refused as a statement is (`csr.*`: status, `csr_refused` alert). Its sequence is not
        used up: nobody vouches for it (a forged one would make the agent's next statements
        stale). Nothing more is done for the agent in this run, so the refusal is shown until a
        run reads the agent's statement again."""
        aid = entry.agent
        log.warning(  # %s: the state is not trusted to hold an integer there either
            "journalled order for CSR %s dropped: %s: %s",
            order.sequence,
            code,
            why,
            extra=self._extra(aid),
        )
        message = f"journalled order for CSR {order.sequence} dropped: {why}"
        refusal = CsrRefusal(code, message, self.now, sequence)
        self._put(replace(entry, order=None, refusal=refusal, csr_seen=False, waiting=None))
        self._done[aid] = f"journalled order refused ({code})"

    def _refused(self, entry: AgentCustodyState, exc: CsrError, sequence: int | None) -> None:
        log.warning("CSR statement refused: %s: %s", exc.code, exc, extra=self._extra(entry.agent))
        refusal = CsrRefusal(exc.code, str(exc), self.now, sequence)
        self._put(replace(entry, csr_seen=False, refusal=refusal))

    def _check(
        self, publisher: Publisher, body: bytes, record: AgentRecord, entry: AgentCustodyState
    ) -> CheckedCsr:
        """check_csr_statement. The CSR's key may not be the one of the certificate last
        delivered to the agent (before any, the site's issuer-custody one); the statement may
        name that certificate, the one delivered before it, the site's issuer-custody one, or
        none: what the agent has installed."""
        current = entry.current
        delivered = current.leaf_pem if current is not None else self._site_leaf(publisher)
        accepted = {"", entry.previous_cert_sha256}
        if self.state.current is not None:
            accepted.add(self.state.current.cert_sha256)
        return check_csr_statement(
            body,
            agent=record.agent_id,
            site=self.site.id,
            status_key=record.enrollment.signing_public_key,
            names=self.site.names,
            key_type=self.site.key_type.value,
            last_sequence=entry.sequence,
            delivered_leaf_pem=delivered,
            accepted_cert_sha256=accepted,
        )

    def _site_leaf(self, publisher: Publisher) -> str | None:
        """The site's issuer-custody certificate (delivered before a switch), if it is valid
        and opens; read once per run."""
        if not self._site_leaf_read:
            self._site_leaf_read.append(self._read_site_leaf(publisher))
        return self._site_leaf_read[0]

    def _read_site_leaf(self, publisher: Publisher) -> str | None:
        if self.state.current is None or self.state.current.not_after <= self.now:
            return None
        try:
            return publisher.open_escrow(self.site.id, self.state.current).leaf_pem
        except CertdropError as exc:
            log.warning("issuer-custody certificate not read: %s", exc, extra=self._extra(""))
            return None

    def _order_for(
        self,
        publisher: Publisher,
        record: AgentRecord,
        entry: AgentCustodyState,
        accepted: AcceptedStatement,
        why: str,
        *,
        rekey: bool,
    ) -> bool:
        order = journal(accepted, rekey=rekey, now=self.now)
        log.info("ordering for CSR %d (%s)", order.sequence, why, extra=self._extra(entry.agent))
        return self._order_and_publish(publisher, record, entry, order)

    def _order_and_publish(
        self,
        publisher: Publisher,
        record: AgentRecord,
        entry: AgentCustodyState,
        order: AgentOrder,
    ) -> bool:
        """The order placed or resumed, and its certificate recorded and delivered; without a
        token in the CA's limits, the agent waits (nothing ordered)."""
        try:
            cert = self._order(entry, order)
        except WaitingForLimits as wait:
            held = LimitWait(wait.go_at, wait.held_by, self.now)
            self._put(replace(self.state.agents[entry.agent], waiting=held))
            if not order.rekey:
                self._held_due[entry.agent] = wait.go_at
            self._done[entry.agent] = (
                f"waiting for the CA's limits until {wait.go_at:%Y-%m-%d %H:%M}"
            )
            log.info("%s", wait, extra=self._extra(entry.agent))
            return False
        except AcmeError as exc:
            if exc.problem not in _CA_REFUSES_CSR:
                raise
            return self._ca_refused(entry, order, exc)
        return self._record(publisher, record, cert, order)

    def _ca_refused(self, entry: AgentCustodyState, order: AgentOrder, exc: AcmeError) -> bool:
        """The CA refused the agent's CSR itself (its key, its form): that agent's problem, not
        the site's. Recorded as its refusal (`csr.ca_refused`, alerted as csr_refused), its order
        dropped and its sequence used, so the same statement is not tried again; the other
        agents' turns go on, and the agent's next statement (a rekey) is ordered."""
        aid = entry.agent
        log.warning(
            "the CA refused the CSR %d: %s: %s",
            order.sequence,
            exc.problem,
            exc.detail,
            extra=self._extra(aid),
        )
        held = self.state.agents[aid]
        why = f"the CA refused CSR {order.sequence} ({exc.problem}: {exc.detail}); on the NAS run"
        why += f" `certdrop-agent rekey {self.site.id}`"
        self._put(
            replace(
                held,
                order=None,
                sequence=max(held.sequence, order.sequence),
                refusal=CsrRefusal(CA_REFUSED, why, self.now, order.sequence),
                csr_seen=False,
                waiting=None,
            )
        )
        self._done[aid] = f"CSR refused by the CA ({exc.problem})"
        return False

    def _order(self, entry: AgentCustodyState, order: AgentOrder) -> IssuedCertificate:
        """Places (or resumes) the order of one CSR: tokens taken and the order journalled with
        its CSR before the newOrder is sent, its URL saved as soon as the CA returns it."""
        aid = entry.agent
        self._touched_dns = self.site.challenge is ChallengeType.DNS_01
        csr_pem = _pem(b64url_decode(order.csr))
        resume = order.url
        if resume is None and entry.order is not None:
            resume = self._client().find_order(self.site.names)
            if resume in self._other_orders(aid):
                resume = None  # another agent's order, recorded there

        def ordering() -> None:
            self._check_versions_left()
            self._take_tokens(self._agent_order_kind(entry))
            held = self.state.agents[aid]
            rekeyed_at = self.now if order.rekey else held.rekeyed_at
            journalled = replace(held, order=order, waiting=None, rekeyed_at=rekeyed_at)
            self._durably("journal the order", lambda: self._put(journalled))

        def placed(url: str) -> None:
            current = self.state.agents[aid]
            held = current.order or order
            if held.url == url:
                return
            at_url = replace(held, url=url, placed_at=self.now)
            self._durably("save the order", lambda: self._put(replace(current, order=at_url)))

        replaces = _replaces(self.site, entry)
        return issue_for_csr(
            self.site,
            self._client(),
            self._authorizer(),
            csr_pem,
            order_timeout=self.runner.config.ca.order_timeout,
            preferred_chain=self.runner.config.ca.preferred_chain,
            replaces=replaces,
            resume_order=resume,
            on_order=placed,
            on_replaces_refused=lambda exc: self._take_tokens(OrderKind.RENEWAL),
            on_ordering=ordering,
        )

    def _record(
        self,
        publisher: Publisher,
        record: AgentRecord,
        cert: IssuedCertificate,
        order: AgentOrder,
    ) -> bool:
        """Version reserved, escrow copy (leaf only) written, state "pending": the certificate
        survives the run from here; then delivered."""
        aid = record.agent_id

        def keep() -> AgentCertificate:
            version = self._reserve(publisher, cert, above=self._top_version())
            rec, _ = escrow_leaf(publisher, cert, version, aid, order.sequence)
            issued = AgentCertificate(rec, order.sequence, order.key_sha256, cert.cert_pem)
            entry = self.state.agents[aid]
            self._put(
                replace(
                    entry,
                    pending=issued,
                    order=None,
                    sequence=max(entry.sequence, order.sequence),
                    waiting=None,
                )
            )
            return issued

        pending = self._durably("record the certificate", keep)
        return self._deliver(publisher, record, pending, cert)

    def _deliver(
        self,
        publisher: Publisher,
        record: AgentRecord,
        issued: AgentCertificate,
        cert: IssuedCertificate | None,
    ) -> bool:
        """The recorded certificate to its agent, then made current; a failure is this agent's
        pending delivery (retried every run). True: it was delivered."""
        aid = record.agent_id
        try:
            plaintext = open_escrow_leaf(publisher, self.site.id, issued.record)
            deliver_leaf(publisher, plaintext, record)
        except EscrowForged as exc:
            # Not a copy the issuer wrote (forged, or from before copies were signed): nothing
            # to deliver, ever. The pending record goes, so the agent's next statement is
            # ordered instead of this one being retried for good.
            log.error(
                "version %d dropped: %s: %s",
                issued.record.version,
                exc.code,
                exc,
                extra=self._extra(aid),
            )
            self._put(replace(self.state.agents[aid], pending=None))
            self._done[aid] = f"v{issued.record.version} dropped ({exc.code})"
            return False
        except CertdropError as exc:
            log.error(
                "version %d not delivered: %s: %s",
                issued.record.version,
                exc.code,
                exc,
                extra=self._extra(aid),
            )
            self._save(
                replace(
                    self.state, undelivered={**self.state.undelivered, aid: f"{exc.code}: {exc}"}
                )
            )
            self._done[aid] = f"v{issued.record.version} not delivered ({exc.code})"
            return cert is not None
        entry = self.state.agents[aid]
        previous = entry.current
        before = previous.record.cert_sha256 if previous is not None else ""
        done = replace(
            entry,
            current=issued,
            pending=None,
            window=None,
            previous_cert_sha256=before or entry.previous_cert_sha256,
            csr_seen=False,  # the statement it answered is used up: the next one is awaited
        )
        undelivered = {a: why for a, why in self.state.undelivered.items() if a != aid}
        self._save(
            replace(
                self.state,
                agents={**self.state.agents, aid: done},
                undelivered=undelivered,
                failures=0,
                next_attempt=None,
                last_error=None,
            )
        )
        if previous is not None and previous.record.escrow_object != issued.record.escrow_object:
            try:
                publisher.retire(previous.record)
            except CertdropError as exc:
                log.warning("old escrow copy not deleted: %s", exc, extra=self._extra(aid))
        self._put(self._with_agent_window(self.state.agents[aid]))
        self._done[aid] = f"issued v{issued.record.version}"
        return True

    # --- helpers ----------------------------------------------------------------------------

    def _put(self, entry: AgentCustodyState) -> None:
        """Saves the site state with this agent's entry replaced."""
        if self.state.agents.get(entry.agent) == entry:
            return
        self._save(replace(self.state, agents={**self.state.agents, entry.agent: entry}))

    def _forget_unsubscribed(self, publisher: Publisher, subscribed: set[str]) -> None:
        """Agents whose record no longer lists the site: their entries and escrow copies go
        (an order in flight is kept until finished: its certificate is then dropped)."""
        gone = {a: e for a, e in self.state.agents.items() if a not in subscribed and not e.order}
        if not gone:
            return
        for entry in gone.values():
            for held in (entry.current, entry.pending):
                if held is not None:
                    try:
                        publisher.retire(held.record)
                    except StoreError as exc:
                        log.warning(
                            "escrow copy not deleted: %s", exc, extra=self._extra(entry.agent)
                        )
        kept = {a: e for a, e in self.state.agents.items() if a not in gone}
        undelivered = {a: w for a, w in self.state.undelivered.items() if a not in gone}
        self._save(replace(self.state, agents=kept, undelivered=undelivered))

    def _urgency(self, record: AgentRecord) -> tuple[datetime, str]:
        """Fewest days left first (no certificate: first of all), then by id."""
        entry = self.state.agents.get(record.agent_id)
        if entry is None or entry.current is None:
            return datetime.min.replace(tzinfo=self.now.tzinfo), record.agent_id
        return entry.current.record.not_after, record.agent_id

    def _agent_order_kind(self, entry: AgentCustodyState) -> OrderKind:
        """ARI renewal with `replaces`; a renewal when a certificate of these very names was
        issued before (to the CA, an exact set seen again); else a first issuance."""
        if _replaces(self.site, entry) is not None:
            return OrderKind.ARI_RENEWAL
        held = [e.current.record for e in self.state.agents.values() if e.current is not None]
        if self.state.current is not None:
            held.append(self.state.current)
        if any("names" not in changes(self.site, record) for record in held):
            return OrderKind.RENEWAL
        return OrderKind.FIRST

    def _other_orders(self, agent: str) -> set[str]:
        return {
            e.order.url
            for a, e in self.state.agents.items()
            if a != agent and e.order is not None and e.order.url is not None
        }

    def _top_version(self) -> int:
        """The highest version the unsigned state names: counted only near the highest the
        issuer vouched for (cloud.publish.versions)."""
        versions = [self.state.current.version] if self.state.current else []
        for entry in self.state.agents.values():
            versions += [c.record.version for c in (entry.current, entry.pending) if c]
        return max(versions, default=0)

    def _with_agent_window(self, entry: AgentCustodyState) -> AgentCustodyState:
        """The entry with the CA's renewal window of its certificate (ARI), read when never
        read or its time came; a failed read keeps the old one and tries again in an hour."""
        current = entry.current
        if current is None or current.record.ari_id is None:
            return entry
        if entry.window is not None and entry.window.next_check > self.now:
            return entry
        try:
            acme = self._client()
            if acme.renewal_info_url is None:
                return entry
            suggested = acme.renewal_window(current.record.ari_id, self.now)
        except AcmeError as exc:
            log.warning("no renewal info: %s", exc, extra=self._extra(entry.agent))
            if entry.window is None:
                return entry
            return replace(entry, window=replace(entry.window, next_check=self.now + _WINDOW_RETRY))
        return replace(
            entry, window=kept_window(entry.window, suggested, self.now, self.runner.rng)
        )

    def _summary(self) -> str:
        return "; ".join(f"{agent}: {what}" for agent, what in sorted(self._done.items()))

    def _extra(self, agent: str) -> dict[str, str]:
        return {"site": self.site.id, "agent": agent}

    # --- what the site's run does differently ------------------------------------------------

    def _decide(self) -> Decision:
        return decide_agents(
            self.site, self.state, self.now, directory=self.runner.config.ca.directory
        )

    def _schedule(self, decision: Decision) -> None:
        ends = [e.current.record.not_after for e in self.state.agents.values() if e.current]
        write_marker(self.store, self.site, decision.next_check, min(ends, default=None))

    def _outcome(self, result: str, reason: str, **extra) -> Outcome:
        outcome = super()._outcome(result, reason, **extra)
        current = [e.current.record for e in self.state.agents.values() if e.current]
        if not current:
            return outcome
        newest = max(current, key=lambda r: r.version)
        earliest = min(r.not_after for r in current)
        return replace(outcome, version=newest.version, not_after=earliest)


def _replaces(site, entry: AgentCustodyState) -> str | None:
    """The agent's previous certificate, which its renewal replaces (ARI); none when the names
    changed (a different certificate to the CA)."""
    current = entry.current
    if current is None or "names" in changes(site, current.record):
        return None
    return current.record.ari_id


def _pem(der: bytes) -> bytes:
    from cryptography import x509

    return x509.load_der_x509_csr(der).public_bytes(Encoding.PEM)
