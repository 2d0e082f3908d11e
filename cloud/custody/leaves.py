"""Publishing an agent-custody certificate: leaf + chain (`certdrop-leaf-v1`), never a key.

    escrow/<site>/<version>.sealed                 sealed to the escrow key
    agents/<agent>/bundles/<site>/<version>.sealed sealed to the agent the CSR came from
    agents/<agent>/index.json                      its entry: custody "agent", kind leaf-v1

One version per certificate, from the site's counter (`cloud.publish.versions`); the escrow copy
is written first (the certificate is recorded from then on), the agent's object before its index.
"""

from __future__ import annotations

import logging

from cloud.acme.order import IssuedCertificate
from cloud.custody.agent_side import (
    LeafPlaintext,
    leaf_entry,
    make_leaf_plaintext,
    open_leaf,
    seal_leaf,
)
from cloud.errors import EscrowUnavailable
from cloud.pipeline.site_state import CertificateRecord
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRecord
from cloud.store import StoredObject
from nas_agent import store_layout
from nas_agent.bundle import ESCROW_RECIPIENT

log = logging.getLogger(__name__)


def escrow_leaf(
    publisher: Publisher, cert: IssuedCertificate, version: int, agent: str, sequence: int
) -> tuple[CertificateRecord, LeafPlaintext]:
    """Seals the certificate ordered for `agent`'s CSR `sequence` to the escrow key as the
    site's `version`; returns the record for the agent's state and the plaintext to deliver."""
    plaintext = make_leaf_plaintext(
        site=cert.site,
        version=version,
        leaf_pem=cert.cert_pem,
        chain_pem=cert.chain_pem,
        issued_at=publisher.now(),
        agent_id=agent,
        csr_sequence=sequence,
    )
    sealed = seal_leaf(
        plaintext,
        recipient_id=ESCROW_RECIPIENT,
        recipient_public_key=publisher.issuer.escrow_key.public_key(),
    )
    escrow_object = store_layout.escrow(cert.site, version)
    publisher.store.put(escrow_object, sealed)
    record = CertificateRecord(
        version=version,
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
    return record, plaintext


def open_escrow_leaf(publisher: Publisher, site: str, record: CertificateRecord) -> LeafPlaintext:
    """The recorded leaf of `site`'s `record`, from its escrow copy (a delivery a run left)."""
    found = publisher.store.get(record.escrow_object)
    if not isinstance(found, StoredObject):
        raise EscrowUnavailable(site, f"{record.escrow_object} is missing")
    issuer = publisher.issuer
    for key in (issuer.escrow_key, *reversed(issuer.retired_escrow_keys)):
        try:
            return open_leaf(
                found.body,
                recipient_id=ESCROW_RECIPIENT,
                private_key=key,
                site=site,
                version=record.version,
            )
        except ValueError:
            continue
    raise EscrowUnavailable(site, f"{record.escrow_object} opens with no escrow key")


def deliver_leaf(publisher: Publisher, plaintext: LeafPlaintext, agent: AgentRecord) -> None:
    """Seals the leaf for the agent it was ordered for, writes it, then the agent's index;
    refuses (RecordUnsigned, RecordTampered) a record the issuer did not sign."""
    publisher.registry.verify(agent)
    sealed = seal_leaf(
        plaintext,
        recipient_id=agent.agent_id,
        recipient_public_key=agent.enrollment.box_public_key,
    )
    # Refuses (ValueError) a leaf ordered for another agent.
    entry = leaf_entry(
        plaintext, sealed, agent_id=agent.agent_id, issuer_key_id=publisher.signer.key_id
    )
    prefix = store_layout.agent_prefix(agent.agent_id)
    keep = prefix + entry.object_key
    publisher.store.put(keep, sealed)
    publisher.indexes.set_entry(agent.agent_id, plaintext.site, entry, publisher.now())
    for info in list(publisher.store.list(store_layout.agent_bundles(agent.agent_id, entry.site))):
        if info.key != keep:
            publisher.store.delete(info.key)
    log.info(
        "sealed version %d (leaf, agent custody) for agent %s",
        plaintext.version,
        agent.agent_id,
        extra={"site": plaintext.site, "agent": agent.agent_id},
    )
