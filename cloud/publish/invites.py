"""Invitations: the operator's side of `agent invite` → `certdrop-agent join` → `agent approve`.

    state/invites/<agent>.json  {"agent", "sites", "nonce", "created_at", "expires_at",
                                 "issuer_key_id", "signature"}

The record is signed by the issuer key (like registry records), so whoever can write `state/`
cannot stretch an invitation's expiry or add sites to it. Its one-time secret is not stored at
all: it is derived from the issuer's signing key and the record's nonce (an HMAC keyed with a
hash of the private key), so `approve` recomputes it and the store never holds it. Approval
checks, by the issuer's clock: the record verifies, has not expired, and the enrollment the NAS
posted carries a MAC made with that secret over its agent id and public keys. Then the record
is deleted (a conditional delete: of two approvals racing, one wins), which makes it single use.
An invitation made before `certdrop issuer rotate` cannot be approved afterwards (its secret
changed with the key): invite again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from cloud.errors import (
    EnrollmentMissing,
    EnrollmentRefused,
    InviteExpired,
    InviteUnknown,
    PreconditionFailed,
)
from cloud.keys.rotation import Signer
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    parse_timestamp,
)
from nas_agent.enrollment import Enrollment, issuer_key_line, parse_enrollment_token
from nas_agent.errors import TokenError
from nas_agent.invite import SECRET_SIZE, Invitation, parse_enrollment_document

INVITE_VALIDITY = timedelta(days=7)
# An invitation line holds a one-time secret and read credentials: a month is ample time to pass
# it on and join, and longer leaves a usable secret lying in mail and chat.
MAX_INVITE_VALIDITY = timedelta(days=30)
RECORD_CONTEXT = b"certdrop invite record v1\n"
_SECRET_KEY_CONTEXT = b"certdrop invite secret key v1\n"


@dataclass(frozen=True)
class InviteRecord:
    agent_id: str
    sites: tuple[str, ...]
    nonce: bytes
    created_at: datetime
    expires_at: datetime
    issuer_key_id: str = ""
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        return RECORD_CONTEXT + canonical_json(self._content())

    def _content(self) -> dict[str, object]:
        return {
            "agent": self.agent_id,
            "sites": list(self.sites),
            "nonce": b64url_encode(self.nonce),
            "created_at": format_timestamp(self.created_at),
            "expires_at": format_timestamp(self.expires_at),
            "issuer_key_id": self.issuer_key_id,
        }

    def to_json(self) -> bytes:
        body = dict(self._content(), signature=b64url_encode(self.signature))
        return json.dumps(body, indent=2, sort_keys=True).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> InviteRecord:
        body = json.loads(data)
        return cls(
            agent_id=body["agent"],
            sites=tuple(body["sites"]),
            nonce=b64url_decode(body["nonce"]),
            created_at=parse_timestamp(body["created_at"]),
            expires_at=parse_timestamp(body["expires_at"]),
            issuer_key_id=body["issuer_key_id"],
            signature=b64url_decode(body["signature"]),
        )


@dataclass(frozen=True)
class Pending:
    agent_id: str
    sites: tuple[str, ...]
    expires_at: datetime
    joined: bool  # an enrollment is in the agent's prefix
    problem: str | None  # why `approve` would refuse it now; None: it would pass


class Invites:
    def __init__(self, store: Store, signer: Signer):
        self.store = store
        self.signer = signer

    def create(
        self,
        agent_id: str,
        sites: Mapping[str, str],
        source: Mapping[str, str],
        now: datetime,
        validity: timedelta = INVITE_VALIDITY,
    ) -> Invitation:
        """A new invitation for `agent_id` (replacing an unused one); returns what the line holds.
        `sites` maps each site id to its domain; `source` is where the agent polls."""
        now = now.replace(microsecond=0)
        record = InviteRecord(
            agent_id=agent_id,
            sites=tuple(sorted(sites)),
            nonce=secrets.token_bytes(16),
            created_at=now,
            expires_at=now + validity,
            issuer_key_id=self.signer.key_id,
        )
        signed = dataclasses.replace(record, signature=self.signer.key.sign(record.signed_bytes()))
        self.store.put(store_layout.invite(agent_id), signed.to_json())
        return Invitation(
            agent_id=agent_id,
            issuer_key_line=issuer_key_line(self.signer.key.public_key()),
            sites=dict(sites),
            source=dict(source),
            secret=self._secret(signed),
            expires_at=signed.expires_at,
        )

    def pending(self, now: datetime) -> list[Pending]:
        found = []
        for info in list(self.store.list(store_layout.INVITES_PREFIX)):
            agent_id = info.key[len(store_layout.INVITES_PREFIX) :].removesuffix(".json")
            try:
                record, _ = self._record(agent_id)
                joined = self._posted(agent_id) is not None
                self.check(agent_id, now)
                problem = None
            except (InviteUnknown, InviteExpired, EnrollmentMissing, EnrollmentRefused) as exc:
                if isinstance(exc, InviteUnknown):
                    continue
                problem = exc.code
            found.append(Pending(agent_id, record.sites, record.expires_at, joined, problem))
        return found

    def check(
        self, agent_id: str, now: datetime, posted: bytes | None = None
    ) -> tuple[InviteRecord, Enrollment, str]:
        """The invitation's record, the enrollment it authenticates, and the record's ETag (to
        consume it); raises InviteUnknown, InviteExpired, EnrollmentMissing, EnrollmentRefused."""
        record, etag = self._record(agent_id)
        if now >= record.expires_at:
            raise InviteExpired(agent_id, record.expires_at)
        body = posted if posted is not None else self._posted(agent_id)
        if body is None:
            raise EnrollmentMissing(agent_id)
        try:
            enrollment_doc = parse_enrollment_document(body)
            enrollment = parse_enrollment_token(enrollment_doc.token)
        except (ValueError, TokenError) as exc:
            raise EnrollmentRefused(agent_id, f"it does not parse ({exc})") from exc
        if enrollment_doc.agent_id != agent_id or enrollment.agent_id != agent_id:
            raise EnrollmentRefused(agent_id, f"it is for agent {enrollment.agent_id}")
        if not enrollment_doc.authentic(self._secret(record)):
            raise EnrollmentRefused(
                agent_id, "its MAC is not made with this invitation's secret (another line?)"
            )
        return record, enrollment, etag

    def consume(self, agent_id: str, etag: str) -> None:
        """Deletes the invitation: it is used. Raises InviteUnknown when another approval (or a
        new invitation) changed it meanwhile."""
        try:
            self.store.delete(store_layout.invite(agent_id), if_match=etag)
        except PreconditionFailed as exc:
            raise InviteUnknown(agent_id) from exc

    def _record(self, agent_id: str) -> tuple[InviteRecord, str]:
        found = self.store.get(store_layout.invite(agent_id))
        if not isinstance(found, StoredObject):
            raise InviteUnknown(agent_id)
        try:
            record = InviteRecord.from_json(found.body)
        except (ValueError, KeyError, TypeError) as exc:
            raise EnrollmentRefused(agent_id, f"the invitation record is damaged ({exc})") from exc
        key = self.signer.trusted.get(record.issuer_key_id)
        try:
            if key is None or record.agent_id != agent_id:
                raise InvalidSignature
            key.verify(record.signature, record.signed_bytes())
        except InvalidSignature:
            raise EnrollmentRefused(
                agent_id, "the invitation record is not the issuer's (altered in the store)"
            ) from None
        return record, found.etag

    def _posted(self, agent_id: str) -> bytes | None:
        found = self.store.get(store_layout.agent_enrollment(agent_id))
        return found.body if isinstance(found, StoredObject) else None

    def _secret(self, record: InviteRecord) -> bytes:
        """The invitation's one-time secret: only the issuer's signing key can make it."""
        private = self.signer.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        key = hashlib.sha256(_SECRET_KEY_CONTEXT + private).digest()
        message = record.agent_id.encode("ascii") + b"\n" + record.nonce
        return hmac.new(key, message, hashlib.sha256).digest()[:SECRET_SIZE]
