"""The issuer's key requests, `agents/<agent>/key-requests.json`: which of the agent's sites are
in agent custody (CSR mode), so the agent makes their keys without a change on the NAS.

    {"format": "certdrop-key-requests-v1",
     "signed": {"agent": "nas-1", "issued_at": "2026-12-05T00:00:00Z",
                "issuer_key_id": "<16 hex>",
                "sites": [{"site": "example.com", "names": ["*.example.com", "example.com"],
                           "key_type": "ec-p256"}]},
     "signature": "<b64url: Ed25519 by the issuer's signing key>"}

Signed bytes: b"certdrop key requests v1\\n" + canonical JSON of "signed", rebuilt from the
checked values (never taken from the input). `sites` is sorted by site without duplicates,
`names` sorted, unique and lowercase; an empty `sites` says no site is in agent custody. The
parser is as strict as the index's: exactly these keys, at most 256 KiB, no duplicate JSON keys.
docs/bundle-format.md section 9 has the bytes; the golden vectors in tests/agent/vectors/csr pin
them. Errors: `nas_agent.custody.errors` (`keyreq.*`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    load_json_object,
    parse_timestamp,
    published_json,
)
from nas_agent.custody.errors import (
    KeyRequestsBadSignature,
    KeyRequestsMalformed,
    KeyRequestsRolledBack,
    KeyRequestsUnknownKey,
    KeyRequestsUnsupported,
    KeyRequestsWrongAgent,
)
from nas_agent.custody.key_types import KEY_TYPES
from nas_agent.ids import is_agent_id, is_hostname, is_site_id
from nas_agent.keys import key_id

KEY_REQUESTS_FORMAT = "certdrop-key-requests-v1"
KEY_REQUESTS_CONTEXT = b"certdrop key requests v1\n"
MAX_KEY_REQUESTS_BYTES = 256 * 1024

_SIGNED = frozenset({"agent", "issued_at", "issuer_key_id", "sites"})
_SITE = frozenset({"site", "names", "key_type"})
_KEY_ID_HEX = re.compile("[0-9a-f]{16}")
_SIGNATURE_SIZE = 64


@dataclass(frozen=True)
class KeyRequest:
    """One site in agent custody: the names its certificates carry and its key type."""

    site: str
    names: tuple[str, ...]  # sorted, unique, lowercase
    key_type: str  # one of nas_agent.custody.key_types.KEY_TYPES

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site, "names": list(self.names), "key_type": self.key_type}


@dataclass(frozen=True)
class KeyRequests:
    """A parsed key-requests document; `verify_key_requests` says whether to believe it."""

    agent_id: str
    issued_at: datetime
    issuer_key_id: str
    sites: tuple[KeyRequest, ...]
    signature: bytes = field(default=b"", repr=False)
    envelope: bytes = field(default=b"", repr=False)  # the signed bytes, rebuilt

    def request(self, site: str) -> KeyRequest | None:
        for candidate in self.sites:
            if candidate.site == site:
                return candidate
        return None


def sign_key_requests(
    requests: Iterable[KeyRequest],
    *,
    agent_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
    issued_at: datetime,
) -> bytes:
    """key-requests.json for `agent_id`, signed by the issuer's key (the one that signs the
    agent's index). Raises ValueError for requests the agent would refuse."""
    ordered = sorted(requests, key=lambda request: request.site)
    signed = {
        "agent": agent_id,
        "issued_at": format_timestamp(issued_at.replace(microsecond=0)),
        "issuer_key_id": key_id(signing_key.public_key()),
        "sites": [request.to_json() for request in ordered],
    }
    try:
        _checked_signed(signed)
    except KeyRequestsMalformed as exc:
        raise ValueError(exc.reason) from None
    document = {
        "format": KEY_REQUESTS_FORMAT,
        "signed": signed,
        "signature": b64url_encode(signing_key.sign(KEY_REQUESTS_CONTEXT + canonical_json(signed))),
    }
    return published_json(document)


