"""What the issuer knows of each site, in the object store: its current certificate, the CA's
renewal window, failures and backoff, an order in flight, and for dns-persist-01 what its record
was last seen to say.

    state/sites/<site>.json

The certificate part is written after a publish completes, so it always names a version whose
escrow copy and agent bundles exist. The version is monotonic per site: agents refuse anything
not newer than what they have installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from cloud.store import Store, StoredObject
from nas_agent import store_layout


@dataclass(frozen=True)
class CertificateRecord:
    """The site's published certificate."""

    version: int
    cert_sha256: str
    serial: str  # hex
    names: tuple[str, ...]
    key_type: str
    profile: str | None
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    escrow_object: str
    ari_id: str | None = None  # RFC 9773 CertID: base64url(AKI) "." base64url(serial)


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's suggested renewal window (ARI) and the moment picked inside it."""

    start: datetime
    end: datetime
    renew_at: datetime  # a random moment in [start, end), picked once per window
    next_check: datetime  # when to ask the CA again (its Retry-After)
    explanation_url: str | None = None


@dataclass(frozen=True)
class ErrorRecord:
    code: str  # the error's stable code (cloud/errors.py); the ACME problem is in the message
    message: str
    at: datetime
    transient: bool


@dataclass(frozen=True)
class ReplacedElsewhere:
    """The CA refused to let a renewal replace `cert_id` (alreadyReplaced) and no order this
    state recorded was that replacement: someone else ordered it (another client with the same
    ACME account, or a lost state). The renewal was ordered without `replaces`."""

    cert_id: str  # ARI CertID of the certificate the CA says was already replaced
    at: datetime
    detail: str  # what the CA said


@dataclass(frozen=True)
class PersistSeen:
    """What the last read of one dns-persist-01 record found, at issuance or a daily look."""

    fqdn: str  # the record's name
    checked_at: datetime
    account: str  # this issuer's ACME account URI at the time
    account_uri: str | None  # the one the record names; None: no usable value for the CA
    persist_until: datetime | None
    code: str | None = None  # the error's code when the record does not authorize us
    problem: str | None = None  # and what is wrong, for people


@dataclass(frozen=True)
class ChallengeUnavailable:
    """The CA offered no `challenge` for the site's order: not ordered again until the site's
    configuration (`site_config`, a digest) or the CA's directory changes."""

    challenge: str
    directory: str
    site_config: str
    at: datetime


@dataclass(frozen=True)
class AgentCertificate:
    """A certificate ordered for one agent of an agent-custody site, from its CSR."""

    record: CertificateRecord  # version, cert_sha256, not_after, ari_id, escrow copy ...
    sequence: int  # the CSR statement it answers
    key_sha256: str  # SHA-256 of its SubjectPublicKeyInfo: the next CSR must bring another key
    leaf_pem: str  # the certificate (public): the agent's next CSR statement is checked with it


@dataclass(frozen=True)
class AgentOrder:
    """An order placed (or about to be) for one agent's CSR: journalled before the newOrder is
    sent, its URL as soon as the CA returns it, so a run that dies is resumed, never re-ordered.
    The CSR is public (no key): a later run finishes the order with it, once the statement
    journalled with it passed its checks again (cloud.custody.order_journal): this state is not
    signed, so nothing in it alone is trusted to name a CSR."""

    sequence: int
    csr: str  # base64url of the CSR's DER
    key_sha256: str
    rekey: bool
    ordering_since: datetime
    url: str | None = None
    placed_at: datetime | None = None
    # base64url of the agent's signed CSR statement, its exact bytes; None in an entry written
    # before statements were journalled (the agent's statement in the store is checked instead).
    statement: str | None = None


@dataclass(frozen=True)
class CsrRefusal:
    """The agent's CSR statement failed a check (docs/key-custody.md); shown until a good one."""

    code: str  # csr.* (nas_agent.custody.errors) or registry.* (the agent's record)
    message: str
    at: datetime
    sequence: int | None = None  # the statement's, when it could be read


@dataclass(frozen=True)
class LimitWait:
    """The CA's limits hold this agent's order back (e.g. 5 per exact set of names a week)."""

    go_at: datetime
    held_by: tuple[str, ...]
    since: datetime


@dataclass(frozen=True)
class AgentCustodyState:
    """One agent of an agent-custody site: one certificate per agent, ordered with its CSR."""

    agent: str
    sequence: int = 0  # the last CSR sequence the issuer used (ordered with) for this agent
    current: AgentCertificate | None = None  # the certificate last delivered to the agent
    # SHA-256 of the one delivered before `current`: what the agent still serves when it could
    # not install `current` (its CSR statements name it).
    previous_cert_sha256: str = ""
    pending: AgentCertificate | None = None  # issued and escrowed, not yet delivered
    order: AgentOrder | None = None  # in flight
    window: RenewalWindow | None = None  # the CA's renewal window of `current` (ARI)
    refusal: CsrRefusal | None = None
    waiting: LimitWait | None = None
    csr_seen: bool = False  # a statement was found at the last look (else: waiting for one)
    rekeyed_at: datetime | None = None  # the last order placed for a rekey alone (one a day)

    def to_json(self) -> dict[str, Any]:
        return _encode(asdict(self))

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> AgentCustodyState:
        body = dict(body)
        found = {
            "current": _certificate(body.pop("current", None)),
            "pending": _certificate(body.pop("pending", None)),
            "order": _maybe(AgentOrder, body.pop("order", None)),
            "window": _maybe(RenewalWindow, body.pop("window", None)),
            "refusal": _maybe(CsrRefusal, body.pop("refusal", None)),
            "waiting": _maybe(LimitWait, body.pop("waiting", None)),
        }
        return cls(**found, **_decode_fields(cls, body))


