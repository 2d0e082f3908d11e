"""Certificate key types, fresh keys per issuance, CSRs, and key/certificate checks.

`KeyType` is what the configuration names; the functions import cryptography and the `acme`
library when called, so reading a configuration does not load them.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import (
        CertificateIssuerPrivateKeyTypes,
        CertificatePublicKeyTypes,
    )


class KeyType(enum.Enum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


_EC_KEY_TYPES = (KeyType.EC_P256, KeyType.EC_P384)
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def _curves() -> dict[KeyType, type]:
    from cryptography.hazmat.primitives.asymmetric import ec

    return {KeyType.EC_P256: ec.SECP256R1, KeyType.EC_P384: ec.SECP384R1}


def generate_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if key_type in _EC_KEY_TYPES:
        return ec.generate_private_key(_curves()[key_type]())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def key_type_of(key: CertificatePublicKeyTypes) -> KeyType | None:
    """The KeyType a public key belongs to, or None for anything certdrop does not issue."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, ec.EllipticCurvePublicKey):
        for key_type, curve in _curves().items():
            if isinstance(key.curve, curve):
                return key_type
    if isinstance(key, rsa.RSAPublicKey):
        for key_type, bits in _RSA_BITS.items():
            if key.key_size == bits:
                return key_type
    return None


def pkcs8_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_csr(key_pem: bytes, names: tuple[str, ...]) -> bytes:
    from acme import crypto_util

    return crypto_util.make_csr(key_pem, list(names))


def key_matches_certificate(key: CertificateIssuerPrivateKeyTypes, cert: x509.Certificate) -> bool:
    from cryptography.hazmat.primitives import serialization

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
