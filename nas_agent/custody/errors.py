"""Errors of agent key custody: the issuer's key requests (`keyreq.*`) and CSR statements
(`csr.*`). Part of the tree `nas_agent.errors` draws:

    AgentError
    ├── KeyRequestError            keyreq.*: the key-requests document, or making a CSR for it
    │   ├── KeyRequestsMalformed       not a key-requests document (JSON, fields, sizes, order)
    │   ├── KeyRequestsUnsupported     .found: a later format: upgrade the agent
    │   ├── KeyRequestsUnknownKey      signed by another issuer key than the one followed
    │   ├── KeyRequestsBadSignature    the signature does not verify
    │   ├── KeyRequestsWrongAgent      .addressee: written for another agent
    │   ├── KeyRequestsRolledBack      issued before the document last accepted
    │   ├── KeyRequestsMissing         the document is gone; the requests held are kept
    │   ├── SourceReadOnly             the source cannot take a CSR statement (https://)
    │   ├── SiteNotConfigured          `rekey SITE`: agent.conf has no [site:SITE]
    │   └── SiteNotAgentCustody        `rekey SITE`: the key requests do not list SITE
    └── CsrError                   csr.*: a CSR statement the issuer refuses (`statement`)
        ├── CsrMalformed               not a CSR statement (JSON, fields, sizes)
        ├── CsrUnsupported             .found: a later format
        ├── CsrWrongAgent, CsrWrongSite    not the agent / site of the path it was read from
        ├── CsrBadSignature            not signed by the agent's registered status key
        ├── CsrSequenceStale           .sequence not above .last_sequence
        ├── CsrCurrentCertMismatch     current_cert_sha256 is not the certificate delivered
        ├── CsrRequestInvalid          the CSR does not parse or its signature does not verify
        ├── CsrNamesMismatch           the CSR names other names than the site's
        ├── CsrKeyTypeMismatch         the CSR's key is not of the site's key type
        └── CsrKeyReused               the CSR's key is the one of the current certificate

The codes are stable: they travel in the agent's status report and the issuer's status,
dashboard and alerts. None is transient but SourceReadOnly's cause, which only a change of
source.url removes, is not the document's fault either: the site waits.
"""

from __future__ import annotations

from nas_agent.errors import AgentError


class KeyRequestError(AgentError):
    code = "keyreq.invalid"

    def __init__(self, reason: str, *, site: str | None = None):
        self.reason = reason
        self.site = site
        super().__init__(f"key requests: {reason}")


class KeyRequestsMalformed(KeyRequestError):
    code = "keyreq.malformed"


class KeyRequestsUnsupported(KeyRequestError):
    code = "keyreq.format_unsupported"

    def __init__(self, found: object):
        self.found = found
        super().__init__(f"format {found!r} is one this agent does not know: upgrade the agent")


class KeyRequestsUnknownKey(KeyRequestError):
    code = "keyreq.issuer_key_unknown"


class KeyRequestsBadSignature(KeyRequestError):
    code = "keyreq.signature_invalid"


class KeyRequestsWrongAgent(KeyRequestError):
    code = "keyreq.wrong_agent"

    def __init__(self, addressee: str):
        self.addressee = addressee
        super().__init__(f"the document is addressed to agent {addressee}")


class KeyRequestsRolledBack(KeyRequestError):
    code = "keyreq.rolled_back"


class KeyRequestsMissing(KeyRequestError):
    code = "keyreq.missing"


class SourceReadOnly(KeyRequestError):
    code = "keyreq.source_read_only"


class SiteNotConfigured(KeyRequestError):
    code = "keyreq.site_not_configured"


class SiteNotAgentCustody(KeyRequestError):
    code = "keyreq.site_not_agent_custody"


class CsrError(AgentError):
    code = "csr.invalid"

    def __init__(self, reason: str, *, agent_id: str | None = None, site: str | None = None):
        self.reason = reason
        self.agent_id = agent_id
        self.site = site
        where = "/".join(part for part in (agent_id, site) if part)
        super().__init__(f"CSR statement{f' {where}' if where else ''}: {reason}")


class CsrMalformed(CsrError):
    code = "csr.malformed"


class CsrUnsupported(CsrError):
    code = "csr.format_unsupported"


class CsrWrongAgent(CsrError):
    code = "csr.wrong_agent"


class CsrWrongSite(CsrError):
    code = "csr.wrong_site"


class CsrBadSignature(CsrError):
    code = "csr.signature_invalid"


class CsrSequenceStale(CsrError):
    code = "csr.sequence_stale"


class CsrCurrentCertMismatch(CsrError):
    code = "csr.current_cert_mismatch"


class CsrRequestInvalid(CsrError):
    code = "csr.request_invalid"


class CsrNamesMismatch(CsrError):
    code = "csr.names_mismatch"


class CsrKeyTypeMismatch(CsrError):
    code = "csr.key_type_mismatch"


class CsrKeyReused(CsrError):
    code = "csr.key_reused"
