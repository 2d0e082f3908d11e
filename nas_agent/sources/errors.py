"""Errors of the agent's sources (the SourceError subtree of `nas_agent.errors`).

    AgentError
    └── SourceError            .url: the agent's prefix (no credentials or query), .name,
        │                      .backend_code
        ├── SourceNotFound     the object is absent (nothing published for this agent yet)
        ├── SourceUnavailable  transient: network, timeout, 5xx, throttling, share not mounted
        ├── SourceDenied       401/403, bad or missing credentials: fix the credentials or policy
        └── SourceTooLarge     .size, .limit: a body larger than any object the agent reads

Codes are "source.<condition>" (the scheme is in `nas_agent.errors`). What the source itself
answered stays in `.backend_code`: the HTTP status, S3's error code, the errno name or "TLS". A
plain SourceError is terminal (a refused redirect, a missing bucket, a 400). Messages never
contain credentials: a URL is shown without its user info and query string, and S3 errors are
rebuilt from their code, not copied.
"""

from __future__ import annotations

from nas_agent.errors import AgentError


class SourceError(AgentError):
    code = "source.failed"

    def __init__(
        self, reason: str, *, url: str, name: str | None = None, backend_code: str | None = None
    ):
        self.reason = reason
        self.url = url
        self.name = name
        self.backend_code = backend_code
        where = f"{url}{name}" if name else url
        super().__init__(f"source {where}: {reason}")


class SourceNotFound(SourceError):
    code = "source.not_found"


class SourceUnavailable(SourceError):
    code = "source.unavailable"
    transient = True


class SourceDenied(SourceError):
    code = "source.denied"


class SourceTooLarge(SourceError):
    code = "source.too_large"

    def __init__(self, size: int | None, limit: int, *, url: str, name: str):
        self.size = size
        self.limit = limit
        told = f"{size} bytes, more than" if size is not None else "larger than"
        super().__init__(
            f"the object is {told} the {limit} bytes allowed; refusing to read it",
            url=url,
            name=name,
        )
