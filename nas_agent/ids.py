"""The shapes of agent ids and site ids, shared by the cloud's config and the agent.

Both end up in object keys (`agents/<agent>/bundles/<site>/<version>.sealed`), in HPKE `info` and in
signed statements, so they are plain lowercase ASCII and can never contain `/`, `=`, whitespace or a
line break.
"""

from __future__ import annotations

import re

AGENT_ID_PATTERN = "[a-z0-9][a-z0-9-]{0,62}"
# Sites may carry dots so an operator can name one after its domain (`example.com`).
SITE_ID_PATTERN = "[a-z0-9][a-z0-9.-]{0,62}"

_AGENT_ID = re.compile(AGENT_ID_PATTERN)
_SITE_ID = re.compile(SITE_ID_PATTERN)


def is_agent_id(value: object) -> bool:
    return isinstance(value, str) and _AGENT_ID.fullmatch(value) is not None


def is_site_id(value: object) -> bool:
    return isinstance(value, str) and _SITE_ID.fullmatch(value) is not None