def parse_key_requests(data: bytes) -> KeyRequests:
    """Read untrusted bytes; raise KeyRequestsMalformed or KeyRequestsUnsupported, nothing else."""
    try:
        document = load_json_object(data, max_size=MAX_KEY_REQUESTS_BYTES)
    except ValueError as exc:
        raise KeyRequestsMalformed(f"not a JSON object: {exc}") from exc
    found = document.get("format")
    if found != KEY_REQUESTS_FORMAT:
        if isinstance(found, str) and found.startswith("certdrop-key-requests-"):
            raise KeyRequestsUnsupported(found)
        raise KeyRequestsMalformed(f"format is {found!r}, expected {KEY_REQUESTS_FORMAT!r}")
    if set(document) != {"format", "signed", "signature"}:
        raise KeyRequestsMalformed('holds exactly "format", "signed" and "signature"')
    signed = document["signed"]
    if not isinstance(signed, dict):
        raise KeyRequestsMalformed("signed is not an object")
    issued_at, sites = _checked_signed(signed)
    try:
        signature = b64url_decode(document["signature"])
    except ValueError as exc:
        raise KeyRequestsMalformed(f"signature: {exc}") from exc
    if len(signature) != _SIGNATURE_SIZE:
        raise KeyRequestsMalformed(f"signature is {len(signature)} bytes, not {_SIGNATURE_SIZE}")
    envelope = KEY_REQUESTS_CONTEXT + canonical_json(
        {
            "agent": signed["agent"],
            "issued_at": format_timestamp(issued_at),
            "issuer_key_id": signed["issuer_key_id"],
            "sites": [request.to_json() for request in sites],
        }
    )
    return KeyRequests(
        signed["agent"], issued_at, signed["issuer_key_id"], sites, signature, envelope
    )


def verify_key_requests(
    requests: KeyRequests,
    *,
    agent_id: str,
    issuer_public_key: ed25519.Ed25519PublicKey,
    accepted_issued_at: datetime | None = None,
) -> KeyRequests:
    """Believe `requests` only if signed by `issuer_public_key` (the key the agent's last
    accepted index was signed by), for `agent_id`, and not issued before the document accepted
    last (`accepted_issued_at`). Raises KeyRequestsUnknownKey, KeyRequestsBadSignature,
    KeyRequestsWrongAgent, KeyRequestsRolledBack."""
    followed = key_id(issuer_public_key)
    if requests.issuer_key_id != followed:
        raise KeyRequestsUnknownKey(
            f"signed by issuer key {requests.issuer_key_id}, but this agent follows {followed}"
        )
    try:
        issuer_public_key.verify(requests.signature, requests.envelope)
    except InvalidSignature as exc:
        raise KeyRequestsBadSignature("the signature does not verify") from exc
    if requests.agent_id != agent_id:
        raise KeyRequestsWrongAgent(requests.agent_id)
    if accepted_issued_at is not None and requests.issued_at < accepted_issued_at:
        raise KeyRequestsRolledBack(
            f"issued at {format_timestamp(requests.issued_at)}, before the document accepted"
            f" last ({format_timestamp(accepted_issued_at)}): an older copy is being served"
        )
    return requests


def _checked_signed(signed: dict[str, Any]) -> tuple[datetime, tuple[KeyRequest, ...]]:
    if set(signed) != _SIGNED:
        raise KeyRequestsMalformed(f"signed holds exactly the fields {sorted(_SIGNED)}")
    if not is_agent_id(signed["agent"]):
        raise KeyRequestsMalformed("signed.agent is not an agent id")
    key = signed["issuer_key_id"]
    if not isinstance(key, str) or _KEY_ID_HEX.fullmatch(key) is None:
        raise KeyRequestsMalformed("signed.issuer_key_id is not 16 lowercase hex digits")
    try:
        issued_at = parse_timestamp(signed["issued_at"])
    except ValueError as exc:
        raise KeyRequestsMalformed(f"signed.issued_at: {exc}") from exc
    if not isinstance(signed["sites"], list):
        raise KeyRequestsMalformed("signed.sites is not a list")
    sites = tuple(_request(i, raw) for i, raw in enumerate(signed["sites"]))
    order = [request.site for request in sites]
    if order != sorted(set(order)):
        raise KeyRequestsMalformed("signed.sites is not sorted by site without duplicates")
    return issued_at, sites


def _request(position: int, raw: object) -> KeyRequest:
    where = f"signed.sites[{position}]"
    if not isinstance(raw, dict) or set(raw) != _SITE:
        raise KeyRequestsMalformed(f"{where} holds exactly the fields {sorted(_SITE)}")
    if not is_site_id(raw["site"]):
        raise KeyRequestsMalformed(f"{where}.site is not a site id")
    names = raw["names"]
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and is_hostname(n, wildcard=True) for n in names)
    ):
        raise KeyRequestsMalformed(f"{where}.names is not a list of lowercase host names")
    if names != sorted(set(names)):
        raise KeyRequestsMalformed(f"{where}.names is not sorted without duplicates")
    if raw["key_type"] not in KEY_TYPES:
        raise KeyRequestsMalformed(f"{where}.key_type is not one of {', '.join(KEY_TYPES)}")
    return KeyRequest(raw["site"], tuple(names), raw["key_type"])
