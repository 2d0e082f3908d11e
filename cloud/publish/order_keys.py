"""The private key of an order about to be finalized, sealed to the escrow key and kept in the site
state with the order's URL: a run that dies after finalize (the CA has issued, the process held
the only copy of the key) is finished by the next run with that key and the CA's certificate —
no second order, no certificate thrown away.

Sealed like a bundle (HPKE base mode, X25519 / HKDF-SHA256 / ChaCha20-Poly1305) with its own
`info`, which binds the site and the order URL, so a sealed key opens only for its order.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _info(site: str, order_url: str) -> bytes:
    return f"certdrop order key v1\nsite={site}\norder={order_url}".encode()


def seal_order_key(
    key_pem: bytes, escrow_public: x25519.X25519PublicKey, site: str, order_url: str
) -> str:
    sealed = _SUITE.encrypt(key_pem, escrow_public, info=_info(site, order_url))
    return base64.b64encode(sealed).decode("ascii")


def open_order_key(
    sealed: str, escrow_keys: Sequence[x25519.X25519PrivateKey], site: str, order_url: str
) -> bytes:
    """Opens with the first of `escrow_keys` that can: an escrow key rotation may have begun
    since the key was sealed. Raises InvalidTag when none can."""
    for escrow_private in escrow_keys[:-1]:
        try:
            return _SUITE.decrypt(
                base64.b64decode(sealed), escrow_private, info=_info(site, order_url)
            )
        except InvalidTag:
            continue
    return _SUITE.decrypt(base64.b64decode(sealed), escrow_keys[-1], info=_info(site, order_url))
