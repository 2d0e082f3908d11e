"""Errors of the agent's configuration (the AgentConfigError subtree of `nas_agent.errors`).

    AgentError
    └── AgentConfigError      .problems: every ConfigProblem found, reported together; .source
        └── SecretFileError   .path: a secrets file that is missing, unreadable or too open

Each problem names the key, what is wrong and what to write or run instead. Nothing here is
transient: the configuration or a file mode must change before the next run can succeed.

Codes are "agent_config.<condition>" (the scheme is in `nas_agent.errors`): not "config.", which
names the cloud's configuration in the namespace both sides share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nas_agent.errors import AgentError, list_problems


@dataclass(frozen=True)
class ConfigProblem:
    key: str  # "section.key", or "(file)" for the file as a whole
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"{self.key}: {self.cause} — {self.fix}"


class AgentConfigError(AgentError):
    code = "agent_config.invalid"

    def __init__(self, problems: Sequence[ConfigProblem], source: str = ""):
        self.problems = tuple(problems)
        self.source = source
        super().__init__(list_problems(self.problems, source))


class SecretFileError(AgentConfigError):
    code = "agent_config.secret_file_unusable"

    def __init__(self, path: str, cause: str, fix: str, *, key: str = ""):
        self.path = path
        self.cause = cause
        self.fix = fix
        label = f"{key} ({path})" if key else path
        super().__init__([ConfigProblem(label, cause, fix)])
