"""`certdrop-agent upgrade`: what an agent upgraded in place writes into its configuration.

Agents before index v2 read indexes that carry no signed expiry (v1). An upgraded agent keeps
reading them for a while, because the issuer may be upgraded after its agents, but not forever:
a v1 index can be served again indefinitely (the freeze attack). The upgrade writes the end of
that window, UPGRADE_WINDOW from now, into `[agent] accept_index_v1_until`. An agent that has
accepted a v2 index never reads v1 again, whatever the date.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

from nas_agent._atomic import write_atomic
from nas_agent._encoding import format_timestamp
from nas_agent.config import AgentConfig
from nas_agent.state import load_state

UPGRADE_WINDOW = timedelta(days=30)
KEY = "accept_index_v1_until"
_AGENT_SECTION = re.compile(r"^\[agent\][ \t]*$", re.MULTILINE)


def write_upgrade_window(config: AgentConfig, now: datetime) -> str:
    """Adds `accept_index_v1_until` to agent.conf when it is not there and no v2 index was
    accepted yet; returns what was done, for the person upgrading."""
    if config.agent.accept_index_v1_until is not None:
        until = format_timestamp(config.agent.accept_index_v1_until)
        return f"{KEY} is already set ({until}): left as it is"
    if load_state(config.agent.state_file).index is not None:
        return "this agent already reads index v2: nothing to add"
    # utf-8-sig, as load_config reads it: behind a byte order mark [agent] starts no line.
    with open(config.path, encoding="utf-8-sig") as handle:
        text = handle.read()
    mode = os.stat(config.path).st_mode & 0o777
    section = _AGENT_SECTION.search(text)
    if section is None:  # the configuration loaded, so [agent] is there
        raise ValueError(f"{config.path} has no [agent] line")
    until = format_timestamp((now + UPGRADE_WINDOW).replace(microsecond=0))
    line = f"\n{KEY} = {until}  # written by certdrop-agent upgrade"
    changed = text[: section.end()] + line + text[section.end() :]
    write_atomic(config.path, changed.encode("utf-8"), mode=mode)
    return f"{KEY} = {until} added to {config.path}: the old index format is read until then"
