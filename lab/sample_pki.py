"""A tiny PKI for the agent's tests, made with cryptography: root -> intermediate -> leaf.

`make_pki()` gives a root and an intermediate; `pki.issue(names, ...)` a leaf with its PKCS#8 key
and the chain (the intermediate), as ACME hands them out. Validity is relative to `NOW`, the clock
the bundle tests pass in. Runs on Python 3.8 and 3.11.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
NAMES = ("example.test", "*.example.test")


@dataclass(frozen=True)
class Authority:
    key: Any
    cert: x509.Certificate


@dataclass(frozen=True)
class Issued:
    key_pem: str
    leaf_pem: str
    chain_pem: str


def new_key(key_type: str) -> Any:
    """ "ec" (P-256), "ec384", "rsa2048", "rsa4096" or "ed25519"."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(key_type)


def key_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(builder: x509.CertificateBuilder, key: Any) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _authority(common_name: str, issuer: Authority | None) -> Authority:
    key = new_key("ec")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return Authority(key, _sign(builder, issuer.key if issuer else key))


@dataclass(frozen=True)
class Pki:
    root: Authority
    intermediate: Authority

    def issue(
        self,
        names: Sequence[str] = NAMES,
        *,
        key_type: str = "ec",
        not_before: datetime = NOW - timedelta(days=1),
        not_after: datetime = NOW + timedelta(days=89),
    ) -> Issued:
        key = new_key(key_type)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0] if names else "no names"))
            .issuer_name(self.intermediate.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        if names:
            san = x509.SubjectAlternativeName([x509.DNSName(name) for name in names])
            builder = builder.add_extension(san, critical=False)
        leaf = _sign(builder, self.intermediate.key)
        return Issued(key_pem(key), cert_pem(leaf), cert_pem(self.intermediate.cert))


def make_pki(label: str = "certdrop test") -> Pki:
    root = _authority(f"{label} root", None)
    return Pki(root, _authority(f"{label} intermediate", root))
