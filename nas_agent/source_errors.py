"""Errors of the agent's sources (the SourceError subtree of `nas_agent.errors`).

    AgentError
    └── SourceError            .url: the agent's prefix (no credentials or query), .name, .code
        ├── SourceNotFound     the object is absent (nothing published for this agent yet)
        ├── SourceUnavailable  transient: network, timeout, 5xx, throttling, share not mounted
        ├── SourceDenied       401/403, bad or missing credentials: fix the credentials or policy
        └── SourceTooLarge     .size, .limit: a body larger than any object the agent reads

A plain SourceError is terminal and carries the HTTP status or S3 error code in `.code` (a refused
redirect, a missing bucket, a 400). Messages never contain credentials: a URL is shown without
its user info and query string, and S3 errors are rebuilt from their code, not copied.
"""

from __future__ import annotations

from nas_agent.errors import AgentError


class SourceError(AgentError):
    def __init__(self, reason: str, *, url: str, name: str | None = None, code: str | None = None):
        self.reason = reason
        self.url = url
        self.name = name
        self.code = code
        where = f"{url}{name}" if name else url
        super().__init__(f"source {where}: {reason}")


class SourceNotFound(SourceError):
    pass


class SourceUnavailable(SourceError):
    transient = True


class SourceDenied(SourceError):
    pass


class SourceTooLarge(SourceError):
    def __init__(self, size: int | None, limit: int, *, url: str, name: str):
        self.size = size
        self.limit = limit
        told = f"{size} bytes, more than" if size is not None else "larger than"
        super().__init__(
            f"the object is {told} the {limit} bytes allowed; refusing to read it",
            url=url,
            name=name,
            code="TooLarge",
        )