@dataclass(frozen=True)
class SiteState:
    site: str
    current: CertificateRecord | None = None
    window: RenewalWindow | None = None
    failures: int = 0  # consecutive failed runs
    next_attempt: datetime | None = None  # backoff: no run before this
    last_error: ErrorRecord | None = None
    order_url: str | None = None  # an order placed and not yet finished: resumed, not re-placed
    order_placed_at: datetime | None = None
    # Saved just before a newOrder is sent: if the run dies before the CA's answer is recorded,
    # the next one looks for that order in the account's order list instead of placing another.
    ordering_since: datetime | None = None
    # That order's private key sealed to the escrow key, saved just before finalize: a run that
    # dies after it is finished with the CA's certificate and this key (cloud/publish/order_keys).
    order_key: str | None = None
    # Issued, its version reserved and its escrow copy written, not yet delivered: a run that
    # dies from here on is finished by the next one from escrow, with no new order.
    pending: CertificateRecord | None = None
    # Agents the current certificate has not reached yet (agent id → why); retried every run.
    undelivered: dict[str, str] = field(default_factory=dict)
    # TXT values a run placed and could not remove ("fqdn value"): retried every run and tick.
    leftover_txt: tuple[str, ...] = ()
    # The last certificate the CA said was replaced by an order not recorded here, and how often
    # that happened: each renewal it hit was ordered without `replaces`.
    replaced_elsewhere: ReplacedElsewhere | None = None
    replaced_elsewhere_count: int = 0
    persist: tuple[PersistSeen, ...] = ()  # dns-persist-01 sites: what the last check saw
    challenge_unavailable: ChallengeUnavailable | None = None
    # Agent custody (docs/key-custody.md): one certificate per agent, by agent id. `current`
    # and `pending` above are the issuer-custody certificate (kept while a site switches).
    agents: dict[str, AgentCustodyState] = field(default_factory=dict)

    def with_order(self, url: str | None, at: datetime | None) -> SiteState:
        return replace(self, order_url=url, order_placed_at=at, order_key=None, ordering_since=None)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["agents"] = {agent: entry.to_json() for agent, entry in self.agents.items()}
        return json.dumps(_encode(body), sort_keys=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SiteState:
        body = json.loads(data)
        current = body.pop("current")
        window = body.pop("window")
        error = body.pop("last_error")
        pending = body.pop("pending", None)
        elsewhere = body.pop("replaced_elsewhere", None)
        persist = body.pop("persist", [])
        unavailable = body.pop("challenge_unavailable", None)
        agents = body.pop("agents", {})
        return cls(
            agents={a: AgentCustodyState.from_json(entry) for a, entry in agents.items()},
            current=_decode(CertificateRecord, current) if current else None,
            pending=_decode(CertificateRecord, pending) if pending else None,
            window=_decode(RenewalWindow, window) if window else None,
            last_error=_decode(ErrorRecord, error) if error else None,
            replaced_elsewhere=_decode(ReplacedElsewhere, elsewhere) if elsewhere else None,
            persist=tuple(_decode(PersistSeen, seen) for seen in persist),
            challenge_unavailable=(
                _decode(ChallengeUnavailable, unavailable) if unavailable else None
            ),
            **_decode_fields(cls, body),
        )


def load_site_state(store: Store, site: str) -> SiteState | None:
    found = store.get(store_layout.site_state(site))
    return SiteState.from_json(found.body) if isinstance(found, StoredObject) else None


def save_site_state(store: Store, state: SiteState) -> None:
    store.put(store_layout.site_state(state.site), state.to_json())


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _maybe(cls: type, body: dict[str, Any] | None) -> Any:
    return _decode(cls, body) if body else None


def _certificate(body: dict[str, Any] | None) -> AgentCertificate | None:
    if not body:
        return None
    body = dict(body)
    record = _decode(CertificateRecord, body.pop("record"))
    return AgentCertificate(record=record, **_decode_fields(AgentCertificate, body))


def _decode(cls: type, body: dict[str, Any]) -> Any:
    return cls(**_decode_fields(cls, body))


def _decode_fields(cls: type, body: dict[str, Any]) -> dict[str, Any]:
    """Turns ISO strings back into datetimes and lists into tuples, by the field's type."""
    out = {}
    for f in fields(cls):
        if f.name not in body:
            continue
        value = body[f.name]
        kind = str(f.type)
        if value is not None and "datetime" in kind:
            value = datetime.fromisoformat(value)
        elif isinstance(value, list):
            value = tuple(value)
        out[f.name] = value
    return out
