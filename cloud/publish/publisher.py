"""Publishing certificates to the object store, sealed for the escrow key and each agent.

    state/escrow/<site>/<version>.json             the issuer's statement vouching for the copy
    escrow/<site>/<version>.sealed                 sealed to the issuer's escrow key
    agents/<agent>/bundles/<site>/<version>.sealed sealed to that agent
    agents/<agent>/index.json                      signed as a whole (v2), written last

Sealed objects are written before the index that names them, so an agent never sees an entry
pointing at nothing; the pipeline writes the site state after every agent's index. The plaintext key
exists only in memory. A new agent gets the current certificate by re-sealing the escrow copy:
no ACME order. Nothing is delivered from a copy no statement of the issuer's vouches for
(`cloud.publish.escrow_statements`): anyone can seal to the escrow key.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from cloud.acme.order import IssuedCertificate
from cloud.errors import CertdropError, EscrowForged, EscrowUnavailable, ObjectTooLarge
from cloud.keys.rotation import Signer, open_escrow_copy, signer_for
from cloud.pipeline.site_state import CertificateRecord, load_site_state
from cloud.publish.escrow_statements import EscrowStatement, EscrowStatements
from cloud.publish.indexes import AgentIndexes
from cloud.publish.registry import AgentRecord, AgentRegistry
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    BundlePlaintext,
    IndexEntry,
    LeafPlaintext,
    entry_for,
    make_plaintext,
    seal,
)
from nas_agent.bundle.sealed import MAX_SEALED_BYTES
from nas_agent.keys import IssuerKeys

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        store: Store,
        issuer: IssuerKeys,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        signer: Signer | None = None,
    ):
        """`signer`: the key to sign with, when not the one in use (a rotation's successor,
        before the rotation is recorded)."""
        self.store = store
        self.issuer = issuer
        self.now = now
        self._signer = signer

    @functools.cached_property
    def signer(self) -> Signer:
        """The signing key in use (after any rotation) and the issuer's key history."""
        return self._signer or signer_for(self.issuer, self.store)

    @functools.cached_property
    def registry(self) -> AgentRegistry:
        return AgentRegistry(self.store, self.signer)

    @functools.cached_property
    def indexes(self) -> AgentIndexes:
        return AgentIndexes(self.store, self.signer)

    @functools.cached_property
    def escrow_statements(self) -> EscrowStatements:
        return EscrowStatements(self.store, self.signer)

    def escrow(
        self, cert: IssuedCertificate, version: int
    ) -> tuple[CertificateRecord, BundlePlaintext]:
        """Seals a freshly issued certificate as the site's `version` for the escrow key and
        writes it: from then on the certificate is recorded and can be delivered from escrow
        by any later run. Returns the record for the site state, and the plaintext (in memory
        only) to deliver now."""
        plaintext = make_plaintext(
            site=cert.site,
            version=version,
            key_pem=cert.key_pem.decode("ascii"),
            leaf_pem=cert.cert_pem,
            chain_pem=cert.chain_pem,
            issued_at=self.now(),
        )
        return self.keep_in_escrow(cert, plaintext), plaintext

    def keep_in_escrow(
        self, cert: IssuedCertificate, plaintext: BundlePlaintext | LeafPlaintext
    ) -> CertificateRecord:
        """`plaintext` (a bundle, or an agent-custody site's leaf) sealed to the escrow key and
        written as its site's version, after the statement vouching for it; the record the site
        state keeps of it."""
        sealed = seal(
            plaintext,
            recipient_id=ESCROW_RECIPIENT,
            recipient_public_key=self.issuer.escrow_key.public_key(),
        )
        escrow_object = store_layout.escrow(cert.site, plaintext.version)
        self.escrow_statements.write(plaintext)
        self.store.put(escrow_object, sealed)
        return CertificateRecord(
            version=plaintext.version,
            cert_sha256=plaintext.leaf_sha256(),
            serial=f"{cert.serial:x}",
            names=cert.names,
            key_type=cert.key_type.value,
            profile=cert.profile,
            not_before=cert.not_before,
            not_after=cert.not_after,
            issued_at=plaintext.issued_at,
            escrow_object=escrow_object,
            ari_id=cert.ari_id,
        )

    def deliver_all(
        self, plaintext: BundlePlaintext, only: Collection[str] | None = None
    ) -> dict[str, str]:
        """Delivers `plaintext` to every agent subscribed to its site (or to those of `only`
        still subscribed). One agent's failure is that agent's pending delivery, never the
        others': returns agent id → why, for those not reached.

        A record the issuer did not sign is refused whatever sites it claims (they are as
        untrusted as its keys): it is reported here for every site, and gets nothing."""
        failed: dict[str, str] = {}
        delivered = 0
        for agent in self.registry.all():
            if only is not None and agent.agent_id not in only:
                continue
            untrusted = self.registry.problem(agent)
            if untrusted is None and plaintext.site not in agent.sites:
                continue
            try:
                if untrusted is not None:
                    raise untrusted
                self.deliver(plaintext, agent)
                delivered += 1
            except CertdropError as exc:
                log.error(
                    "version %d not delivered to agent %s: %s: %s",
                    plaintext.version,
                    agent.agent_id,
                    exc.code,
                    exc,
                    extra={"site": plaintext.site, "agent": agent.agent_id},
                )
                failed[agent.agent_id] = f"{exc.code}: {exc}"
        log.info(
            "version %d delivered to %d agent(s), %d pending",
            plaintext.version,
            delivered,
            len(failed),
            extra={"site": plaintext.site},
        )
        return failed

    def retire(self, previous: CertificateRecord) -> None:
        """Deletes a replaced certificate's escrow copy (once the new one is recorded), then its
        statement."""
        try:
            site, version = store_layout.parse_escrow(previous.escrow_object)
        except ValueError:  # the site state is unsigned: it may name any object
            log.warning("%s is no escrow copy: not deleted", previous.escrow_object)
            return
        self.store.delete(previous.escrow_object)
        self.escrow_statements.delete(site, version)

    def deliver(self, plaintext: BundlePlaintext, agent: AgentRecord) -> IndexEntry:
        """Seals `plaintext` for one agent, writes the object, then the agent's index; refuses
        (RecordUnsigned, RecordTampered) a record the issuer did not sign."""
        self.registry.verify(agent)
        sealed = seal(
            plaintext,
            recipient_id=agent.agent_id,
            recipient_public_key=agent.enrollment.box_public_key,
        )
        entry = entry_for(
            plaintext, sealed, agent_id=agent.agent_id, issuer_key_id=self.signer.key_id
        )
        prefix = store_layout.agent_prefix(agent.agent_id)
        self.store.put(prefix + entry.object_key, sealed)
        self.indexes.set_entry(agent.agent_id, plaintext.site, entry, self.now())
        self._prune(agent.agent_id, plaintext.site, keep=prefix + entry.object_key)
        log.info(
            "sealed version %d for agent %s",
            plaintext.version,
            agent.agent_id,
            extra={"site": plaintext.site, "agent": agent.agent_id},
        )
        return entry

    def subscribe(
        self, agent: AgentRecord, sites: tuple[str, ...], agent_custody: Collection[str] = ()
    ) -> tuple[list[str], dict[str, EscrowUnavailable]]:
        """Delivers the current certificate of each site that has one to `agent`, re-sealed
        from escrow; returns the sites delivered, and those whose escrow copy cannot be used
        (one site's is no reason to skip the others). A site in `agent_custody` gets nothing:
        the agent makes its own key, and a certificate from before the switch holds the
        issuer's."""
        delivered, refused = [], {}
        for site in sites:
            if site in agent_custody:
                continue
            state = load_site_state(self.store, site)
            if state is None or state.current is None:
                continue  # not issued yet: the first issuance will include this agent
            try:
                self.deliver(self.open_escrow(site, state.current), agent)
            except EscrowUnavailable as exc:
                refused[site] = exc
                continue
            delivered.append(site)
        return delivered, refused

    def withdraw(self, agent_id: str, site: str) -> None:
        """Takes a site away from an agent: its index entry, then its bundles."""
        self.indexes.set_entry(agent_id, site, None, self.now())
        self._prune(agent_id, site, keep=None)

    def remove_agent(self, agent_id: str) -> int:
        """Deletes everything under the agent's prefix and its registration; returns how many
        objects were deleted."""
        self.registry.require(agent_id)
        prefix = store_layout.agent_prefix(agent_id)
        index = store_layout.agent_index(agent_id)
        # The index first: from then on nothing the agent could read points anywhere.
        self.store.delete(index)
        removed = 1
        for info in list(self.store.list(prefix)):
            self.store.delete(info.key)
            removed += 1
        self.registry.forget(agent_id)
        return removed

    def open_escrow(self, site: str, record: CertificateRecord) -> BundlePlaintext:
        """The recorded certificate of `site`, from its escrow copy (for a delivery that a run
        did not finish, or a new agent)."""
        opened = self.open_escrow_any(site, record, unexpired=True)
        if not isinstance(opened, BundlePlaintext):  # an agent's leaf: escrow holds no key
            raise EscrowUnavailable(site, f"{record.escrow_object} holds no key (agent custody)")
        return opened

    def open_escrow_any(
        self, site: str, record: CertificateRecord, *, unexpired: bool = False
    ) -> BundlePlaintext | LeafPlaintext:
        """The escrow copy of `site`'s `record`, opened with the escrow key or a retired one, if
        the issuer's statement vouches for it as the record names it (the site state is
        unsigned): EscrowUnsigned or EscrowForged otherwise. With `unexpired`, refused once its
        certificate has expired."""
        try:
            # Bounded: the path comes from the unsigned site state, the object from the store.
            found = self.store.get(record.escrow_object, max_bytes=MAX_SEALED_BYTES)
        except ObjectTooLarge as exc:
            cause = f"{record.escrow_object} is larger than any escrow copy ({exc.limit} bytes)"
            raise EscrowForged(site, cause) from exc
        if not isinstance(found, StoredObject):
            raise EscrowUnavailable(site, f"{record.escrow_object} is missing")
        statement = self.escrow_statements.vouched(site, record.version, record.cert_sha256)
        opened = open_escrow_copy(found.body, self.issuer, site=site, version=record.version)
        if opened is None:
            raise EscrowUnavailable(site, f"{record.escrow_object} opens with no escrow key")
        plaintext = opened[1]
        if EscrowStatement.of(plaintext) != statement:
            raise EscrowForged(site, f"{record.escrow_object} is not the copy its statement names")
        if unexpired and plaintext.not_after <= self.now():
            raise EscrowUnavailable(site, "its certificate has expired; issue it again")
        return plaintext

    def resign_indexes(self, *, force: bool = False) -> list[str]:
        """Signs again the indexes that would expire soon (every index with `force`)."""
        return self.indexes.resign_due(self.now(), force=force)

    def _prune(self, agent_id: str, site: str, keep: str | None) -> None:
        """Deletes the agent's older bundles of `site` (all of them when `keep` is None)."""
        for info in list(self.store.list(store_layout.agent_bundles(agent_id, site))):
            if info.key != keep:
                self.store.delete(info.key)
