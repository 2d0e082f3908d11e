"""One-line, copy-pasteable forms of public keys, each with a prefix and a checksum.

    certdrop-agent-v1:<agent-id>:<base64url(x25519 public 32 | ed25519 public 32 | checksum 4)>
    certdrop-issuer-v1:<base64url(ed25519 public 32 | checksum 4)>
    certdrop-escrow-v1:<base64url(x25519 public 32 | checksum 4)>

The checksum is the first 4 bytes of SHA-256 over everything before the last `:` (the prefix and,
for an agent, its id), then `:`, then the key bytes. A mistyped character anywhere, in the id too,
fails it. Whitespace is ignored so a line wrapped by a terminal or a mail client still parses.

The operator registers an agent's token (`certdrop agent add`); the agent is given the issuer line
at enrollment and pins that key; the cloud reads the escrow line from its config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from nas_agent._encoding import b64url_decode, b64url_encode
from nas_agent.errors import TokenError
from nas_agent.ids import AGENT_ID_PATTERN, is_agent_id
from nas_agent.keys import AgentKeys, raw_public_bytes

AGENT_TOKEN_PREFIX = "certdrop-agent-v1"
ISSUER_KEY_PREFIX = "certdrop-issuer-v1"
ESCROW_KEY_PREFIX = "certdrop-escrow-v1"

_KEY_SIZE = 32
_CHECKSUM_SIZE = 4


@dataclass(frozen=True)
class Enrollment:
    """What leaves the NAS: the agent id and the public halves of its two keys."""

    agent_id: str
    box_public_key: x25519.X25519PublicKey
    signing_public_key: ed25519.Ed25519PublicKey

    def token(self) -> str:
        body = raw_public_bytes(self.box_public_key) + raw_public_bytes(self.signing_public_key)
        return _encode_line(f"{AGENT_TOKEN_PREFIX}:{self.agent_id}", body)


def enrollment_of(keys: AgentKeys) -> Enrollment:
    return Enrollment(
        agent_id=keys.agent_id,
        box_public_key=keys.box_key.public_key(),
        signing_public_key=keys.signing_key.public_key(),
    )


def parse_enrollment_token(text: str) -> Enrollment:
    """Read an agent's token; raise TokenError saying what is wrong with it."""
    kind = "enrollment token"
    head, body = _decode_line(text, AGENT_TOKEN_PREFIX, 2 * _KEY_SIZE, kind, has_id=True)
    agent_id = head.split(":", 1)[1]
    return Enrollment(
        agent_id=agent_id,
        box_public_key=x25519.X25519PublicKey.from_public_bytes(body[:_KEY_SIZE]),
        signing_public_key=_ed25519_public(body[_KEY_SIZE:], kind),
    )


def issuer_key_line(public_key: ed25519.Ed25519PublicKey) -> str:
    return _encode_line(ISSUER_KEY_PREFIX, raw_public_bytes(public_key))


def parse_issuer_key_line(text: str) -> ed25519.Ed25519PublicKey:
    kind = "issuer key"
    _, body = _decode_line(text, ISSUER_KEY_PREFIX, _KEY_SIZE, kind, has_id=False)
    return _ed25519_public(body, kind)


def escrow_key_line(public_key: x25519.X25519PublicKey) -> str:
    return _encode_line(ESCROW_KEY_PREFIX, raw_public_bytes(public_key))


def parse_escrow_key_line(text: str) -> x25519.X25519PublicKey:
    _, body = _decode_line(text, ESCROW_KEY_PREFIX, _KEY_SIZE, "escrow key", has_id=False)
    return x25519.X25519PublicKey.from_public_bytes(body)


def _checksum(head: str, body: bytes) -> bytes:
    return hashlib.sha256(head.encode("ascii") + b":" + body).digest()[:_CHECKSUM_SIZE]


def _encode_line(head: str, body: bytes) -> str:
    return f"{head}:{b64url_encode(body + _checksum(head, body))}"


def _decode_line(
    text: str, prefix: str, size: int, kind: str, *, has_id: bool
) -> tuple[str, bytes]:
    """Split, check and strip the checksum; return (everything before the last `:`, key bytes)."""
    if not isinstance(text, str):
        raise TokenError(kind, "not text")
    compact = "".join(text.split())
    parts = compact.split(":")
    if parts[0] != prefix:
        raise TokenError(kind, f"does not start with {prefix}:")
    expected_parts = 3 if has_id else 2
    if len(parts) != expected_parts:
        shape = f"{prefix}:<agent-id>:<key>" if has_id else f"{prefix}:<key>"
        raise TokenError(kind, f"has {len(parts)} ':'-separated parts, expected {shape}")
    if has_id and not is_agent_id(parts[1]):
        raise TokenError(kind, f"agent id {parts[1]!r} does not match {AGENT_ID_PATTERN}")
    try:
        payload = b64url_decode(parts[-1])
    except ValueError as exc:
        raise TokenError(kind, "the key part is not base64url (a mistyped character?)") from exc
    if len(payload) != size + _CHECKSUM_SIZE:
        raise TokenError(
            kind, f"the key part holds {len(payload)} bytes, expected {size + _CHECKSUM_SIZE}"
        )
    head = ":".join(parts[:-1])
    body, checksum = payload[:size], payload[size:]
    if _checksum(head, body) != checksum:
        raise TokenError(kind, "checksum does not match (a mistyped or missing character?)")
    return head, body


def _ed25519_public(data: bytes, kind: str) -> ed25519.Ed25519PublicKey:
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    except ValueError as exc:
        raise TokenError(kind, "the key is not an Ed25519 public key") from exc
