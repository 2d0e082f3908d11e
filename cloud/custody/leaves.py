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
    seal_leaf,
)
from cloud.errors import EscrowForged, EscrowUnavailable
from cloud.pipeline.site_state import CertificateRecord
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRecord
from nas_agent import store_layout

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
    return publisher.keep_in_escrow(cert, plaintext), plaintext


def open_escrow_leaf(publisher: Publisher, site: str, record: CertificateRecord) -> LeafPlaintext:
    """The recorded leaf of `site`'s `record`, from its escrow copy (a delivery a run left)."""
    opened = publisher.open_escrow_any(site, record)
    if not isinstance(opened, LeafPlaintext):  # a key bundle: not what this record delivers
        raise EscrowUnavailable(site, f"{record.escrow_object} opens with no escrow key")
    return opened


def deliver_leaf(publisher: Publisher, plaintext: LeafPlaintext, agent: AgentRecord) -> None:
    """Seals the leaf for the agent it was ordered for, writes it, then the agent's index;
    refuses (RecordUnsigned, RecordTampered) a record the issuer did not sign."""
    publisher.registry.verify(agent)
    sealed = seal_leaf(
        plaintext,
        recipient_id=agent.agent_id,
        recipient_public_key=agent.enrollment.box_public_key,
    )
    if plaintext.agent_id != agent.agent_id:
        # The unsigned site state named another agent's leaf for this one: nothing to deliver
        # here, ever (the escrow statement vouches for the leaf as that agent's).
        raise EscrowForged(
            plaintext.site,
            f"the leaf of version {plaintext.version} was ordered for agent {plaintext.agent_id},"
            f" not {agent.agent_id}",
        )
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
