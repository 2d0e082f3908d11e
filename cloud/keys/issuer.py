"""The issuer's own keys: an Ed25519 key signing index entries, an X25519 escrow key.

`certdrop init` creates them once; every publish loads them. Agents pin the signing key's public
half (the `certdrop-issuer-v1:` line). The escrow copy of each bundle lets a new agent receive the
current certificate without a new ACME order.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from cloud.errors import IssuerKeyInvalid, IssuerNotInitialized, KeyExists
from cloud.keys.store import KeyStore
from nas_agent.enrollment import escrow_key_line, issuer_key_line
from nas_agent.errors import KeyFileError
from nas_agent.keys import (
    IssuerKeys,
    generate_issuer_keys,
    load_ed25519_key_pem,
    load_x25519_key_pem,
    private_key_pem,
)

SIGNING_KEY = "issuer-signing-ed25519.pem"
ESCROW_KEY = "issuer-escrow-x25519.pem"

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
    keys.create(SIGNING_KEY, private_key_pem(issuer.signing_key))
    keys.create(ESCROW_KEY, private_key_pem(issuer.escrow_key))
    return issuer


def load_issuer(keys: KeyStore) -> IssuerKeys:
    return IssuerKeys(
        signing_key=_load(keys, SIGNING_KEY, load_ed25519_key_pem),
        escrow_key=_load(keys, ESCROW_KEY, load_x25519_key_pem),
    )


def is_initialized(keys: KeyStore) -> bool:
    return keys.load(SIGNING_KEY) is not None and keys.load(ESCROW_KEY) is not None


def public_lines(issuer: IssuerKeys) -> tuple[str, str]:
    """(the issuer key line agents pin, the escrow key line) — public halves only."""
    return (
        issuer_key_line(issuer.signing_key.public_key()),
        escrow_key_line(issuer.escrow_key.public_key()),
    )


def _load(keys: KeyStore, name: str, load_pem: _PemLoader[_Key]) -> _Key:
    data = keys.load(name)
    if data is None:
        raise IssuerNotInitialized(name)
    try:
        return load_pem(data, source=name)
    except KeyFileError as exc:
        raise IssuerKeyInvalid(name, exc.reason) from exc
