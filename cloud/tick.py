"""The scheduler's tick: which sites are due, from one listing, and one queue message each."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cloud.config import Config
from cloud.schedule import Due, days_to_expiry, due_sites, read_markers
from cloud.store import Store

log = logging.getLogger(__name__)


class Queue(Protocol):
    def send(self, bodies: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class TickResult:
    due: tuple[Due, ...]
    days_to_expiry: dict[str, float]


def message_for(site: str) -> str:
    return json.dumps({"site": site})


def site_of(body: str) -> str:
    return json.loads(body)["site"]


def run_tick(config: Config, store: Store, queue: Queue, now: datetime) -> TickResult:
    markers = read_markers(store)
    due = due_sites(config.sites, markers, now)
    if due:
        queue.send([message_for(d.site) for d in due])
    log.info("tick: %d of %d site(s) due", len(due), len(config.sites))
    return TickResult(tuple(due), days_to_expiry(markers, now))
