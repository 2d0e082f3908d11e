"""Checks on the certificate material of an opened bundle, before anything reaches DSM.

`load_material` parses the PEMs (PKCS#8 key, one leaf, a chain of at least one certificate) and
refuses key types DSM and this project do not use. `check_material` then refuses a bundle whose
metadata disagrees with its leaf, whose key is not the leaf's, whose leaf is not signed by the
first chain certificate (each further chain link is checked too; trust in a root is DSM's and the
browsers' business, not the agent's), which is not valid at `now`, or whose names do not cover the
agent's hostnames. Names match as RFC 6125 says: exact, case-insensitive, and a `*.` prefix
stands for exactly one whole leftmost label.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from nas_agent.bundle.plaintext import BundlePlaintext, dns_names
from nas_agent.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    ContentMismatch,
    KeyMismatch,
    MalformedPlaintext,
    NamesNotCovered,
)

if TYPE_CHECKING:
    from nas_agent.bundle.leaf import LeafPlaintext

CertificateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]

_CURVES = ("secp256r1", "secp384r1")
_MIN_RSA_BITS = 2048
# cryptography 47 (the agent's on Python 3.8) raises InvalidVersion, not ValueError, for a
# certificate whose version field is out of range; hypothesis found it.
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion)


@dataclass(frozen=True)
class CertificateMaterial:
    private_key: CertificateKey = field(repr=False)
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    names: tuple[str, ...]  # the leaf's subjectAltName DNS names, sorted
    sha256: str  # hex SHA-256 of the leaf's DER


def load_material(plaintext: BundlePlaintext) -> CertificateMaterial:
    """Parse the key and certificates; raise MalformedPlaintext (never quoting the key)."""
    key_pem = plaintext.key_pem.strip()
    if not key_pem.startswith("-----BEGIN PRIVATE KEY-----") or key_pem.count("-----BEGIN") != 1:
        raise MalformedPlaintext("key_pem is not one PKCS#8 PEM private key")
    try:
        # Full validation stays on (about 0.3 s for RSA-4096, once per renewal): an RSA key with
        # inconsistent CRT values makes faulty signatures that leak its factors.
        parsed_key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except _PARSE_ERRORS as exc:
        raise MalformedPlaintext("key_pem does not parse as an unencrypted private key") from exc
    private_key = _supported(parsed_key)
    if private_key is None:
        raise MalformedPlaintext(f"key type {type(parsed_key).__name__} is not supported")
    return with_certificates(private_key, plaintext.leaf_pem, plaintext.chain_pem)


def with_certificates(
    private_key: CertificateKey, leaf_pem: str, chain_pem: str
) -> CertificateMaterial:
    """`private_key` with the leaf and chain parsed; raise MalformedPlaintext. A leaf plaintext
    holds no key: the agent's own key comes in here (`nas_agent.bundle.leaf.HeldKeys`)."""
    leaf = load_leaf(leaf_pem)
    chain = _certificates(chain_pem, "chain_pem")
    try:
        names = dns_names(leaf)
        for certificate in (leaf, *chain):
            certificate.public_key()  # parsed here, so later checks meet no parse error
        sha256 = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    except _PARSE_ERRORS as exc:
        raise MalformedPlaintext(f"a certificate does not parse: {exc}") from exc
    return CertificateMaterial(private_key, leaf, tuple(chain), names, sha256)


def load_leaf(leaf_pem: str) -> x509.Certificate:
    """The one certificate of `leaf_pem`; raise MalformedPlaintext."""
    leaves = _certificates(leaf_pem, "leaf_pem")
    if len(leaves) != 1:
        raise MalformedPlaintext(f"leaf_pem holds {len(leaves)} certificates, expected 1")
    try:
        leaves[0].public_key()
    except _PARSE_ERRORS as exc:
        raise MalformedPlaintext(f"the leaf does not parse: {exc}") from exc
    return leaves[0]


def check_material(
    plaintext: BundlePlaintext | LeafPlaintext,
    material: CertificateMaterial,
    *,
    hostnames: Sequence[str],
    now: datetime,
) -> None:
    """Raise ContentMismatch, KeyMismatch, ChainInvalid, CertificateNotYetValid,
    CertificateExpired or NamesNotCovered, in that order of checking."""
    if isinstance(hostnames, str):
        raise TypeError("hostnames is a sequence of names, not one string")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    leaf = material.leaf
    if tuple(sorted(set(plaintext.names))) != material.names:
        raise ContentMismatch("names", "the metadata lists other names than the certificate")
    if plaintext.not_before != leaf.not_valid_before_utc:
        raise ContentMismatch("not_before", "the metadata disagrees with the certificate")
    if plaintext.not_after != leaf.not_valid_after_utc:
        raise ContentMismatch("not_after", "the metadata disagrees with the certificate")
    if spki_der(material.private_key.public_key()) != spki_der(leaf.public_key()):
        raise KeyMismatch("the private key does not belong to the certificate")
    _check_chain(leaf, material.chain)
    if now < leaf.not_valid_before_utc:
        raise CertificateNotYetValid(leaf.not_valid_before_utc, now)
    if now > leaf.not_valid_after_utc:
        raise CertificateExpired(leaf.not_valid_after_utc, now)
    missing = tuple(
        host for host in hostnames if not any(name_covers(n, host) for n in material.names)
    )
    if missing:
        raise NamesNotCovered(missing, material.names)


def name_covers(name: str, hostname: str) -> bool:
    """Whether certificate name `name` covers `hostname` (RFC 6125, section 6.4)."""
    name = name.lower()
    hostname = hostname.lower()
    if hostname.endswith("."):
        hostname = hostname[:-1]
    if name == hostname:
        return True
    if not name.startswith("*.") or "*" in name[2:]:
        return False
    label, dot, rest = hostname.partition(".")
    return bool(label) and bool(dot) and "*" not in label and rest == name[2:]


def _supported(key: PrivateKeyTypes) -> CertificateKey | None:
    """`key` if it is of a supported type, curve and size; None otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key if key.curve.name in _CURVES else None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= _MIN_RSA_BITS:
        return key
    return None


def _certificates(pem: str, name: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode("ascii"))
    except _PARSE_ERRORS as exc:
        raise MalformedPlaintext(f"{name} holds no parsable PEM certificate") from exc


def spki_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_chain(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]) -> None:
    links = zip((leaf, *chain), chain)
    for position, (subject, issuer) in enumerate(links):
        try:
            subject.verify_directly_issued_by(issuer)
        except (InvalidSignature, *_PARSE_ERRORS) as exc:
            what = "the leaf" if position == 0 else f"chain certificate {position}"
            raise ChainInvalid(f"{what} is not issued by chain certificate {position + 1}") from exc
