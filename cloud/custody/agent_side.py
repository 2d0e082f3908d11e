"""The one place the issuer wires in the agent side's half of agent custody (docs/key-custody.md).

The three documents are the agent's contract and live in `nas_agent`, like the bundle contract;
every other cloud module imports them from here, so a change on that side changes this file only.

    key_requests_key(agent), csr_statement_key(agent, site)      the store's keys (store_layout)
    MAX_KEY_REQUESTS_BYTES, MAX_CSR_STATEMENT_BYTES              each document's size cap (a
                                                                bounded read of the store)
    sign_key_requests, parse_key_requests, verify_key_requests  issuer → agent
                                                                (nas_agent.bundle.key_requests)
    check_csr_statement(body, ...)                               agent → issuer, every check
                                                                (nas_agent.custody.statement)
    make_leaf_plaintext, seal_leaf, leaf_entry                   the certdrop-leaf-v1 object
                                                                (nas_agent.bundle.leaf, sealed)

A CSR statement that fails a check raises the agent side's CsrError subclass (`csr.*` codes,
nas_agent.custody.errors); a key-requests document, KeyRequestError (`keyreq.*`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from nas_agent import store_layout
from nas_agent.bundle.checks import spki_der
from nas_agent.bundle.index import IndexEntry, entry_for
from nas_agent.bundle.key_requests import (
    MAX_KEY_REQUESTS_BYTES,
    KeyRequest,
    KeyRequests,
    parse_key_requests,
    sign_key_requests,
    verify_key_requests,
)
from nas_agent.bundle.leaf import LEAF_FORMAT, LeafPlaintext, make_leaf_plaintext
from nas_agent.bundle.sealed import seal
from nas_agent.custody.errors import (
    CsrCurrentCertMismatch,
    CsrError,
    CsrMalformed,
    CsrSequenceStale,
    KeyRequestError,
)
from nas_agent.custody.statement import (
    MAX_CSR_STATEMENT_BYTES,
    CheckedCsr,
    CsrStatement,
    parse_csr_statement,
    sign_csr_statement,
    verify_csr_statement,
)

__all__ = [
    "CSR_FOLDER",
    "LEAF_FORMAT",
    "MAX_CSR_STATEMENT_BYTES",
    "MAX_KEY_REQUESTS_BYTES",
    "CheckedCsr",
    "CsrCurrentCertMismatch",
    "CsrError",
    "CsrMalformed",
    "CsrSequenceStale",
    "CsrStatement",
    "IndexEntry",
    "KeyRequest",
    "KeyRequestError",
    "KeyRequests",
    "LeafPlaintext",
    "check_csr_statement",
    "csr_statement_key",
    "key_requests_key",
    "leaf_entry",
    "make_leaf_plaintext",
    "parse_key_requests",
    "seal_leaf",
    "sign_csr_statement",
    "sign_key_requests",
    "spki_sha256",
    "statement_sequence",
    "verify_key_requests",
]

CSR_FOLDER = store_layout.CSR_PREFIX  # below an agent's prefix: one statement per site


def key_requests_key(agent: str) -> str:
    return store_layout.agent_key_requests(agent)


def csr_statement_key(agent: str, site: str) -> str:
    return store_layout.agent_csr(agent, site)


def check_csr_statement(
    body: bytes,
    *,
    agent: str,
    site: str,
    status_key: ed25519.Ed25519PublicKey,
    names: tuple[str, ...],
    key_type: str,
    last_sequence: int,
    delivered_leaf_pem: str | None,
    accepted_cert_sha256: Collection[str] = (),
) -> CheckedCsr:
    """Every check of docs/key-custody.md on the statement read at `csr_statement_key(agent,
    site)`; raises the first CsrError that fails. `last_sequence` 0: none used yet;
    `delivered_leaf_pem`: the certificate last delivered to this agent (None: none was), whose
    key the CSR may not reuse; `accepted_cert_sha256`: the hashes `current_cert_sha256` may
    name besides that certificate's."""
    return verify_csr_statement(
        parse_csr_statement(body),
        agent_id=agent,
        site=site,
        agent_public_key=status_key,
        names=names,
        key_type=key_type,
        last_sequence=last_sequence or None,
        delivered_leaf_pem=delivered_leaf_pem,
        accepted_cert_sha256=accepted_cert_sha256,
    )


def statement_sequence(body: bytes) -> int | None:
    """The `sequence` a statement claims (unchecked), or None when it cannot be read."""
    try:
        return parse_csr_statement(body).sequence
    except CsrError:
        return None


def seal_leaf(
    plaintext: LeafPlaintext, *, recipient_id: str, recipient_public_key: x25519.X25519PublicKey
) -> bytes:
    """Sealed object v1 (HPKE, the bundle's `info` lines) holding the leaf plaintext."""
    return seal(plaintext, recipient_id=recipient_id, recipient_public_key=recipient_public_key)


def leaf_entry(
    plaintext: LeafPlaintext, sealed: bytes, *, agent_id: str, issuer_key_id: str
) -> IndexEntry:
    """The index entry (custody "agent", kind certdrop-leaf-v1) naming `sealed`."""
    return entry_for(plaintext, sealed, agent_id=agent_id, issuer_key_id=issuer_key_id)


def spki_sha256(public_key: Any) -> str:
    """SHA-256 (hex) of a public key's DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).hexdigest()
