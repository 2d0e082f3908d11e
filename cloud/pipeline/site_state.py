"""What the issuer knows of each site, in the object store: its current certificate, the CA's
renewal window, failures and backoff, and an order in flight.

    state/sites/<site>.json

The certificate part is written after a publish completes, so it always names a version whose
escrow copy and agent bundles exist. The version is monotonic per site: agents refuse anything
not newer than what they have installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
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
class SiteState:
    site: str
    current: CertificateRecord | None = None
    window: RenewalWindow | None = None
    failures: int = 0  # consecutive failed runs
    next_attempt: datetime | None = None  # backoff: no run before this
    last_error: ErrorRecord | None = None
    order_url: str | None = None  # an order placed and not yet finished: resumed, not re-placed
    order_placed_at: datetime | None = None

    def with_order(self, url: str | None, at: datetime | None) -> SiteState:
        return replace(self, order_url=url, order_placed_at=at)

    def to_json(self) -> bytes:
        return json.dumps(_encode(asdict(self)), sort_keys=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SiteState:
        body = json.loads(data)
        current = body.pop("current")
        window = body.pop("window")
        error = body.pop("last_error")
        return cls(
            current=_decode(CertificateRecord, current) if current else None,
            window=_decode(RenewalWindow, window) if window else None,
            last_error=_decode(ErrorRecord, error) if error else None,
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
