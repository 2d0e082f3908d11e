"""An agent's index.json: what the issuer publishes for it, signed.

Version 2 (what the issuer writes) signs the whole index once with the issuer's Ed25519 key:

    {"format": "certdrop-index-v2",
     "signed": {"agent": "nas-01", "issued_at": "...Z", "expires_at": "...Z",
                "issuer_key_id": "<16 hex>", "entries": [entry, ...]},
     "signature": "<b64url>",
     "rotations": [statement, ...]}

    entry = {"site", "version", "cert_sha256", "not_after", "object", "object_sha256",
             "custody": "issuer" | "agent",
             "kind": "certdrop-bundle-v1" | "certdrop-leaf-v1" | <a later kind>}

The signed bytes are b"certdrop index v2\\n" + canonical JSON of "signed" (sorted keys, no
whitespace, ASCII). One signature over every entry, the addressee, the issue time and the expiry
is TUF's snapshot and timestamp roles in one: entries cannot be mixed across indexes, and a copy
served after `expires_at` is refused (the agent reports itself frozen). `rotations` is the chain
of issuer key rotations (`nas_agent.bundle.rotation`); it signs itself. `custody` says who holds
the site's private key and `kind` what the sealed object holds, so a later kind needs no v3.

Version 1 signed each entry on its own (b"certdrop index entry v1\\n" + canonical JSON of the
entry without "signature") and carried no time. Agents read it only during the upgrade window
(`accept_index_v1_until`), never once they have accepted v2.

The verifier never trusts the bytes it was sent: it validates every field, rebuilds the canonical
bytes from the values and verifies the signature over those, so whitespace or key order in
index.json cannot matter. docs/bundle-format.md has the field-by-field tables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

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
    published_json,
)
from nas_agent.bundle.leaf import LEAF_FORMAT, LeafPlaintext
from nas_agent.bundle.plaintext import MAX_VERSION, PLAINTEXT_FORMAT, BundlePlaintext, is_version
from nas_agent.bundle.rotation import RotationStatement, parse_rotations
from nas_agent.errors import (
    BadSignature,
    IndexExpired,
    IndexRolledBack,
    MalformedIndex,
    RotationInvalid,
    SiteNotInIndex,
    StaleVersion,
    UnknownIssuerKey,
    UnsupportedFormat,
    WrongAgent,
)
from nas_agent.ids import is_agent_id, is_site_id
from nas_agent.keys import key_id

INDEX_FORMAT = "certdrop-index-v2"
INDEX_FORMAT_V1 = "certdrop-index-v1"
INDEX_CONTEXT = b"certdrop index v2\n"
ENTRY_CONTEXT = b"certdrop index entry v1\n"
MAX_INDEX_BYTES = 1024 * 1024
CUSTODY_ISSUER = "issuer"  # the issuer made the key; the sealed object holds it
CUSTODY_AGENT = "agent"  # the agent made the key and sent a CSR; the object holds no key
CUSTODIES = (CUSTODY_ISSUER, CUSTODY_AGENT)
# What this agent can open: custody and plaintext kind together.
OPENABLE = frozenset({(CUSTODY_ISSUER, PLAINTEXT_FORMAT), (CUSTODY_AGENT, LEAF_FORMAT)})

_SHA256_HEX = re.compile("[0-9a-f]{64}")
_KEY_ID_HEX = re.compile("[0-9a-f]{16}")
_KIND = re.compile("certdrop-[a-z0-9-]{1,64}")
_SIGNATURE_SIZE = 64
_V1_FIELDS = frozenset(
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
_V2_FIELDS = frozenset(
    {
        "site",
        "version",
        "cert_sha256",
        "not_after",
        "object",
        "object_sha256",
        "custody",
        "kind",
    }
)
_V2_SIGNED = frozenset({"agent", "issued_at", "expires_at", "issuer_key_id", "entries"})


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
    signature: bytes = field(repr=False)  # v1: the entry's own; v2: the whole index's
    custody: str = CUSTODY_ISSUER
    kind: str = PLAINTEXT_FORMAT
    # v2: the index's signed bytes, which hold this entry among the others; None for v1.
    envelope: bytes | None = field(default=None, repr=False, compare=False)

    def signed_bytes(self) -> bytes:
        if self.envelope is not None:
            return self.envelope
        return ENTRY_CONTEXT + canonical_json(self._v1())

    def _v1(self) -> dict[str, Any]:
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

    def _v2(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "version": self.version,
            "cert_sha256": self.cert_sha256,
            "not_after": format_timestamp(self.not_after),
            "object": self.object_key,
            "object_sha256": self.object_sha256,
            "custody": self.custody,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Index:
    """A parsed index.json. Nothing in it is verified yet: see `verify_index`, `verify_entry`."""

    entries: tuple[IndexEntry, ...]
    format_version: int = 2
    # v2 only (None for v1): the signed addressee, times and signer, and the key history.
    agent_id: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    issuer_key_id: str | None = None
    signature: bytes = field(default=b"", repr=False)
    envelope: bytes = field(default=b"", repr=False)
    rotations: tuple[RotationStatement, ...] = ()

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(entry.site for entry in self.entries)

    def entry(self, site: str) -> IndexEntry:
        for candidate in self.entries:
            if candidate.site == site:
                return candidate
        raise SiteNotInIndex("the index has no entry for this site", site=site)


def entry_for(
    plaintext: BundlePlaintext | LeafPlaintext,
    sealed: bytes,
    *,
    agent_id: str,
    issuer_key_id: str,
) -> IndexEntry:
    """The v2 entry naming `sealed` (sealed from `plaintext`) for `agent_id`; `sign_index`
    signs it with the rest of the agent's index. A leaf plaintext makes an agent-custody entry,
    and only for the agent it was ordered for."""
    if not is_agent_id(agent_id):
        raise ValueError(f"agent id {agent_id!r} is not an agent id")
    custody, kind = CUSTODY_ISSUER, PLAINTEXT_FORMAT
    if isinstance(plaintext, LeafPlaintext):
        if plaintext.agent_id != agent_id:
            raise ValueError(f"the leaf was ordered for agent {plaintext.agent_id}, not {agent_id}")
        custody, kind = CUSTODY_AGENT, LEAF_FORMAT
    return IndexEntry(
        agent_id=agent_id,
        site=plaintext.site,
        version=plaintext.version,
        cert_sha256=plaintext.leaf_sha256(),
        not_after=plaintext.not_after,
        object_key=store_layout.bundle_name(plaintext.site, plaintext.version),
        object_sha256=hashlib.sha256(sealed).hexdigest(),
        issuer_key_id=issuer_key_id,
        signature=b"",
        custody=custody,
        kind=kind,
    )


def sign_index(
    entries: Iterable[IndexEntry],
    *,
    agent_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
    issued_at: datetime,
    expires_at: datetime,
    rotations: Sequence[RotationStatement] = (),
) -> bytes:
    """index.json (v2) for `agent_id`: at most one entry per site, signed as a whole."""
    ordered = sorted(entries, key=lambda entry: entry.site)
    if any(entry.agent_id != agent_id for entry in ordered):
        raise ValueError("an index holds the entries of one agent only")
    if len({entry.site for entry in ordered}) != len(ordered):
        raise ValueError("an index holds one entry per site")
    if expires_at <= issued_at:
        raise ValueError("an index expires after it is issued")
    signed = {
        "agent": agent_id,
        "issued_at": format_timestamp(issued_at.replace(microsecond=0)),
        "expires_at": format_timestamp(expires_at.replace(microsecond=0)),
        "issuer_key_id": key_id(signing_key.public_key()),
        "entries": [entry._v2() for entry in ordered],
    }
    document = {
        "format": INDEX_FORMAT,
        "signed": signed,
        "signature": b64url_encode(signing_key.sign(INDEX_CONTEXT + canonical_json(signed))),
        "rotations": [statement.to_json() for statement in rotations],
    }
    return published_json(document)


def sign_entry(
    plaintext: BundlePlaintext | LeafPlaintext,
    sealed: bytes,
    *,
    agent_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
) -> IndexEntry:
    """A v1 entry, signed on its own: only for agents still in the upgrade window (and tests)."""
    unsigned = entry_for(
        plaintext, sealed, agent_id=agent_id, issuer_key_id=key_id(signing_key.public_key())
    )
    return dataclasses.replace(unsigned, signature=signing_key.sign(unsigned.signed_bytes()))


def build_index(entries: Iterable[IndexEntry]) -> bytes:
    """A v1 index.json from entries `sign_entry` made: one agent, at most one entry per site."""
    ordered = sorted(entries, key=lambda entry: entry.site)
    if len({entry.agent_id for entry in ordered}) > 1:
        raise ValueError("an index holds the entries of one agent only")
    if len({entry.site for entry in ordered}) != len(ordered):
        raise ValueError("an index holds one entry per site")
    document = {
        "format": INDEX_FORMAT_V1,
        "entries": [
            dict(entry._v1(), signature=b64url_encode(entry.signature)) for entry in ordered
        ],
    }
    return published_json(document)


def parse_index(data: bytes) -> Index:
    """Read untrusted index.json bytes, v2 or v1; raise MalformedIndex, UnsupportedFormat or
    RotationInvalid, nothing else."""
    try:
        document = load_json_object(data, max_size=MAX_INDEX_BYTES)
    except ValueError as exc:
        raise MalformedIndex(f"index.json is not a JSON object: {exc}") from exc
    found = document.get("format")
    if found == INDEX_FORMAT:
        return _parse_v2(document)
    if found == INDEX_FORMAT_V1:
        return _parse_v1(document)
    if isinstance(found, str) and found.startswith("certdrop-index-"):
        raise UnsupportedFormat(store_layout.INDEX, found)
    raise MalformedIndex(f"index.json format is {found!r}, expected {INDEX_FORMAT!r}")


def verify_index(
    index: Index,
    *,
    agent_id: str,
    issuer_public_key: ed25519.Ed25519PublicKey,
    now: datetime,
    accepted_issued_at: datetime | None = None,
) -> Index:
    """Check a v2 index as a whole: signer, signature, addressee, expiry, and that it was not
    signed before the one last accepted (`accepted_issued_at`). Raises UnknownIssuerKey,
    BadSignature, WrongAgent, IndexExpired, IndexRolledBack. A v1 index has nothing to check
    here (its entries are signed one by one): whether to read it at all is the caller's rule."""
    if index.format_version == 1:
        return index
    assert index.expires_at is not None and index.issued_at is not None
    pinned = key_id(issuer_public_key)
    if index.issuer_key_id != pinned:
        raise UnknownIssuerKey(str(index.issuer_key_id), pinned, agent_id=agent_id)
    try:
        issuer_public_key.verify(index.signature, index.envelope)
    except InvalidSignature as exc:
        raise BadSignature("the index's signature does not verify", agent_id=agent_id) from exc
    if index.agent_id != agent_id:
        raise WrongAgent(str(index.agent_id), agent_id=agent_id)
    if now >= index.expires_at:
        raise IndexExpired(index.expires_at, now, agent_id=agent_id)
    if accepted_issued_at is not None and index.issued_at < accepted_issued_at:
        raise IndexRolledBack(index.issued_at, accepted_issued_at, agent_id=agent_id)
    return index


