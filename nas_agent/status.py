"""The agent's signed status report, `agents/<id>/status.json`.

    {"format": "certdrop-agent-status-signed-v1", "report": {...}, "signature": "<b64url>"}

`report` is the body `status_report` builds:

    {"format": "certdrop-agent-status-v1", "agent": "nas-01", "poll_interval_s": 900,
     "seen_at": "2026-11-28T12:00:00Z", "dsm_version": "DSM 7.2.1-69057 Update 5",
     "sites": {"shop": {"version": 7, "fingerprint": "<sha256 hex>",
                        "not_after": "...", "installed_at": "..."}},
     "last_success": "2026-11-28T11:45:00Z",
     "last_error": {"code": "install.failed", "message": "...", "at": "...", "site": "shop"},
     "site_errors": {"shop": {"code": "install.failed", "message": "...", "at": "...",
                              "site": "shop"}},
     "unconfigured_sites": ["blog"],
     "dsm_check": {"at": "2026-11-28T11:45:00Z",
                   "error": {"code": "dsm.login_wrong_password", "message": "...",
                             "at": "2026-11-28T11:45:00Z", "site": null}},
     "failing": true, "frozen": false,
     "key_custody": {"example.com": {"custody": "agent", "csr_pending": 1764892800,
                                     "problem": {"code": "keyreq.source_read_only", ...}},
                     "shop": {"custody": "issuer", "csr_pending": null, "problem": null}}}

Errors travel as their stable codes (`nas_agent.errors`); the message is for people only.
`site_errors` holds the sites whose latest attempt failed. Reports written before codes carry
"kind" (the class name) instead of "code", and no `site_errors`.

`unconfigured_sites` are sites the agent's index holds certificates for but its agent.conf has
no `[site:<id>]` section for: they are not installed. `dsm_check` is the agent's latest DSM login
(a daily credential check, or an install's login; null before the first) with the error when
DSM refused it; `failing` stays true while it holds one. Older agents send neither field.
`frozen` is true while the agent's index has expired (`bundle.index_expired`): nothing new can
be installed until the issuer signs a fresh one. Agents before index v2 do not send it.

`key_custody` is sent once the agent has accepted the issuer's key requests (docs/key-custody.md):
per site, who makes its keys, the sequence of the CSR the agent posted and waits on, and the
site's latest `keyreq.*`/`csr.*`/`bundle.key_missing` problem. Agents before agent custody,
and agents whose issuer never wrote key requests, do not send it; readers ignore fields they do
not know.

The Ed25519 signature (the agent's own key, registered at enrollment) covers a context string
and the report's canonical JSON, so the cloud can tell a real report from one written by anyone
else with write access.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    load_json_object,
)
from nas_agent.errors import StatusReportInvalid
from nas_agent.state import AgentState, error_json

STATUS_FORMAT = "certdrop-agent-status-v1"
SIGNED_FORMAT = "certdrop-agent-status-signed-v1"
_CONTEXT = b"certdrop agent status v1\n"
# A site's custody problems: key requests, its CSR, and a certificate it holds no key for.
_CUSTODY_CODES = ("keyreq.", "csr.", "bundle.key_missing")
# The most a report may have: readers refuse a larger one unread (an agent with many sites and
# long errors stays far below it).
MAX_REPORT_BYTES = 64 * 1024


def status_report(
    state: AgentState,
    *,
    agent_id: str,
    now: datetime,
    poll_interval: float,
    csr_pending: Mapping[str, int | None] | None = None,
) -> bytes:
    """The report body: what is installed, the DSM version, the last success and errors, when
    the agent was last seen and how often it means to report (the operator's view calls it
    quiet after three missed reports), index entries for sites it has no configuration for, and
    its latest DSM login. No local detail (ETag, DSM ids, configuration digests)."""
    document = {
        "format": STATUS_FORMAT,
        "agent": agent_id,
        "poll_interval_s": int(poll_interval),
        "seen_at": format_timestamp(now.replace(microsecond=0)),
        "dsm_version": state.dsm_version,
        "sites": {
            site: {
                "version": installed.version,
                "fingerprint": installed.fingerprint,
                "not_after": format_timestamp(installed.not_after),
                "installed_at": format_timestamp(installed.installed_at),
            }
            for site, installed in state.sites.items()
        },
        "last_success": format_timestamp(state.last_success) if state.last_success else None,
        "last_error": error_json(state.last_error),
        "site_errors": {site: error_json(e) for site, e in state.site_errors.items()},
        "unconfigured_sites": list(state.unconfigured_sites),
        "dsm_check": (
            None
            if state.dsm_check is None
            else {
                "at": format_timestamp(state.dsm_check.at),
                "error": error_json(state.dsm_check.error),
            }
        ),
        "failing": state.failing,
        "frozen": state.frozen,
    }
    if state.key_requests is not None:
        document["key_custody"] = _key_custody(state, csr_pending or {})
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def signed_status(
    state: AgentState,
    *,
    agent_id: str,
    signing_key: ed25519.Ed25519PrivateKey,
    now: datetime,
    poll_interval: float,
    csr_pending: Mapping[str, int | None] | None = None,
) -> bytes:
    report = json.loads(
        status_report(
            state,
            agent_id=agent_id,
            now=now,
            poll_interval=poll_interval,
            csr_pending=csr_pending,
        )
    )
    signature = signing_key.sign(_CONTEXT + canonical_json(report))
    document = {"format": SIGNED_FORMAT, "report": report, "signature": b64url_encode(signature)}
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def _key_custody(
    state: AgentState, csr_pending: Mapping[str, int | None]
) -> dict[str, dict[str, Any]]:
    assert state.key_requests is not None
    agent = {request.site for request in state.key_requests.sites}
    custody = {}
    for site in sorted(agent | set(state.sites)):
        error = state.site_errors.get(site)
        problem = error if error is not None and error.code.startswith(_CUSTODY_CODES) else None
        custody[site] = {
            "custody": "agent" if site in agent else "issuer",
            "csr_pending": csr_pending.get(site) if site in agent else None,
            "problem": error_json(problem),
        }
    return custody


def verify_status(
    data: bytes, *, agent_id: str, public_key: ed25519.Ed25519PublicKey
) -> dict[str, Any]:
    """The report, once its signature and addressee check out (raises StatusReportInvalid)."""
    try:
        document = load_json_object(data, max_size=MAX_REPORT_BYTES)
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
