"""The key types a site in agent custody may ask for, as the key requests spell them: the one
owner of that spelling, for the agent that generates keys and the issuer that checks CSRs."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")

_CURVES = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}


def key_type_of(public_key: Any) -> str | None:
    """The spelling of `public_key`'s type, or None for any other kind of key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for name, curve in _CURVES.items():
            if isinstance(public_key.curve, curve):
                return name
        return None
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.public_numbers().e == 65537:
        for name, bits in _RSA_BITS.items():
            if public_key.key_size == bits:
                return name
    return None


def generate_key(key_type: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A fresh private key of `key_type` (one of KEY_TYPES); ValueError for any other."""
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    raise ValueError(f"key type {key_type!r} is not one of {', '.join(KEY_TYPES)}")