def verify_entry(
    entry: IndexEntry,
    *,
    agent_id: str,
    issuer_public_key: ed25519.Ed25519PublicKey,
    installed_version: int | None,
) -> IndexEntry:
    """Check an entry before fetching its object: issuer key, signature (the entry's own in v1,
    the whole index's in v2), addressee, what it holds, version.

    Raises UnknownIssuerKey, BadSignature, WrongAgent, UnsupportedFormat (a custody and kind
    this agent cannot open), StaleVersion (`.up_to_date` tells a replay from the ordinary case
    of nothing new). Returns the entry.
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
    if (entry.custody, entry.kind) not in OPENABLE:
        raise UnsupportedFormat(
            "the entry", f"{entry.custody}/{entry.kind}", site=entry.site, version=entry.version
        )
    if installed_version is not None and entry.version <= installed_version:
        raise StaleVersion(entry.version, installed_version, agent_id=agent_id, site=entry.site)
    return entry


def _parse_v2(document: dict[str, Any]) -> Index:
    if set(document) != {"format", "signed", "signature", "rotations"}:
        raise MalformedIndex(
            'index.json v2 holds exactly "format", "signed", "signature", "rotations"'
        )
    signed = document["signed"]
    if not isinstance(signed, dict) or set(signed) != _V2_SIGNED:
        raise MalformedIndex(f"signed is an object with exactly the fields {sorted(_V2_SIGNED)}")
    if not is_agent_id(signed["agent"]):
        raise MalformedIndex("signed.agent is not an agent id")
    if not isinstance(signed["issuer_key_id"], str) or not _KEY_ID_HEX.fullmatch(
        signed["issuer_key_id"]
    ):
        raise MalformedIndex("signed.issuer_key_id is not 16 lowercase hex digits")
    if not isinstance(signed["entries"], list):
        raise MalformedIndex("signed.entries is not a list")
    try:
        issued_at = parse_timestamp(signed["issued_at"])
        expires_at = parse_timestamp(signed["expires_at"])
        signature = _signature(document["signature"])
    except ValueError as exc:
        raise MalformedIndex(f"signed: {exc}") from exc
    if expires_at <= issued_at:
        raise MalformedIndex("signed.expires_at is not after signed.issued_at")
    try:
        rotations = parse_rotations(document["rotations"])
    except RotationInvalid as exc:
        raise MalformedIndex(str(exc.reason)) from exc
    agent_id = signed["agent"]
    key = signed["issuer_key_id"]
    entries = [
        _parse_v2_entry(i, raw, agent_id, key, signature) for i, raw in enumerate(signed["entries"])
    ]
    if len({entry.site for entry in entries}) != len(entries):
        raise MalformedIndex("index.json has two entries for one site")
    # The signed bytes are rebuilt from the checked values, never taken from the input.
    envelope = INDEX_CONTEXT + canonical_json(
        {
            "agent": agent_id,
            "issued_at": format_timestamp(issued_at),
            "expires_at": format_timestamp(expires_at),
            "issuer_key_id": key,
            "entries": [entry._v2() for entry in entries],
        }
    )
    return Index(
        entries=tuple(dataclasses.replace(entry, envelope=envelope) for entry in entries),
        format_version=2,
        agent_id=agent_id,
        issued_at=issued_at,
        expires_at=expires_at,
        issuer_key_id=key,
        signature=signature,
        envelope=envelope,
        rotations=rotations,
    )


def _parse_v2_entry(
    position: int, raw: object, agent_id: str, issuer_key_id: str, signature: bytes
) -> IndexEntry:
    def refuse(reason: str) -> MalformedIndex:
        return MalformedIndex(f"signed.entries[{position}]: {reason}")

    if not isinstance(raw, dict) or set(raw) != _V2_FIELDS:
        raise refuse(f"an entry is an object with exactly the fields {sorted(_V2_FIELDS)}")
    if raw["custody"] not in CUSTODIES:
        raise refuse(f"custody is not one of {list(CUSTODIES)}")
    if not isinstance(raw["kind"], str) or _KIND.fullmatch(raw["kind"]) is None:
        raise refuse("kind is not a certdrop-... format name")
    return _entry_fields(
        refuse,
        raw,
        agent_id=agent_id,
        issuer_key_id=issuer_key_id,
        signature=signature,
        custody=raw["custody"],
        kind=raw["kind"],
    )


def _parse_v1(document: dict[str, Any]) -> Index:
    if set(document) != {"format", "entries"} or not isinstance(document["entries"], list):
        raise MalformedIndex('index.json v1 holds exactly "format" and an "entries" list')
    entries = tuple(_parse_v1_entry(i, raw) for i, raw in enumerate(document["entries"]))
    if len({entry.site for entry in entries}) != len(entries):
        raise MalformedIndex("index.json has two entries for one site")
    return Index(entries, format_version=1)


def _parse_v1_entry(position: int, raw: object) -> IndexEntry:
    def refuse(reason: str) -> MalformedIndex:
        return MalformedIndex(f"entries[{position}]: {reason}")

    if not isinstance(raw, dict) or set(raw) != _V1_FIELDS:
        raise refuse(f"an entry is an object with exactly the fields {sorted(_V1_FIELDS)}")
    if not is_agent_id(raw["agent"]):
        raise refuse("agent is not an agent id")
    if not isinstance(raw["issuer_key_id"], str) or not _KEY_ID_HEX.fullmatch(raw["issuer_key_id"]):
        raise refuse("issuer_key_id is not 16 lowercase hex digits")
    try:
        signature = _signature(raw["signature"])
    except ValueError as exc:
        raise refuse(str(exc)) from exc
    return _entry_fields(
        refuse,
        raw,
        agent_id=raw["agent"],
        issuer_key_id=raw["issuer_key_id"],
        signature=signature,
        custody=CUSTODY_ISSUER,
        kind=PLAINTEXT_FORMAT,
    )


def _entry_fields(
    refuse: Callable[[str], MalformedIndex], raw: dict[str, Any], **known: Any
) -> IndexEntry:
    """The fields v1 and v2 entries share, checked."""
    if not is_site_id(raw["site"]):
        raise refuse("site is not a site id")
    if not is_version(raw["version"]):
        raise refuse(f"version is not an integer from 1 to {MAX_VERSION}")
    for name in ("cert_sha256", "object_sha256"):
        if not isinstance(raw[name], str) or _SHA256_HEX.fullmatch(raw[name]) is None:
            raise refuse(f"{name} is not 64 lowercase hex digits")
    if raw["object"] != store_layout.bundle_name(raw["site"], raw["version"]):
        raise refuse(f"object is not {store_layout.bundle_name(raw['site'], raw['version'])}")
    try:
        not_after = parse_timestamp(raw["not_after"])
    except ValueError as exc:
        raise refuse(str(exc)) from exc
    return IndexEntry(
        site=raw["site"],
        version=raw["version"],
        cert_sha256=raw["cert_sha256"],
        not_after=not_after,
        object_key=raw["object"],
        object_sha256=raw["object_sha256"],
        **known,
    )


def _signature(text: object) -> bytes:
    signature = b64url_decode(text)  # type: ignore[arg-type]  # it checks the type itself
    if len(signature) != _SIGNATURE_SIZE:
        raise ValueError(f"signature is {len(signature)} bytes, expected {_SIGNATURE_SIZE}")
    return signature
