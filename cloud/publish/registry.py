"""The registry of enrolled NAS agents and the sites each one receives, in the object store.

    state/agents/<agent-id>.json    {"id", "token", "sites", "added_at"}

The token is the agent's enrollment line (its id and public keys); the registry holds nothing
secret. Registration is by the operator (`certdrop agent add`), never by an agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cloud.errors import AgentConflict, UnknownAgent
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent.enrollment import Enrollment, parse_enrollment_token


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    token: str
    sites: tuple[str, ...]
    added_at: datetime

    @property
    def enrollment(self) -> Enrollment:
        return parse_enrollment_token(self.token)

    def to_json(self) -> bytes:
        body = {
            "id": self.agent_id,
            "token": self.token,
            "sites": list(self.sites),
            "added_at": self.added_at.isoformat(),
        }
        return json.dumps(body, sort_keys=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AgentRecord:
        body = json.loads(data)
        return cls(
            body["id"],
            body["token"],
            tuple(body["sites"]),
            datetime.fromisoformat(body["added_at"]),
        )


class AgentRegistry:
    def __init__(self, store: Store):
        self.store = store

    def add(self, enrollment: Enrollment, sites: tuple[str, ...], now: datetime) -> AgentRecord:
        """Registers the agent for `sites`; registering it again with the same keys adds sites."""
        token = enrollment.token()
        current = self.get(enrollment.agent_id)
        if current is not None and current.token != token:
            raise AgentConflict(enrollment.agent_id)
        merged = tuple(sorted(set(sites) | set(current.sites if current else ())))
        record = AgentRecord(
            enrollment.agent_id, token, merged, current.added_at if current else now
        )
        self.store.put(self._key(record.agent_id), record.to_json())
        return record

    def set_sites(self, agent_id: str, sites: tuple[str, ...]) -> AgentRecord:
        record = self.require(agent_id)
        updated = AgentRecord(record.agent_id, record.token, tuple(sorted(sites)), record.added_at)
        self.store.put(self._key(agent_id), updated.to_json())
        return updated

    def get(self, agent_id: str) -> AgentRecord | None:
        found = self.store.get(self._key(agent_id))
        return AgentRecord.from_json(found.body) if isinstance(found, StoredObject) else None

    def require(self, agent_id: str) -> AgentRecord:
        record = self.get(agent_id)
        if record is None:
            raise UnknownAgent(agent_id)
        return record

    def all(self) -> list[AgentRecord]:
        records = []
        for info in self.store.list(store_layout.REGISTRY_PREFIX):
            found = self.store.get(info.key)
            if isinstance(found, StoredObject):
                records.append(AgentRecord.from_json(found.body))
        return records

    def subscribers(self, site: str) -> list[AgentRecord]:
        return [record for record in self.all() if site in record.sites]

    def forget(self, agent_id: str) -> None:
        self.store.delete(self._key(agent_id))

    @staticmethod
    def _key(agent_id: str) -> str:
        return store_layout.registry_record(agent_id)
