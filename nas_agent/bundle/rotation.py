"""Issuer key rotation: a chain of statements, each signed by the key it retires.

    {"signed": {"format": "certdrop-key-rotation-v1", "sequence": 1,
                "previous_key_id": "<16 hex>", "new_key": "<b64url of 32 raw bytes>",
                "issued_at": "2026-12-04T00:00:00Z"},
     "signature": "<b64url Ed25519 signature by the previous key>"}

The signed bytes are b"certdrop key rotation v1\\n" + canonical JSON of "signed". Statement n
(from 1) hands trust from key n-1 to key n; key 0 is the one `certdrop init` made. Every index v2
carries the whole chain, so an agent needs no other object to follow a rotation.

An agent walks the chain from the key it is configured with (the anchor: key 0 for agents
enrolled before any rotation, a later key for those enrolled after). With its state it also
remembers the key it follows; a chain that does not lead through that key is a fork (someone
holding a retired key signed a different successor) or a rollback (a shorter chain), and is
refused. This is TUF's root rotation (spec section 5.3.4) for a single key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    parse_timestamp,
)
from nas_agent.errors import RotationFork, RotationInvalid, UnknownIssuerKey
from nas_agent.keys import key_id, raw_public_bytes

ROTATION_FORMAT = "certdrop-key-rotation-v1"
ROTATION_CONTEXT = b"certdrop key rotation v1\n"
MAX_ROTATIONS = 64  # far more than any deployment makes; bounds what an index can make us verify
_SIGNED_FIELDS = frozenset({"format", "sequence", "previous_key_id", "new_key", "issued_at"})


@dataclass(frozen=True)
class RotationStatement:
    sequence: int
    previous_key_id: str
    new_key: ed25519.Ed25519PublicKey = field(repr=False, compare=False)
    new_key_id: str
    issued_at: datetime
    signature: bytes = field(repr=False)

    def signed(self) -> dict[str, Any]:
        return {
            "format": ROTATION_FORMAT,
            "sequence": self.sequence,
            "previous_key_id": self.previous_key_id,
            "new_key": b64url_encode(raw_public_bytes(self.new_key)),
            "issued_at": format_timestamp(self.issued_at),
        }

    def signed_bytes(self) -> bytes:
        return ROTATION_CONTEXT + canonical_json(self.signed())

    def to_json(self) -> dict[str, Any]:
        return {"signed": self.signed(), "signature": b64url_encode(self.signature)}


@dataclass(frozen=True)
class IssuerTrust:
    """Which issuer key an agent follows (what its state remembers): the key's place in the
    chain, its id, and the configured key the chain was walked from."""

    anchor_key_id: str
    sequence: int
    key_id: str
    # Where the anchor sits in the chain (0: key 0; n: the key statement n made). Remembered so
    # that a later chain is walked from the same place: statements before it are never verified,
    # so a chain that names the anchor elsewhere could lead anywhere.
    anchor_sequence: int = 0


@dataclass(frozen=True)
class TrustedKey:
    """The issuer key an agent follows, with the public key itself."""

    trust: IssuerTrust
    key: ed25519.Ed25519PublicKey = field(repr=False, compare=False)

    @property
    def key_id(self) -> str:
        return self.trust.key_id


def sign_rotation(
    retiring: ed25519.Ed25519PrivateKey,
    new_key: ed25519.Ed25519PublicKey,
    *,
    sequence: int,
    issued_at: datetime,
) -> RotationStatement:
    """Statement `sequence`: `retiring` hands its trust to `new_key`."""
    unsigned = RotationStatement(
        sequence=sequence,
        previous_key_id=key_id(retiring.public_key()),
        new_key=new_key,
        new_key_id=key_id(new_key),
        issued_at=issued_at.replace(microsecond=0),
        signature=b"",
    )
    return RotationStatement(
        **{**unsigned.__dict__, "signature": retiring.sign(unsigned.signed_bytes())}
    )


def parse_rotations(raw: object) -> tuple[RotationStatement, ...]:
    """Read an untrusted chain (a JSON list); raise RotationInvalid. Signatures are checked by
    `follow_chain`, which knows the keys."""
    if not isinstance(raw, list) or len(raw) > MAX_ROTATIONS:
        raise RotationInvalid(f"rotations is not a list of at most {MAX_ROTATIONS} statements")
    return tuple(_parse_statement(position, item) for position, item in enumerate(raw))


def follow_chain(
    anchor: ed25519.Ed25519PublicKey,
    chain: Sequence[RotationStatement],
    *,
    remembered: IssuerTrust | None = None,
) -> TrustedKey:
    """The key the chain leads to from `anchor`, checking every statement from the anchor on.

    `remembered` is the key this agent followed before (its state), ignored when it was walked
    from another anchor (the operator re-pinned the agent). Raises UnknownIssuerKey (the anchor
    is not in the chain), RotationInvalid (a statement does not verify), RotationFork (the chain
    leaves the remembered key out, or is shorter than the remembered one)."""
    anchor_id = key_id(anchor)
    if remembered is not None and remembered.anchor_key_id == anchor_id:
        start = remembered.anchor_sequence
        if not _anchor_at(anchor_id, chain, start):
            raise RotationFork(
                f"the chain no longer names this agent's configured key {anchor_id} at rotation"
                f" {start}, where it did: another history"
            )
    else:
        start = _position_of(anchor_id, chain)
    current, sequence = anchor, start
    for statement in chain[start:]:
        if statement.previous_key_id != key_id(current):
            raise RotationInvalid(
                f"rotation {statement.sequence} does not follow key {key_id(current)}"
            )
        try:
            current.verify(statement.signature, statement.signed_bytes())
        except InvalidSignature as exc:
            raise RotationInvalid(
                f"rotation {statement.sequence}: the signature does not verify"
            ) from exc
        current, sequence = statement.new_key, statement.sequence
    followed = TrustedKey(IssuerTrust(anchor_id, sequence, key_id(current), start), current)
    if remembered is not None and remembered.anchor_key_id == anchor_id:
        if remembered.sequence > sequence:
            raise RotationFork(
                f"the index carries {sequence} rotation(s), this agent already follows key"
                f" {remembered.key_id} of rotation {remembered.sequence}: an older key history"
            )
        along = chain[remembered.sequence - 1].new_key_id if remembered.sequence else anchor_id
        if along != remembered.key_id:
            raise RotationFork(
                f"rotation {remembered.sequence} names key {along}, but this agent follows"
                f" {remembered.key_id} there: two successors of one key"
            )
    return followed


def _anchor_at(anchor_id: str, chain: Sequence[RotationStatement], position: int) -> bool:
    """Whether the chain has the anchor at `position` (0: before statement 1)."""
    if position > len(chain):
        return False
    if position == 0:
        return not chain or chain[0].previous_key_id == anchor_id
    return chain[position - 1].new_key_id == anchor_id


def _position_of(anchor_id: str, chain: Sequence[RotationStatement]) -> int:
    """How many statements precede the anchor: 0 for key 0, n for the key statement n made."""
    if not chain or chain[0].previous_key_id == anchor_id:
        return 0
    for statement in chain:
        if statement.new_key_id == anchor_id:
            return statement.sequence
    raise UnknownIssuerKey(chain[-1].new_key_id, anchor_id)


def _parse_statement(position: int, raw: object) -> RotationStatement:
    def refuse(reason: str) -> RotationInvalid:
        return RotationInvalid(f"rotations[{position}]: {reason}")

    if not isinstance(raw, dict) or set(raw) != {"signed", "signature"}:
        raise refuse('a statement is an object with exactly "signed" and "signature"')
    signed = raw["signed"]
    if not isinstance(signed, dict) or set(signed) != _SIGNED_FIELDS:
        raise refuse(f"signed has exactly the fields {sorted(_SIGNED_FIELDS)}")
    if signed["format"] != ROTATION_FORMAT:
        raise refuse(f"format is not {ROTATION_FORMAT}")
    if type(signed["sequence"]) is not int or signed["sequence"] != position + 1:
        raise refuse(f"sequence is not {position + 1}")
    previous = signed["previous_key_id"]
    if (
        not isinstance(previous, str)
        or len(previous) != 16
        or set(previous) - set("0123456789abcdef")
    ):
        raise refuse("previous_key_id is not 16 lowercase hex digits")
    try:
        raw_key = b64url_decode(signed["new_key"])
        new_key = ed25519.Ed25519PublicKey.from_public_bytes(raw_key)
        issued_at = parse_timestamp(signed["issued_at"])
        signature = b64url_decode(raw["signature"])
    except ValueError as exc:
        raise refuse(str(exc)) from exc
    if len(raw_key) != 32 or len(signature) != 64:
        raise refuse("new_key is not 32 bytes or signature not 64")
    return RotationStatement(
        sequence=signed["sequence"],
        previous_key_id=previous,
        new_key=new_key,
        new_key_id=key_id(new_key),
        issued_at=issued_at,
        signature=signature,
    )
