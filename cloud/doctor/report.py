"""What a `certdrop doctor` check finds, and what every check is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cloud.acme.client import AcmeClient
from cloud.config import Config
from cloud.store import Store


@dataclass(frozen=True)
class Finding:
    subject: str  # what was looked at: a site, a record at one nameserver, a key
    ok: bool
    text: str  # what was found; on failure also what is expected


@dataclass(frozen=True)
class Report:
    """One check's findings; it passes when every finding is ok."""

    title: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def render(self) -> str:
        width = max((len(f.subject) for f in self.findings), default=0)
        lines = [f"[{'ok' if self.ok else 'FAIL'}] {self.title}"]
        lines += [
            f"  {'ok' if f.ok else 'FAIL':<4}  {f.subject:<{width}}  {f.text}"
            for f in self.findings
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class Context:
    """What a check may use. Checks only read (the DNS, the CA's directory, the store), but for
    the store check's probe object, written and deleted."""

    config: Config
    now: datetime
    acme: Callable[[], AcmeClient]  # connected on first call (loads or registers the account)
    store: Callable[[], Store]  # opened on first call
