"""The invitation line and the enrollment it authenticates: `certdrop agent invite` prints the
line, `certdrop-agent join LINE` on the NAS posts the enrollment, `certdrop agent approve` checks
it and registers the agent.

    certdrop-invite-v1:<base64url(canonical JSON of the invitation | checksum 4)>

    invitation = {"agent": "nas-01",
                  "issuer_key": "certdrop-issuer-v1:...",
                  "sites": {"example": "example.com"},            # site id -> its domain
                  "source": {"url": "s3://bucket/prefix", "region": "eu-central-1",
                             "endpoint_url": null, "access_key_id": "AKIA...",
                             "secret_access_key": "..."},          # or an https:// / file:// url
                  "secret": "<base64url of 32 bytes>",             # one-time enrollment secret
                  "expires_at": "2026-12-11T00:00:00Z"}

The checksum is the first 4 bytes of SHA-256 of the JSON, so a line cut short or mistyped is
refused with that said. The line holds secrets (the store credentials, the enrollment secret):
it is shown once, to be pasted into the NAS, and never logged.

    agents/<agent>/enrollment.json = {"format": "certdrop-enrollment-v1", "agent": "nas-01",
                                      "token": "certdrop-agent-v1:nas-01:...",
                                      "mac": "<base64url HMAC-SHA256>"}

The MAC is HMAC-SHA256 with the enrollment secret as key over b"certdrop enrollment v1\\n" +
agent id + b"\\n" + token: only a holder of the line can post keys the operator will approve,
and the token (the agent's public keys) is all that leaves the NAS. Expiry and single use are
the issuer's to enforce, by its own clock, at approval; the NAS's clock decides nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    load_json_object,
    parse_timestamp,
)
from nas_agent.errors import TokenError
from nas_agent.ids import is_agent_id, is_site_id

INVITE_PREFIX = "certdrop-invite-v1"
ENROLLMENT_FORMAT = "certdrop-enrollment-v1"
SECRET_SIZE = 32
MAX_ENROLLMENT_BYTES = 4096
_MAC_CONTEXT = b"certdrop enrollment v1\n"
_CHECKSUM_SIZE = 4
_KIND = "invitation line"
_SOURCE_KEYS = frozenset(
    {"url", "region", "endpoint_url", "addressing_style", "access_key_id", "secret_access_key"}
)


@dataclass(frozen=True)
class Invitation:
    agent_id: str
    issuer_key_line: str
    sites: Mapping[str, str]  # site id -> the domain its certificate is for
    source: Mapping[str, str]  # url, and the store's options and read credentials if any
    secret: bytes = field(repr=False)
    expires_at: datetime

    def line(self) -> str:
        document = {
            "agent": self.agent_id,
            "issuer_key": self.issuer_key_line,
            "sites": dict(self.sites),
            "source": dict(self.source),
            "secret": b64url_encode(self.secret),
            "expires_at": format_timestamp(self.expires_at),
        }
        body = canonical_json(document)
        return f"{INVITE_PREFIX}:{b64url_encode(body + _checksum(body))}"


def parse_invitation(text: str) -> Invitation:
    """Read a pasted line (whitespace is ignored); raise TokenError saying what is wrong."""
    if not isinstance(text, str):
        raise TokenError(_KIND, "not text")
    compact = "".join(text.split())
    head, _, payload = compact.partition(":")
    if head != INVITE_PREFIX:
        raise TokenError(_KIND, f"does not start with {INVITE_PREFIX}:")
    try:
        raw = b64url_decode(payload)
    except ValueError as exc:
        raise TokenError(_KIND, "not base64url after the prefix (a mistyped character?)") from exc
    body, checksum = raw[:-_CHECKSUM_SIZE], raw[-_CHECKSUM_SIZE:]
    if len(raw) <= _CHECKSUM_SIZE or _checksum(body) != checksum:
        raise TokenError(_KIND, "checksum does not match (cut short, or a mistyped character?)")
    try:
        document = load_json_object(body, max_size=len(body))
        return _invitation(document)
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError(_KIND, f"does not hold an invitation ({exc})") from exc


def enrollment_mac(secret: bytes, agent_id: str, token: str) -> bytes:
    message = _MAC_CONTEXT + agent_id.encode("ascii") + b"\n" + token.encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).digest()


def enrollment_document(secret: bytes, agent_id: str, token: str) -> bytes:
    """What `join` posts to `agents/<agent>/enrollment.json`."""
    document = {
        "format": ENROLLMENT_FORMAT,
        "agent": agent_id,
        "token": token,
        "mac": b64url_encode(enrollment_mac(secret, agent_id, token)),
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("ascii") + b"\n"


@dataclass(frozen=True)
class PostedEnrollment:
    agent_id: str
    token: str
    mac: bytes = field(repr=False)

    def authentic(self, secret: bytes) -> bool:
        return hmac.compare_digest(self.mac, enrollment_mac(secret, self.agent_id, self.token))


def parse_enrollment_document(data: bytes) -> PostedEnrollment:
    """Read an untrusted enrollment.json; raise ValueError saying what is wrong."""
    document = load_json_object(data, max_size=MAX_ENROLLMENT_BYTES)
    if document.get("format") != ENROLLMENT_FORMAT:
        raise ValueError(f"format is not {ENROLLMENT_FORMAT}")
    if set(document) != {"format", "agent", "token", "mac"}:
        raise ValueError('holds exactly "format", "agent", "token" and "mac"')
    if not is_agent_id(document["agent"]) or not isinstance(document["token"], str):
        raise ValueError("agent or token is not valid")
    return PostedEnrollment(document["agent"], document["token"], b64url_decode(document["mac"]))


def _invitation(document: dict[str, Any]) -> Invitation:
    if set(document) != {"agent", "issuer_key", "sites", "source", "secret", "expires_at"}:
        raise ValueError("unexpected or missing fields")
    if not is_agent_id(document["agent"]):
        raise ValueError("agent is not an agent id")
    sites = document["sites"]
    if not isinstance(sites, dict) or not sites:
        raise ValueError("sites is not a non-empty object")
    for site, domain in sites.items():
        if not is_site_id(site) or not isinstance(domain, str) or not domain:
            raise ValueError(f"site {site!r} is not a site id with a domain")
    source = document["source"]
    if not isinstance(source, dict) or "url" not in source or set(source) - _SOURCE_KEYS:
        raise ValueError("source is not an object with a url and known options")
    if not all(isinstance(value, str) for value in source.values()):
        raise ValueError("source options are not strings")
    secret = b64url_decode(document["secret"])
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"the secret is not {SECRET_SIZE} bytes")
    if not isinstance(document["issuer_key"], str):
        raise ValueError("issuer_key is not a line")
    return Invitation(
        agent_id=document["agent"],
        issuer_key_line=document["issuer_key"],
        sites=dict(sites),
        source=dict(source),
        secret=secret,
        expires_at=parse_timestamp(document["expires_at"]),
    )


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:_CHECKSUM_SIZE]
