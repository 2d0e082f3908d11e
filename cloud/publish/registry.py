"""The registry of enrolled NAS agents and the sites each one receives, in the object store.

    state/agents/<agent-id>.json    {"id", "token", "sites", "added_at", "issuer_key_id",
                                     "signature"}

The token is the agent's enrollment line (its id and public keys); the registry holds nothing
secret. Registration is by the operator (`certdrop agent add`), never by an agent, and every
record is signed with the issuer's signing key when it is written (docs/bundle-format.md §8):
whoever can write `state/` cannot choose the keys a bundle is sealed to. Records are read as
they are; `verify` says whether one may be trusted, and the publisher seals nothing to one that
fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.errors import (
    AgentConflict,
    CertdropError,
    RecordTampered,
    RecordUnsigned,
    UnknownAgent,
)
from cloud.keys.rotation import Signer
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent._encoding import b64url_decode, b64url_encode, canonical_json
from nas_agent.enrollment import Enrollment, parse_enrollment_token
from nas_agent.keys import key_id

RECORD_CONTEXT = b"certdrop registry record v1\n"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    token: str
    sites: tuple[str, ...]
    added_at: datetime
    issuer_key_id: str | None = None  # None: written before records were signed
    signature: bytes | None = None

    @property
    def enrollment(self) -> Enrollment:
        return parse_enrollment_token(self.token)

    def signed_bytes(self, issuer_key_id: str) -> bytes:
        """What the issuer signs: a context line, then the canonical JSON of the content."""
        content = {
            "added_at": self.added_at.isoformat(),
            "id": self.agent_id,
            "issuer_key_id": issuer_key_id,
            "sites": list(self.sites),
            "token": self.token,
        }
        return RECORD_CONTEXT + canonical_json(content)

    def signed_with(self, signing_key: ed25519.Ed25519PrivateKey) -> AgentRecord:
        kid = key_id(signing_key.public_key())
        signature = signing_key.sign(self.signed_bytes(kid))
        return dataclasses.replace(self, issuer_key_id=kid, signature=signature)

    def to_json(self) -> bytes:
        body = {
            "id": self.agent_id,
            "token": self.token,
            "sites": list(self.sites),
            "added_at": self.added_at.isoformat(),
        }
        if self.issuer_key_id is not None and self.signature is not None:
            body["issuer_key_id"] = self.issuer_key_id
            body["signature"] = b64url_encode(self.signature)
        return json.dumps(body, sort_keys=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AgentRecord:
        body = json.loads(data)
        signature = body.get("signature")
        return cls(
            body["id"],
            body["token"],
            tuple(body["sites"]),
            datetime.fromisoformat(body["added_at"]),
            issuer_key_id=body.get("issuer_key_id"),
            signature=_signature_bytes(signature) if signature is not None else None,
        )


def verify(record: AgentRecord, issuer_keys: Mapping[str, ed25519.Ed25519PublicKey]) -> None:
    """Raises RecordUnsigned or RecordTampered unless the issuer signed exactly this record with
    a key it holds (`issuer_keys`, by key id: during a rotation, the old and the new)."""
    if record.signature is None or record.issuer_key_id is None:
        raise RecordUnsigned(record.agent_id)
    issuer_key = issuer_keys.get(record.issuer_key_id)
    if issuer_key is None:
        raise RecordTampered(
            record.agent_id, f"signed by key {record.issuer_key_id!r}, not the issuer's"
        )
    try:
        issuer_key.verify(record.signature, record.signed_bytes(record.issuer_key_id))
    except InvalidSignature:
        raise RecordTampered(record.agent_id, "the signature does not match its content") from None


def record_problem(
    record: AgentRecord, issuer_keys: Mapping[str, ed25519.Ed25519PublicKey]
) -> CertdropError | None:
    """Why the record may not be trusted, or None when it verifies."""
    try:
        verify(record, issuer_keys)
    except (RecordUnsigned, RecordTampered) as exc:
        return exc
    return None


class AgentRegistry:
    """Reads records; writes them signed with the signer's key (without a signer, the registry
    is read-only)."""

    def __init__(self, store: Store, signer: Signer | None = None):
        self.store = store
        self.signer = signer

    def add(self, enrollment: Enrollment, sites: tuple[str, ...], now: datetime) -> AgentRecord:
        """Registers the agent for `sites`; registering it again with the same keys adds sites.

        A record that fails verification is not built on: the operator's token and `sites`
        replace it (its keys and sites came from whoever wrote it)."""
        token = enrollment.token()
        current = self.get(enrollment.agent_id)
        if current is not None and self.problem(current) is not None:
            current = None
        if current is not None and current.token != token:
            raise AgentConflict(enrollment.agent_id)
        merged = tuple(sorted(set(sites) | set(current.sites if current else ())))
        record = AgentRecord(
            enrollment.agent_id, token, merged, current.added_at if current else now
        )
        return self._write(record)

    def set_sites(self, agent_id: str, sites: tuple[str, ...]) -> AgentRecord:
        record = self.require(agent_id)
        self.verify(record)  # re-signing would vouch for whatever was written there
        return self._write(dataclasses.replace(record, sites=tuple(sorted(sites))))

    def resign(self, agent_id: str) -> AgentRecord:
        """Signs the record as the store holds it now (upgrading a store from before records
        were signed): the operator vouches for its token and sites."""
        return self._write(self.require(agent_id))

    def verify(self, record: AgentRecord) -> None:
        """Raises RecordUnsigned or RecordTampered unless the issuer signed `record`."""
        verify(record, self._signer().trusted)

    def problem(self, record: AgentRecord) -> CertdropError | None:
        """Why `record` may not be trusted, or None when it verifies."""
        return record_problem(record, self._signer().trusted)

    def resign_all(self) -> int:
        """Re-signs, with the key in use, every record an earlier key of the issuer signed
        (after a rotation); returns how many. Records that do not verify are left as they are."""
        count = 0
        for record in self.all():
            if self.problem(record) is None and record.issuer_key_id != self._signer().key_id:
                self._write(record)
                count += 1
        return count

    def get(self, agent_id: str) -> AgentRecord | None:
        """The record stored for `agent_id`; None when there is none, or it names another agent:
        a record copied from another agent's place verifies, and would make a command meant for
        this agent change that one. Read as absent, `agent add` replaces it."""
        found = self.store.get(self._key(agent_id))
        if not isinstance(found, StoredObject):
            return None
        record = AgentRecord.from_json(found.body)
        if record.agent_id != agent_id:
            log.warning("%s holds the record of agent %s: read as none", found.key, record.agent_id)
            return None
        return record

    def require(self, agent_id: str) -> AgentRecord:
        record = self.get(agent_id)
        if record is None:
            raise UnknownAgent(agent_id)
        return record

    def all(self) -> list[AgentRecord]:
        """Every record stored in its own agent's place; a copy in another's is left out."""
        records = []
        for info in self.store.list(store_layout.REGISTRY_PREFIX):
            found = self.store.get(info.key)
            if not isinstance(found, StoredObject):
                continue
            record = AgentRecord.from_json(found.body)
            if info.key == self._key(record.agent_id):
                records.append(record)
            else:
                log.warning("%s holds the record of agent %s: left out", info.key, record.agent_id)
        return records

    def forget(self, agent_id: str) -> None:
        self.store.delete(self._key(agent_id))

    def _write(self, record: AgentRecord) -> AgentRecord:
        signed = record.signed_with(self._signer().key)
        self.store.put(self._key(signed.agent_id), signed.to_json())
        return signed

    def _signer(self) -> Signer:
        if self.signer is None:
            raise TypeError("this registry was opened without the issuer's signing key")
        return self.signer

    @staticmethod
    def _key(agent_id: str) -> str:
        return store_layout.registry_record(agent_id)


def _signature_bytes(text: object) -> bytes:
    """The stored signature; one that is not base64url reads as no valid signature."""
    try:
        return b64url_decode(text) if isinstance(text, str) else b""
    except ValueError:
        return b""
