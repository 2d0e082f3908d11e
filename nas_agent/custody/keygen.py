"""A site's new key and its CSR, made on the NAS: the only code of the agent that generates
certificate keys (imported only when a key is due, RSA generation and X.509 being heavy)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from nas_agent.bundle.checks import CertificateKey

# X.509's upper bound on a CN (RFC 5280): a longer first name goes in the SAN only.
_MAX_COMMON_NAME = 64


def csr_der(key: CertificateKey, names: tuple[str, ...]) -> bytes:
    """A CSR for exactly `names` (sorted) as SAN dNSNames, signed with `key` over SHA-256. The
    CN is the first name when it fits (some CAs still read it), else there is none."""
    first = names[0]
    subject = (
        [x509.NameAttribute(NameOID.COMMON_NAME, first)] if len(first) <= _MAX_COMMON_NAME else []
    )
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.DER)


def key_pem(key: CertificateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
