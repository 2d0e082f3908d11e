"""`certdrop-agent rekey SITE`: a new key and a CSR statement with `rekey: true` now, so the
issuer orders at once: after a key was lost (`bundle.key_missing`) or is suspected exposed. The
pending key it replaces is deleted; the installed certificate's key stays until its successor
is installed (also when a stopped run left it recorded as the pending one)."""

from __future__ import annotations

import os
from datetime import datetime

from nas_agent.config import AgentConfig
from nas_agent.custody.errors import SiteNotAgentCustody, SiteNotConfigured
from nas_agent.custody.key_store import KeyStore, PendingKey
from nas_agent.custody.preparation import prepare
from nas_agent.keys import load_agent_keys
from nas_agent.local_copies import LocalCopies
from nas_agent.sources import open_source
from nas_agent.state import load_state


def rekey(config: AgentConfig, site: str, *, now: datetime) -> PendingKey:
    """Make and post the site's new key and CSR. Raises SiteNotConfigured, SiteNotAgentCustody
    (the key requests the agent accepted last do not name the site), SourceReadOnly,
    SourceError, KeyFileError, StateError. The caller holds the agent's run lock."""
    if site not in config.sites:
        raise SiteNotConfigured(f"agent.conf {config.path} has no [site:{site}]", site=site)
    state = load_state(config.agent.state_file)
    request = state.key_requests.request(site) if state.key_requests else None
    if request is None:
        raise SiteNotAgentCustody(
            f"site {site} is not in agent custody (the issuer makes its key): nothing to rekey;"
            " set key_custody = 'agent' for it on the issuer first",
            site=site,
        )
    keys = load_agent_keys(config.agent.keys_dir, config.agent.id)
    installed = state.installed(site)
    store = KeyStore(os.path.dirname(os.path.abspath(config.agent.state_file)))
    with open_source(config.source.url, config.agent.id, **config.source.options()) as source:
        return prepare(
            store,
            request,
            agent=keys,
            source=source,
            now=now,
            installed_sha256=installed.fingerprint if installed else "",
            installed_key=LocalCopies.beside(config.agent.state_file).public_key(site),
            rekey=True,
        )
