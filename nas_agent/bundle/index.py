"""Signed index entries and an agent's index.json.

Each entry is signed on its own with the issuer's Ed25519 key. The signed bytes are

    b"certdrop index entry v1\\n" + canonical JSON of the entry without "signature"

(canonical JSON: sorted keys, no whitespace, ASCII). The context string separates these signatures
from any other use of the key and carries the format version. The verifier never trusts the bytes
it was sent: it validates every field, rebuilds the canonical bytes from the values and verifies the
signature over those, so whitespace or key order in index.json cannot matter.

index.json is `{"entries": [entry, ...], "format": "certdrop-index-v1"}`, one entry per site, sorted
by site, pretty-printed with sorted keys. docs/bundle-format.md has the field-by-field table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent import store_layout
from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    load_json_object,
    parse_timestamp,
)
from nas_agent.bundle.plaintext import MAX_VERSION, BundlePlaintext, is_version
from nas_agent.errors import (
    BadSignature,
    MalformedIndex,
    SiteNotInIndex,
    StaleVersion,
    UnknownIssuerKey,
    UnsupportedFormat,
    WrongAgent,
)
from nas_agent.ids import is_agent_id, is_site_id
from nas_agent.keys import key_id

INDEX_FORMAT = "certdrop-index-v1"
ENTRY_CONTEXT = b"certdrop index entry v1\n"
MAX_INDEX_BYTES = 1024 * 1024

_SHA256_HEX = re.compile("[0-9a-f]{64}")
_KEY_ID_HEX = re.compile("[0-9a-f]{16}")
_SIGNATURE_SIZE = 64
_ENTRY_FIELDS = frozenset(
    {
        "agent",
        "site",
        "version",
        "cert_sha256",
        "not_after",
        "object",
        "object_sha256",
        "issuer_key_id",
        "signature",
    }
)


@dataclass(frozen=True)
class IndexEntry:
    agent_id: str
    site: str
    version: int
    cert_sha256: str  # hex SHA-256 of the leaf certificate's DER
    not_after: datetime
    object_key: str  # bundles/<site>/<version>.sealed, under agents/<agent>/
    object_sha256: str  # hex SHA-256 of the sealed object's bytes
    issuer_key_id: str  # nas_agent.keys.key_id of the signing key
    signature: bytes = field(repr=False)

    def signed_bytes(self) -> bytes:
        return ENTRY_CONTEXT + canonical_json(self._unsigned())

    def _unsigned(self) -> dict[str, Any]:
        return {
            "agent": self.agent_id,
            "site": self.site,
            "version": self.version,
            "cert_sha256": self.cert_sha256,
            "not_after": format_timestamp(self.not_after),
            "object": self.object_key,
            "object_sha256": self.object_sha256,
            "issuer_key_id": self.issuer_key_id,
        }


@dataclass(frozen=True)
class Index:
    """A parsed index.json. Its entries are not verified yet: see `verify_entry`."""

    entries: tuple[IndexEntry, ...]

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(entry.site for entry in self.entries)

    def entry(self, site: str) -> IndexEntry:
        for candidate in self.entries:
            if candidate.site == site:
                return candidate
        raise SiteNotInIndex("the index has no entry for this site", site=site)


def sign_entry(
    plaintext: BundlePlaintext,
    sealed: bytes,
    *,
    agent_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
) -> IndexEntry:
    """The issuer's signed statement that `sealed` (sealed from `plaintext`) is for `agent_id`."""
    if not is_agent_id(agent_id):
        raise ValueError(f"agent id {agent_id!r} is not an agent id")
    unsigned = IndexEntry(
        agent_id=agent_id,
        site=plaintext.site,
        version=plaintext.version,
        cert_sha256=plaintext.leaf_sha256(),
        not_after=plaintext.not_after,
        object_key=store_layout.bundle_name(plaintext.site, plaintext.version),
        object_sha256=hashlib.sha256(sealed).hexdigest(),
        issuer_key_id=key_id(signing_key.public_key()),
        signature=b"",
    )
    return dataclasses.replace(unsigned, signature=signing_key.sign(unsigned.signed_bytes()))


def build_index(entries: Iterable[IndexEntry]) -> bytes:
    """index.json for one agent: at most one entry per site, all for the same agent."""
    ordered = sorted(entries, key=lambda entry: entry.site)
    if len({entry.agent_id for entry in ordered}) > 1:
        raise ValueError("an index holds the entries of one agent only")
    if len({entry.site for entry in ordered}) != len(ordered):
        raise ValueError("an index holds one entry per site")
    document = {
        "format": INDEX_FORMAT,
        "entries": [
            dict(entry._unsigned(), signature=b64url_encode(entry.signature)) for entry in ordered
        ],
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True).encode("ascii") + b"\n"


