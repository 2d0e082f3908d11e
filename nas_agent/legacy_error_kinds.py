"""Reading errors recorded before codes existed: such agents wrote the class name,

    "last_error": {"kind": "SealedHashMismatch", "message": "...", ...}

and a state file or status report of theirs is still read (after an upgrade, or from an agent
not upgraded yet). A name is mapped to the code of the class it names; a name no class here
has any more becomes UNKNOWN_CODE, never an error.
"""

from __future__ import annotations

# The subtrees outside nas_agent.errors: imported for their classes, or the walk below misses them.
from nas_agent.config import errors as _config_errors  # noqa: F401
from nas_agent.dsm import errors as _dsm_errors  # noqa: F401
from nas_agent.errors import UNKNOWN_CODE, AgentError
from nas_agent.sources import errors as _source_errors  # noqa: F401


def _tree() -> list[type[AgentError]]:
    found: list[type[AgentError]] = [AgentError]
    for cls in found:  # grows while walked: breadth first
        found.extend(cls.__subclasses__())
    return found


_CODE_BY_NAME: dict[str, str] = {cls.__name__: cls.code for cls in _tree()}


def code_for_kind(kind: str) -> str:
    """The code of the error class called `kind`; UNKNOWN_CODE for a name no class has."""
    return _CODE_BY_NAME.get(kind, UNKNOWN_CODE)
