"""What the issuer knows of each site's current certificate, in the object store.

    state/sites/<site>.json

Written after a publish completes, so it always names a version whose escrow copy and agent
bundles exist. The version is monotonic per site: agents refuse anything not newer than what they
have installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from cloud.store import Store, StoredObject

PREFIX = "state/sites/"


@dataclass(frozen=True)
class SiteState:
    site: str
    version: int
    cert_sha256: str
    serial: str  # hex
    names: tuple[str, ...]
    key_type: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    escrow_object: str

    def to_json(self) -> bytes:
        body = asdict(self)
        body["names"] = list(self.names)
        for key in ("not_before", "not_after", "issued_at"):
            body[key] = getattr(self, key).isoformat()
        return json.dumps(body, sort_keys=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SiteState:
        body = json.loads(data)
        body["names"] = tuple(body["names"])
        for key in ("not_before", "not_after", "issued_at"):
            body[key] = datetime.fromisoformat(body[key])
        return cls(**body)


def key_for(site: str) -> str:
    return f"{PREFIX}{site}.json"


def load_site_state(store: Store, site: str) -> SiteState | None:
    found = store.get(key_for(site))
    return SiteState.from_json(found.body) if isinstance(found, StoredObject) else None


def save_site_state(store: Store, state: SiteState) -> None:
    store.put(key_for(state.site), state.to_json())
