"""Choosing among the certificate chains a CA offers (RFC 8555 `alternate` links)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cloud.errors import IssuanceError


@dataclass(frozen=True)
class Chain:
    """A full chain split into the leaf and what follows it, the leaf's issuer first."""

    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    leaf_pem: str
    chain_pem: str

    @property
    def fullchain_pem(self) -> str:
        return self.leaf_pem + self.chain_pem

    @property
    def top_issuer_cn(self) -> str | None:
        """The issuer CN of the last certificate: the root this chain leads to."""
        top = self.intermediates[-1] if self.intermediates else self.leaf
        return _cn(top.issuer)


def parse_chain(fullchain_pem: str) -> Chain:
    try:
        certs = x509.load_pem_x509_certificates(fullchain_pem.encode())
    except ValueError as exc:
        raise IssuanceError(f"the CA sent a chain that does not parse: {exc}") from exc
    pems = [c.public_bytes(Encoding.PEM).decode() for c in certs]
    return Chain(certs[0], tuple(certs[1:]), pems[0], "".join(pems[1:]))


def select_chain(default: str, alternates: list[str], preferred_issuer: str | None) -> Chain:
    """The chain whose top certificate was issued by `preferred_issuer` (by CN, as certbot's
    --preferred-chain), else the CA's default chain."""
    chain = parse_chain(default)
    if not preferred_issuer:
        return chain
    for candidate in [chain, *(parse_chain(alt) for alt in alternates)]:
        if candidate.top_issuer_cn == preferred_issuer:
            return candidate
    return chain


def leaf_issuer_cn(cert_pem: str) -> str | None:
    """The CN of the certificate's issuer: for a leaf, the CA's intermediate that signed it."""
    return _cn(x509.load_pem_x509_certificate(cert_pem.encode()).issuer)


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None
