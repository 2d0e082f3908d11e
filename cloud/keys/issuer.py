"""The issuer's own keys: an Ed25519 key signing index entries, an X25519 escrow key.

`certdrop init` creates them once; every publish loads them. Agents pin the signing key's public
half (the `certdrop-issuer-v1:` line). The escrow copy of each bundle lets a new agent receive the
current certificate without a new ACME order.

Each key's entry holds one PEM private key, or two while `certdrop issuer rotate` is under way:
for the signing key, the key in use and then its successor (`cloud.keys.rotation` says when
the successor takes over); for the escrow key, the retiring key and then the new one.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from cloud.errors import IssuerKeyInvalid, IssuerNotInitialized, KeyExists
from cloud.keys.store import KeyStore
from nas_agent import redaction
from nas_agent.errors import KeyFileError
from nas_agent.keys import (
    ContractPrivateKey,
    IssuerKeys,
    generate_issuer_keys,
    load_ed25519_key_pem,
    load_x25519_key_pem,
    private_key_pem,
)

SIGNING_KEY = "issuer-signing-ed25519.pem"
ESCROW_KEY = "issuer-escrow-x25519.pem"

_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_Key = TypeVar("_Key")
_Key_co = TypeVar("_Key_co", covariant=True)


class _PemLoader(Protocol[_Key_co]):
    """`load_x25519_key_pem` or `load_ed25519_key_pem`."""

    def __call__(self, data: bytes, *, source: str) -> _Key_co: ...


def init_issuer(keys: KeyStore) -> IssuerKeys:
    """Creates both keys; refuses (KeyExists) if either is already there, so a repeated `init`
    can never replace the key every agent has pinned."""
    for name in (SIGNING_KEY, ESCROW_KEY):
        if keys.load(name) is not None:
            raise KeyExists(name)
    issuer = generate_issuer_keys()
    for name, key in ((SIGNING_KEY, issuer.signing_key), (ESCROW_KEY, issuer.escrow_key)):
        pem = private_key_pem(key)
        redaction.register(pem.decode("ascii"))
        keys.create(name, pem)
    return issuer


def load_issuer(keys: KeyStore) -> IssuerKeys:
    signing = _load(keys, SIGNING_KEY, load_ed25519_key_pem)
    escrow = _load(keys, ESCROW_KEY, load_x25519_key_pem)
    if len(signing) > 2 or len(escrow) > 2:
        raise IssuerKeyInvalid(SIGNING_KEY, "more than two keys: a rotation left it inconsistent")
    return IssuerKeys(
        signing_key=signing[0],
        escrow_key=escrow[-1],
        next_signing_key=signing[1] if len(signing) == 2 else None,
        retired_escrow_keys=tuple(escrow[:-1]),
    )


def pem_blocks(*keys: ContractPrivateKey) -> bytes:
    """What a key's entry holds: the PEM of each key, in order."""
    return b"".join(private_key_pem(key) for key in keys)


def is_initialized(keys: KeyStore) -> bool:
    return keys.load(SIGNING_KEY) is not None and keys.load(ESCROW_KEY) is not None


def public_lines(issuer: IssuerKeys) -> tuple[str, str]:
    """(the issuer key line agents pin, the escrow key line) — public halves only."""
    # Imported here: only the commands that print the lines need the enrollment code.
    from nas_agent.enrollment import escrow_key_line, issuer_key_line

    return (
        issuer_key_line(issuer.signing_key.public_key()),
        escrow_key_line(issuer.escrow_key.public_key()),
    )


def _load(keys: KeyStore, name: str, load_pem: _PemLoader[_Key]) -> list[_Key]:
    data = keys.load(name)
    if data is None:
        raise IssuerNotInitialized(name)
    blocks = [_BEGIN + block for block in data.split(_BEGIN)[1:]]
    if not blocks:
        raise IssuerKeyInvalid(name, "holds no PEM private key")
    for block in blocks:
        redaction.register(block.decode("ascii", "replace"))
    try:
        return [load_pem(block, source=name) for block in blocks]
    except KeyFileError as exc:
        raise IssuerKeyInvalid(name, exc.reason) from exc