def parse_index(data: bytes) -> Index:
    """Read untrusted index.json bytes; raise MalformedIndex or UnsupportedFormat, nothing else."""
    try:
        document = load_json_object(data, max_size=MAX_INDEX_BYTES)
    except ValueError as exc:
        raise MalformedIndex(f"index.json is not a JSON object: {exc}") from exc
    found = document.get("format")
    if found != INDEX_FORMAT:
        if isinstance(found, str) and found.startswith("certdrop-index-"):
            raise UnsupportedFormat(store_layout.INDEX, found)
        raise MalformedIndex(f"index.json format is {found!r}, expected {INDEX_FORMAT!r}")
    if set(document) != {"format", "entries"} or not isinstance(document["entries"], list):
        raise MalformedIndex('index.json holds exactly "format" and an "entries" list')
    entries = tuple(_parse_entry(i, raw) for i, raw in enumerate(document["entries"]))
    if len({entry.site for entry in entries}) != len(entries):
        raise MalformedIndex("index.json has two entries for one site")
    return Index(entries)


def verify_entry(
    entry: IndexEntry,
    *,
    agent_id: str,
    issuer_public_key: ed25519.Ed25519PublicKey,
    installed_version: int | None,
) -> IndexEntry:
    """Check an entry before fetching its object: pinned issuer key, signature, addressee, version.

    Raises UnknownIssuerKey, BadSignature, WrongAgent, StaleVersion (`.up_to_date` tells a replay
    from the ordinary case of nothing new). Returns the entry.
    """
    pinned = key_id(issuer_public_key)
    if entry.issuer_key_id != pinned:
        raise UnknownIssuerKey(
            entry.issuer_key_id, pinned, agent_id=agent_id, site=entry.site, version=entry.version
        )
    try:
        issuer_public_key.verify(entry.signature, entry.signed_bytes())
    except InvalidSignature as exc:
        raise BadSignature(
            "the entry's signature does not verify",
            agent_id=agent_id,
            site=entry.site,
            version=entry.version,
        ) from exc
    if entry.agent_id != agent_id:
        raise WrongAgent(entry.agent_id, agent_id=agent_id, site=entry.site, version=entry.version)
    if installed_version is not None and entry.version <= installed_version:
        raise StaleVersion(entry.version, installed_version, agent_id=agent_id, site=entry.site)
    return entry


def _parse_entry(position: int, raw: object) -> IndexEntry:
    def refuse(reason: str) -> MalformedIndex:
        return MalformedIndex(f"entries[{position}]: {reason}")

    if not isinstance(raw, dict) or set(raw) != _ENTRY_FIELDS:
        raise refuse(f"an entry is an object with exactly the fields {sorted(_ENTRY_FIELDS)}")
    if not is_agent_id(raw["agent"]):
        raise refuse("agent is not an agent id")
    if not is_site_id(raw["site"]):
        raise refuse("site is not a site id")
    if not is_version(raw["version"]):
        raise refuse(f"version is not an integer from 1 to {MAX_VERSION}")
    for name in ("cert_sha256", "object_sha256"):
        if not isinstance(raw[name], str) or _SHA256_HEX.fullmatch(raw[name]) is None:
            raise refuse(f"{name} is not 64 lowercase hex digits")
    if not isinstance(raw["issuer_key_id"], str) or not _KEY_ID_HEX.fullmatch(raw["issuer_key_id"]):
        raise refuse("issuer_key_id is not 16 lowercase hex digits")
    if raw["object"] != store_layout.bundle_name(raw["site"], raw["version"]):
        raise refuse(f"object is not {store_layout.bundle_name(raw['site'], raw['version'])}")
    try:
        not_after = parse_timestamp(raw["not_after"])
        signature = b64url_decode(raw["signature"])
    except ValueError as exc:
        raise refuse(str(exc)) from exc
    if len(signature) != _SIGNATURE_SIZE:
        raise refuse(f"signature is {len(signature)} bytes, expected {_SIGNATURE_SIZE}")
    return IndexEntry(
        agent_id=raw["agent"],
        site=raw["site"],
        version=raw["version"],
        cert_sha256=raw["cert_sha256"],
        not_after=not_after,
        object_key=raw["object"],
        object_sha256=raw["object_sha256"],
        issuer_key_id=raw["issuer_key_id"],
        signature=signature,
    )
