"""The cloud and a few agents in one object, for the bundle tests.

`World` holds an issuer, agents `nas-a`, `nas-b`, `nas-c` and a test PKI; it makes plaintexts,
publishes (seals and signs) them for an agent, and opens them as that agent would. `resign` and
`seal_raw` play an issuer that signs or seals whatever it is given, following the documented
layout with cryptography's HPKE directly, so tests can reach the checks behind the signature.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from nas_agent.bundle import (
    BundlePlaintext,
    IndexEntry,
    OpenedBundle,
    build_index,
    hpke_info,
    make_plaintext,
    seal,
    sign_entry,
    verify_and_open,
)
from nas_agent.keys import AgentKeys, IssuerKeys, generate_agent_keys, generate_issuer_keys

from lab.sample_pki import NAMES, NOW, Issued, Pki, make_pki

AGENTS = ("nas-a", "nas-b", "nas-c")
SITE = "example.test"
HOSTNAMES = ("nas.example.test", "example.test")
HEADER_V1 = b"CDSB\x01"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


@dataclass(frozen=True)
class Published:
    entry: IndexEntry
    sealed: bytes


@dataclass(frozen=True)
class World:
    pki: Pki
    issuer: IssuerKeys
    agents: dict[str, AgentKeys]

    def plaintext(
        self,
        site: str = SITE,
        version: int = 1,
        names: Sequence[str] = NAMES,
        **issue: Any,
    ) -> BundlePlaintext:
        return plaintext_of(self.pki.issue(names, **issue), site=site, version=version)

    def publish(self, plaintext: BundlePlaintext, agent_id: str) -> Published:
        sealed = seal(
            plaintext,
            recipient_id=agent_id,
            recipient_public_key=self.agents[agent_id].box_key.public_key(),
        )
        entry = sign_entry(
            plaintext, sealed, agent_id=agent_id, signing_key=self.issuer.signing_key
        )
        return Published(entry, sealed)

    def open(
        self,
        agent_id: str,
        index_bytes: bytes,
        sealed: bytes,
        *,
        site: str = SITE,
        installed_version: int | None = None,
        hostnames: Sequence[str] = HOSTNAMES,
        now: datetime = NOW,
    ) -> OpenedBundle:
        return verify_and_open(
            index_bytes,
            sealed,
            site=site,
            agent_id=agent_id,
            agent_private_key=self.agents[agent_id].box_key,
            issuer_public_key=self.issuer.signing_key.public_key(),
            installed_version=installed_version,
            hostnames=hostnames,
            now=now,
        )

    def open_published(self, agent_id: str, published: Published, **options: Any) -> OpenedBundle:
        index_bytes = build_index([published.entry])
        return self.open(
            agent_id, index_bytes, published.sealed, site=published.entry.site, **options
        )


def make_world() -> World:
    return World(
        pki=make_pki(),
        issuer=generate_issuer_keys(),
        agents={agent_id: generate_agent_keys(agent_id) for agent_id in AGENTS},
    )


def plaintext_of(
    issued: Issued, *, site: str = SITE, version: int = 1, issued_at: datetime = NOW
) -> BundlePlaintext:
    return make_plaintext(
        site=site,
        version=version,
        key_pem=issued.key_pem,
        leaf_pem=issued.leaf_pem,
        chain_pem=issued.chain_pem,
        issued_at=issued_at,
    )


def resign(entry: IndexEntry, signing_key: ed25519.Ed25519PrivateKey, **changes: Any) -> IndexEntry:
    """The entry with `changes`, signed again: an issuer that signs whatever it is handed."""
    unsigned = dataclasses.replace(entry, **changes)
    return dataclasses.replace(unsigned, signature=signing_key.sign(unsigned.signed_bytes()))


def seal_raw(
    data: bytes,
    public_key: x25519.X25519PublicKey,
    *,
    recipient_id: str,
    site: str = SITE,
    version: int = 1,
) -> bytes:
    """Any bytes sealed as docs/bundle-format.md lays out a v1 object."""
    return HEADER_V1 + SUITE.encrypt(data, public_key, info=hpke_info(recipient_id, site, version))
