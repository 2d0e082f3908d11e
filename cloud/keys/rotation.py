"""Rotating the issuer's keys without re-enrolling the fleet.

The signing key: agents pin the key they were enrolled with and follow a chain of rotation
statements (`nas_agent.bundle.rotation`) that every index v2 carries. The chain lives in the
store, with the key it starts from:

    state/issuer/rotations.json  {"format": "certdrop-rotations-v1", "origin_key": "<b64url>",
                                  "rotations": [statement, ...]}

`rotate_signing` goes in three steps, each safe to be killed after and re-run:

    1. the key store holds [key in use, successor]         (the successor is not used yet)
    2. the chain gains "key in use → successor", signed     (from now on the successor signs)
    3. the key store holds [successor]

The key that signs is always the one the chain ends at (`signer_for`), so between 2 and 3 the
successor already signs. Between steps 2 and 3, while the issuer still holds both keys, every
registry record, index and escrow statement the old key signed is signed again with the new one
(`resign`).

The chain is in the bucket, which the issuer does not trust: it only tells agents how to follow
a rotation. What the issuer itself accepts as its own signature (registry records, entries it
carries into a new index, invitation records) is a signature by a key it holds now — the key
store's, never a key the chain names. Otherwise a store writer could put a key of theirs at the
head of the chain and have records they sign accepted.

The escrow key is not pinned by anyone: `rotate_escrow` puts the new key beside the old one
(new copies are sealed to the newest key, copies open with either), re-seals every escrow copy
to the new key, then drops the old one. A copy's statement (`cloud.publish.escrow_statements`)
binds what the copy holds, not its sealed bytes, so it stays true across the re-seal.

After a suspected compromise the old key is not trusted to sign its successor:
`reset_after_compromise` makes a new key and starts a new chain from it, and every agent is
re-pinned by hand (README "Rotating the issuer's keys").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from cloud.errors import PreconditionFailed, RotationsInvalid
from cloud.keys.issuer import ESCROW_KEY, SIGNING_KEY, load_issuer, pem_blocks
from cloud.keys.store import KeyStore
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent._encoding import b64url_decode, b64url_encode, load_json_object
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    BundlePlaintext,
    LeafPlaintext,
    open_sealed_any,
    seal,
)
from nas_agent.bundle.rotation import (
    RotationStatement,
    follow_chain,
    parse_rotations,
    sign_rotation,
)
from nas_agent.errors import BundleError
from nas_agent.keys import IssuerKeys, key_id, raw_public_bytes

log = logging.getLogger(__name__)

CHAIN_FORMAT = "certdrop-rotations-v1"
_MAX_CHAIN_BYTES = 256 * 1024


@dataclass(frozen=True)
class Signer:
    """The issuer's signing key in use, the rotations that lead to it (for agents), and the
    public halves of the keys the issuer holds, by id: what it accepts as its own signature."""

    key: ed25519.Ed25519PrivateKey = field(repr=False)
    rotations: tuple[RotationStatement, ...]
    trusted: Mapping[str, ed25519.Ed25519PublicKey] = field(repr=False)

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key())


@dataclass(frozen=True)
class _Chain:
    origin: ed25519.Ed25519PublicKey
    rotations: tuple[RotationStatement, ...]
    etag: str | None

    @property
    def end_id(self) -> str:
        return self.rotations[-1].new_key_id if self.rotations else key_id(self.origin)


def signer_for(issuer: IssuerKeys, store: Store) -> Signer:
    """The key that signs now: the one the chain ends at (the key in use before any rotation).
    Raises RotationsInvalid when the chain does not verify or ends at a key the issuer lacks."""
    chain = _load_chain(store)
    held = [key for key in (issuer.signing_key, issuer.next_signing_key) if key is not None]
    trusted = {key_id(key.public_key()): key.public_key() for key in held}
    if chain is None:
        return Signer(issuer.signing_key, (), trusted)
    for candidate in held:
        if key_id(candidate.public_key()) == chain.end_id:
            return Signer(candidate, chain.rotations, trusted)
    raise RotationsInvalid(
        f"the chain ends at key {chain.end_id}, which the issuer does not hold: it was altered,"
        " or the key store was restored from an older copy"
    )


def rotate_signing(
    keys: KeyStore, store: Store, now: datetime, resign: Callable[[Signer], None]
) -> RotationStatement:
    """Makes the signing key's successor and hands trust to it (the module's three steps);
    `resign` signs the registry and the indexes again with the successor while both keys are
    held. Re-run after a kill, it finishes that rotation instead of starting another."""
    issuer = load_issuer(keys)
    signer = signer_for(issuer, store)
    successor = issuer.next_signing_key
    if successor is not None and signer.key is successor:  # killed after step 2
        resign(signer)
        keys.replace(SIGNING_KEY, pem_blocks(successor))
        return signer.rotations[-1]
    if successor is None:
        successor = ed25519.Ed25519PrivateKey.generate()
        keys.replace(SIGNING_KEY, pem_blocks(signer.key, successor))  # step 1
    chain = _load_chain(store) or _Chain(signer.key.public_key(), (), None)
    statement = sign_rotation(
        signer.key,
        successor.public_key(),
        sequence=len(chain.rotations) + 1,
        issued_at=now,
    )
    _save_chain(store, _Chain(chain.origin, (*chain.rotations, statement), chain.etag))  # step 2
    resign(signer_for(load_issuer(keys), store))  # the successor signs; both keys are trusted
    keys.replace(SIGNING_KEY, pem_blocks(successor))  # step 3
    log.info("issuer signing key %s replaced by %s", signer.key_id, statement.new_key_id)
    return statement


def reset_after_compromise(keys: KeyStore, store: Store) -> ed25519.Ed25519PrivateKey:
    """A new signing key that no earlier key vouches for: a new chain starts from it, and every
    agent must be given its public key by hand."""
    chain = _load_chain(store)
    new_key = ed25519.Ed25519PrivateKey.generate()
    keys.replace(SIGNING_KEY, pem_blocks(new_key))
    _save_chain(store, _Chain(new_key.public_key(), (), chain.etag if chain else None))
    log.warning("issuer signing key reset to %s: re-pin every agent", key_id(new_key.public_key()))
    return new_key


def rotate_escrow(keys: KeyStore, store: Store) -> int:
    """Replaces the escrow key and re-seals every escrow copy to the new one; returns how many
    were re-sealed. Re-run after a kill, it finishes the same rotation."""
    issuer = load_issuer(keys)
    if not issuer.retired_escrow_keys:
        new_key = x25519.X25519PrivateKey.generate()
        keys.replace(ESCROW_KEY, pem_blocks(issuer.escrow_key, new_key))
        issuer = load_issuer(keys)
    resealed = reseal_escrow(store, issuer)
    # A publish that loaded the keys before the new one was added seals to the old: the old
    # key goes only once every copy opens with the new one (run the command again otherwise).
    if reseal_escrow(store, issuer) or not _all_open_with(store, issuer):
        raise RotationsInvalid("escrow copies changed during the rotation; run it again")
    keys.replace(ESCROW_KEY, pem_blocks(issuer.escrow_key))
    log.info("escrow key replaced; %d escrow cop(ies) re-sealed", resealed)
    return resealed


def reseal_escrow(store: Store, issuer: IssuerKeys) -> int:
    """Every escrow copy not yet sealed to `issuer.escrow_key`, opened with a retiring key and
    sealed to the new one (a conditional write: a publish meanwhile wins)."""
    resealed = 0
    for info in list(store.list(store_layout.ESCROW_PREFIX)):
        site, version = store_layout.parse_escrow(info.key)
        found = store.get(info.key)
        if not isinstance(found, StoredObject):
            continue
        opened = open_escrow_copy(found.body, issuer, site=site, version=version)
        if opened is None:
            raise RotationsInvalid(f"{info.key} opens with none of the issuer's escrow keys")
        key_used, plaintext = opened
        if key_used is issuer.escrow_key:
            continue
        sealed = seal(
            plaintext,
            recipient_id=ESCROW_RECIPIENT,
            recipient_public_key=issuer.escrow_key.public_key(),
        )
        try:
            store.put(info.key, sealed, if_match=found.etag)
        except PreconditionFailed:
            continue  # rewritten meanwhile: the check after the pass looks at it again
        resealed += 1
    return resealed


def _all_open_with(store: Store, issuer: IssuerKeys) -> bool:
    """Whether every escrow copy opens with the newest escrow key."""
    newest = IssuerKeys(issuer.signing_key, issuer.escrow_key)
    for info in list(store.list(store_layout.ESCROW_PREFIX)):
        site, version = store_layout.parse_escrow(info.key)
        found = store.get(info.key)
        opened = (
            open_escrow_copy(found.body, newest, site=site, version=version)
            if isinstance(found, StoredObject)
            else True
        )
        if opened is None:
            return False
    return True


def open_escrow_copy(
    sealed: bytes, issuer: IssuerKeys, *, site: str, version: int
) -> tuple[x25519.X25519PrivateKey, BundlePlaintext | LeafPlaintext] | None:
    """(the key that opened it, the plaintext: a bundle, or an agent-custody site's leaf), trying
    the newest key first; None if none does."""
    for candidate in (issuer.escrow_key, *reversed(issuer.retired_escrow_keys)):
        try:
            plaintext = open_sealed_any(
                sealed,
                recipient_id=ESCROW_RECIPIENT,
                private_key=candidate,
                site=site,
                version=version,
            )
        except BundleError:
            continue
        return candidate, plaintext
    return None


def _load_chain(store: Store) -> _Chain | None:
    found = store.get(store_layout.ISSUER_ROTATIONS)
    if not isinstance(found, StoredObject):
        return None
    try:
        document = load_json_object(found.body, max_size=_MAX_CHAIN_BYTES)
        if set(document) != {"format", "origin_key", "rotations"}:
            raise ValueError('holds exactly "format", "origin_key" and "rotations"')
        if document["format"] != CHAIN_FORMAT:
            raise ValueError(f"format is not {CHAIN_FORMAT}")
        origin = ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(document["origin_key"]))
        rotations = parse_rotations(document["rotations"])
        follow_chain(origin, rotations)
    except (ValueError, BundleError) as exc:
        raise RotationsInvalid(str(exc)) from exc
    return _Chain(origin, rotations, found.etag)


def _save_chain(store: Store, chain: _Chain) -> None:
    body = json.dumps(
        {
            "format": CHAIN_FORMAT,
            "origin_key": b64url_encode(raw_public_bytes(chain.origin)),
            "rotations": [statement.to_json() for statement in chain.rotations],
        },
        indent=2,
        sort_keys=True,
    ).encode("ascii")
    # Conditional: two rotations at once must not both extend the same chain.
    if chain.etag is None:
        store.put(store_layout.ISSUER_ROTATIONS, body, if_absent=True)
    else:
        store.put(store_layout.ISSUER_ROTATIONS, body, if_match=chain.etag)
