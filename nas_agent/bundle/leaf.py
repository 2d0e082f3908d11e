"""The leaf plaintext `certdrop-leaf-v1`: what a sealed object holds for a site in agent custody.

    {"agent": "nas-1", "chain_pem": ..., "csr_sequence": 1764892800,
     "format": "certdrop-leaf-v1", "issued_at": "...Z", "leaf_pem": ..., "names": [...],
     "not_after": "...Z", "not_before": "...Z", "site": "example.com", "version": 7}

The fields of `certdrop-bundle-v1` without `key_pem`, plus the agent the certificate was ordered
for and the sequence of the CSR statement it answers: the agent installs it with the key it made
for that CSR (`HeldKeys.pick`), or refuses it. Canonical JSON like the bundle; the decoder reads
untrusted bytes and raises only MalformedPlaintext or UnsupportedFormat, with exactly these
fields. The bundle's own strict reader (`plaintext.decode_plaintext`) is unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nas_agent._encoding import canonical_json, format_timestamp
from nas_agent.bundle.checks import CertificateKey, spki_der
from nas_agent.bundle.plaintext import (
    MAX_VERSION,
    dns_names,
    is_version,
    names_field,
    pem_field,
    read_document,
    timestamp_field,
)
from nas_agent.errors import KeyMissing, MalformedPlaintext
from nas_agent.ids import SITE_ID_PATTERN, is_agent_id, is_site_id

LEAF_FORMAT = "certdrop-leaf-v1"
# CSR sequences are unix seconds or above: JSON numbers, inside what every reader holds exactly.
MAX_SEQUENCE = MAX_VERSION

_FIELDS = frozenset(
    {
        "format",
        "site",
        "version",
        "agent",
        "csr_sequence",
        "leaf_pem",
        "chain_pem",
        "names",
        "not_before",
        "not_after",
        "issued_at",
    }
)


@dataclass(frozen=True)
class LeafPlaintext:
    site: str
    version: int
    agent_id: str  # the agent the certificate was ordered for
    csr_sequence: int  # the sequence of the CSR statement it answers
    leaf_pem: str
    chain_pem: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issued_at: datetime

    def leaf_sha256(self) -> str:
        """Hex SHA-256 of the leaf certificate's DER: the fingerprint the signed entry carries."""
        leaf = x509.load_pem_x509_certificate(self.leaf_pem.encode("ascii"))
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class HeldKeys:
    """The keys the agent made for one site that a certificate may be installed with: the
    pending key of its newest CSR and the installed certificate's. repr shows the sequence."""

    pending_sequence: int | None
    pending: CertificateKey | None = field(default=None, repr=False)
    current: CertificateKey | None = field(default=None, repr=False)

    def pick(
        self, leaf: LeafPlaintext, certificate: x509.Certificate
    ) -> tuple[str, CertificateKey]:
        """("pending" or "current", the key) for `leaf`: the pending key when the leaf answers
        its CSR, else the installed certificate's; KeyMissing when neither is the leaf's key."""
        wanted = spki_der(certificate.public_key())
        candidates = (
            ("pending", self.pending if leaf.csr_sequence == self.pending_sequence else None),
            ("current", self.current),
        )
        for which, key in candidates:
            if key is not None and spki_der(key.public_key()) == wanted:
                return which, key
        raise KeyMissing(leaf.site, leaf.csr_sequence, version=leaf.version)


def is_sequence(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_SEQUENCE


def make_leaf_plaintext(
    *,
    site: str,
    version: int,
    agent_id: str,
    csr_sequence: int,
    leaf_pem: str,
    chain_pem: str,
    issued_at: datetime,
) -> LeafPlaintext:
    """Build a leaf plaintext for the issuer, taking names and validity from the leaf."""
    if not is_site_id(site):
        raise ValueError(f"site {site!r} does not match {SITE_ID_PATTERN}")
    if not is_version(version):
        raise ValueError(f"version {version!r} is not an integer from 1 to {MAX_VERSION}")
    if not is_agent_id(agent_id):
        raise ValueError(f"agent id {agent_id!r} is not an agent id")
    if not is_sequence(csr_sequence):
        raise ValueError(f"csr_sequence {csr_sequence!r} is not an integer from 1 to 2^53-1")
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode("ascii"))
    return LeafPlaintext(
        site=site,
        version=version,
        agent_id=agent_id,
        csr_sequence=csr_sequence,
        leaf_pem=leaf_pem,
        chain_pem=chain_pem,
        names=dns_names(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issued_at=issued_at.astimezone(timezone.utc).replace(microsecond=0),
    )


def encode_leaf_plaintext(plaintext: LeafPlaintext) -> bytes:
    return canonical_json(
        {
            "format": LEAF_FORMAT,
            "site": plaintext.site,
            "version": plaintext.version,
            "agent": plaintext.agent_id,
            "csr_sequence": plaintext.csr_sequence,
            "leaf_pem": plaintext.leaf_pem,
            "chain_pem": plaintext.chain_pem,
            "names": list(plaintext.names),
            "not_before": format_timestamp(plaintext.not_before),
            "not_after": format_timestamp(plaintext.not_after),
            "issued_at": format_timestamp(plaintext.issued_at),
        }
    )


def decode_leaf_plaintext(data: bytes) -> LeafPlaintext:
    """Read opened bytes; raise MalformedPlaintext or UnsupportedFormat, nothing else."""
    document = read_document(data, LEAF_FORMAT, "leaf plaintext", _FIELDS)
    if not is_agent_id(document["agent"]):
        raise MalformedPlaintext("agent is not an agent id")
    if not is_sequence(document["csr_sequence"]):
        raise MalformedPlaintext(f"csr_sequence is not an integer from 1 to {MAX_SEQUENCE}")
    return LeafPlaintext(
        site=document["site"],
        version=document["version"],
        agent_id=document["agent"],
        csr_sequence=document["csr_sequence"],
        leaf_pem=pem_field(document, "leaf_pem"),
        chain_pem=pem_field(document, "chain_pem"),
        names=names_field(document["names"]),
        not_before=timestamp_field(document, "not_before"),
        not_after=timestamp_field(document, "not_after"),
        issued_at=timestamp_field(document, "issued_at"),
    )
