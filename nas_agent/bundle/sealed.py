"""Sealed objects: one bundle plaintext encrypted to one recipient with HPKE (RFC 9180).

    offset 0  4 bytes   magic "CDSB"
    offset 4  1 byte    format version, 0x01
    offset 5  32 bytes  enc: the HPKE encapsulated key (the sender's ephemeral X25519 public key)
    offset 37 rest      ct: ChaCha20-Poly1305 ciphertext of the plaintext, 16-byte tag at the end

HPKE base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, single shot
(sequence number 0), empty AAD. `info` binds the format version, the recipient, the site and the
version, so an object opens only for the recipient, site and version it was sealed for:

    b"certdrop sealed bundle v1\\nrecipient=<id>\\nsite=<site>\\nversion=<decimal>"

Ids cannot contain `\\n` or `=` (see nas_agent.ids), so the string is unambiguous. The escrow copy
is sealed the same way to the escrow key, with the recipient id `_escrow`, which no agent can have.

The object is the same for both plaintext kinds, `certdrop-bundle-v1` (`open_sealed`) and
`certdrop-leaf-v1` (`open_sealed_leaf`); whoever does not know which one it holds (the escrow's
re-sealing) calls `open_sealed_any`.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from nas_agent._encoding import load_json_object
from nas_agent.bundle.leaf import (
    LEAF_FORMAT,
    LeafPlaintext,
    decode_leaf_plaintext,
    encode_leaf_plaintext,
)
from nas_agent.bundle.plaintext import (
    MAX_PLAINTEXT_BYTES,
    BundlePlaintext,
    decode_plaintext,
    encode_plaintext,
    is_version,
)
from nas_agent.errors import DecryptionFailed, MalformedSealedObject, UnsupportedFormat
from nas_agent.ids import is_agent_id, is_site_id

SEALED_MAGIC = b"CDSB"
SEALED_FORMAT = 1
ESCROW_RECIPIENT = "_escrow"

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_HEADER = SEALED_MAGIC + bytes([SEALED_FORMAT])
_ENC_SIZE = 32
_TAG_SIZE = 16
MIN_SEALED_BYTES = len(_HEADER) + _ENC_SIZE + _TAG_SIZE
MAX_SEALED_BYTES = len(_HEADER) + _ENC_SIZE + MAX_PLAINTEXT_BYTES + _TAG_SIZE

_P = TypeVar("_P")


def hpke_info(recipient_id: str, site: str, version: int) -> bytes:
    if not (is_agent_id(recipient_id) or recipient_id == ESCROW_RECIPIENT):
        raise ValueError(
            f"recipient {recipient_id!r} is neither an agent id nor {ESCROW_RECIPIENT}"
        )
    if not is_site_id(site) or not is_version(version):
        raise ValueError(f"site {site!r} / version {version!r} out of shape")
    return (
        f"certdrop sealed bundle v{SEALED_FORMAT}\n"
        f"recipient={recipient_id}\nsite={site}\nversion={version}"
    ).encode("ascii")


def seal(
    plaintext: BundlePlaintext | LeafPlaintext,
    *,
    recipient_id: str,
    recipient_public_key: x25519.X25519PublicKey,
) -> bytes:
    """Seal `plaintext` to one recipient (an agent id, or ESCROW_RECIPIENT with the escrow key)."""
    info = hpke_info(recipient_id, plaintext.site, plaintext.version)
    if isinstance(plaintext, LeafPlaintext):
        data = encode_leaf_plaintext(plaintext)
    else:
        data = encode_plaintext(plaintext)
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"bundle plaintext is {len(data)} bytes, more than {MAX_PLAINTEXT_BYTES}")
    return _HEADER + _SUITE.encrypt(data, recipient_public_key, info=info)


def open_sealed(
    sealed: bytes | bytearray,
    *,
    recipient_id: str,
    private_key: x25519.X25519PrivateKey,
    site: str,
    version: int,
) -> BundlePlaintext:
    """Open an object sealed for (recipient_id, site, version) holding a `certdrop-bundle-v1`.

    Raises MalformedSealedObject, UnsupportedFormat, DecryptionFailed, MalformedPlaintext.
    """
    return _open(sealed, recipient_id, private_key, site, version, decode_plaintext)


def open_sealed_leaf(
    sealed: bytes | bytearray,
    *,
    recipient_id: str,
    private_key: x25519.X25519PrivateKey,
    site: str,
    version: int,
) -> LeafPlaintext:
    """As `open_sealed`, for an object holding a `certdrop-leaf-v1`."""
    return _open(sealed, recipient_id, private_key, site, version, decode_leaf_plaintext)


def open_sealed_any(
    sealed: bytes | bytearray,
    *,
    recipient_id: str,
    private_key: x25519.X25519PrivateKey,
    site: str,
    version: int,
) -> BundlePlaintext | LeafPlaintext:
    """As `open_sealed`, for an object holding either plaintext kind (told by its `format`)."""
    return _open(sealed, recipient_id, private_key, site, version, _decode_any)


def _decode_any(data: bytes) -> BundlePlaintext | LeafPlaintext:
    try:
        found = load_json_object(data, max_size=MAX_PLAINTEXT_BYTES).get("format")
    except ValueError:
        found = None  # decode_plaintext says what is wrong
    return decode_leaf_plaintext(data) if found == LEAF_FORMAT else decode_plaintext(data)


def _open(
    sealed: bytes | bytearray,
    recipient_id: str,
    private_key: x25519.X25519PrivateKey,
    site: str,
    version: int,
    decode: Callable[[bytes], _P],
) -> _P:
    if not isinstance(sealed, (bytes, bytearray)):
        raise MalformedSealedObject("sealed object is not bytes", site=site, version=version)
    if not MIN_SEALED_BYTES <= len(sealed) <= MAX_SEALED_BYTES:
        raise MalformedSealedObject(
            f"sealed object is {len(sealed)} bytes, outside {MIN_SEALED_BYTES}..{MAX_SEALED_BYTES}",
            site=site,
            version=version,
        )
    if sealed[: len(SEALED_MAGIC)] != SEALED_MAGIC:
        raise MalformedSealedObject(
            "sealed object does not start with the magic CDSB", site=site, version=version
        )
    if sealed[len(SEALED_MAGIC)] != SEALED_FORMAT:
        raise UnsupportedFormat(
            "sealed object", sealed[len(SEALED_MAGIC)], site=site, version=version
        )
    info = hpke_info(recipient_id, site, version)
    try:
        data = _SUITE.decrypt(bytes(sealed[len(_HEADER) :]), private_key, info=info)
    except InvalidTag as exc:
        raise DecryptionFailed(
            f"HPKE open failed: not sealed to this key as {recipient_id}, or altered",
            site=site,
            version=version,
        ) from exc
    return decode(data)
