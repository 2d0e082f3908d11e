"""The agent's signed status report, `agents/<id>/status.json`.

    {"format": "certdrop-agent-status-signed-v1", "report": {...}, "signature": "<b64url>"}

`report` is the body `nas_agent.state.status_report` builds; the Ed25519 signature (the agent's
own key, registered at enrollment) covers a context string and the report's canonical JSON, so
the cloud can tell a real report from one written by anyone else with write access.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent._encoding import b64url_decode, b64url_encode, canonical_json, load_json_object
from nas_agent.errors import AgentError
from nas_agent.state import AgentState, status_report

SIGNED_FORMAT = "certdrop-agent-status-signed-v1"
_CONTEXT = b"certdrop agent status v1\n"
_MAX_BYTES = 256 * 1024


class StatusReportInvalid(AgentError):
    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"status report refused: {reason}")


def signed_status(
    state: AgentState,
    *,
    agent_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
    now: datetime,
    poll_interval: float,
) -> bytes:
    report = json.loads(
        status_report(state, agent_id=agent_id, now=now, poll_interval=poll_interval)
    )
    signature = signing_key.sign(_CONTEXT + canonical_json(report))
    document = {"format": SIGNED_FORMAT, "report": report, "signature": b64url_encode(signature)}
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def verify_status(
    data: bytes, *, agent_id: str, public_key: ed25519.Ed25519PublicKey
) -> dict[str, Any]:
    """The report, once its signature and addressee check out (raises StatusReportInvalid)."""
    try:
        document = load_json_object(data, max_size=_MAX_BYTES)
        if document.get("format") != SIGNED_FORMAT:
            raise ValueError(f"format is not {SIGNED_FORMAT}")
        report = document["report"]
        signature = b64url_decode(document["signature"])
        if not isinstance(report, dict):
            raise ValueError("report is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise StatusReportInvalid(f"not a signed status report ({exc})") from exc
    try:
        public_key.verify(signature, _CONTEXT + canonical_json(report))
    except InvalidSignature as exc:
        raise StatusReportInvalid("the signature does not verify") from exc
    if report.get("agent") != agent_id:
        raise StatusReportInvalid(f"the report is for agent {report.get('agent')!r}")
    return report
