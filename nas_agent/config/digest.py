"""Digests of the configuration: what a saved poll result or a DSM check was made under.

    index_scope(config)    which entries of the index the agent looks at, and how it checks them
    config_digest(config)  the whole configuration: any change to agent.conf changes it

Each is the hex SHA-256 of canonical JSON (sorted keys, so the order of sections does not count).
They hold no secret: the configuration names its secrets files, it never holds them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from nas_agent._encoding import canonical_json
from nas_agent.config.types import AgentConfig


def index_scope(config: AgentConfig) -> str:
    """The agent, its source, the pinned issuer key, and each configured site with the names its
    certificate must cover. A poll result (the index ETag) recorded under another scope is not
    reused: a site added, or its mistyped id corrected, makes the next run read the index again.

    A site's description, make_default and services are left out: they say how an accepted
    certificate is installed, not which index entries are accepted.
    """
    return _digest(
        {
            "agent": config.agent.id,
            "issuer_key": config.agent.issuer_key_line,
            "source": [config.source.url, config.source.endpoint_url],
            "sites": {site.id: list(site.hostnames) for site in config.sites.values()},
        }
    )


def config_digest(config: AgentConfig) -> str:
    """Every setting of agent.conf, as parsed (comments and layout do not count)."""
    agent = config.agent
    return _digest(
        {
            "agent": {
                "id": agent.id,
                "keys_dir": agent.keys_dir,
                "state_file": agent.state_file,
                "poll_interval": agent.poll_interval,
                "issuer_key": agent.issuer_key_line,
            },
            "source": dataclasses.asdict(config.source),
            "dsm": dataclasses.asdict(config.dsm),
            "sites": {site.id: dataclasses.asdict(site) for site in config.sites.values()},
        }
    )


def _digest(document: Any) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()
