"""Adding and removing sites, and setting the ACME account key: edits of the operator's TOML
file that keep its comments and layout (tomlkit), and, on a site's removal, its objects in the
store.

Every edit is checked by parsing the edited text as the configuration before it is written, so
a bad `site add` leaves the file as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.exceptions import ParseError

from cloud import config as config_module
from cloud.acme.account_key import AccountKeyRef
from cloud.config.file import read_text, write_text
from cloud.errors import ConfigError, ConfigProblem
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRegistry
from cloud.store import Store
from nas_agent import store_layout


@dataclass(frozen=True)
class NewSite:
    site_id: str
    domain: str
    provider: str | None  # dns-01's; none for dns-persist-01
    challenge: str | None = None  # None: the default, dns-01
    wildcard: bool = True
    extra_names: tuple[str, ...] = ()
    key_type: str | None = None
    profile: str | None = None
    key_custody: str | None = None  # None: the default, issuer


def add_site(path: Path, site: NewSite) -> config_module.Config:
    """Adds a [sites.ID] table; refuses an id already there. Returns the new configuration."""
    document = _read(path)
    sites = document.setdefault("sites", tomlkit.table(is_super_table=True))
    if not isinstance(sites, dict):
        problem = ConfigProblem("sites", "must be a table", "write each site as [sites.ID]")
        raise ConfigError([problem], str(path))
    if site.site_id in sites:
        problem = ConfigProblem(
            f"sites.{site.site_id}", "already exists", "pick another id, or remove it first"
        )
        raise ConfigError([problem], str(path))
    table = tomlkit.table()
    table["domain"] = site.domain
    if not site.wildcard:
        table["wildcard"] = False
    if site.extra_names:
        table["extra_names"] = list(site.extra_names)
    if site.key_type:
        table["key_type"] = site.key_type
    if site.profile:
        table["profile"] = site.profile
    if site.challenge:
        table["challenge"] = site.challenge
    if site.key_custody:
        table["key_custody"] = site.key_custody
    if site.provider:
        table["provider"] = site.provider
    sites[site.site_id] = table
    return _write_checked(path, tomlkit.dumps(document))


def remove_site(path: Path, site_id: str) -> config_module.Config:
    document = _read(path)
    sites = document.get("sites", {})
    if not isinstance(sites, dict) or site_id not in sites:
        known = ", ".join(sorted(sites)) or "none configured"
        raise ConfigError(
            [ConfigProblem(f"sites.{site_id}", "no such site", f"use one of: {known}")], str(path)
        )
    del sites[site_id]
    return _write_checked(path, tomlkit.dumps(document))


def set_account_key(path: Path, key: AccountKeyRef) -> config_module.Config:
    """Sets `[ca] account_key` (after `certdrop account rollover`); a key in the key store, the
    default, is written as no account_key at all."""
    document = _read(path)
    ca = document.get("ca")
    if not isinstance(ca, dict):
        raise ConfigError([ConfigProblem("ca", "missing", "add a [ca] table")], str(path))
    if key.kms_arn is None:
        ca.pop("account_key", None)
    else:
        ca["account_key"] = str(key)
    return _write_checked(path, tomlkit.dumps(document))


def forget_site(store: Store, publisher: Publisher | None, site_id: str) -> int:
    """Takes the site from every agent (index entry, bundles, subscription), deletes its escrow
    copies with their statements, state and schedule; returns how many agents had it.
    Certificates already installed on NAS units stay there, valid until they expire."""
    holders = [record for record in AgentRegistry(store).all() if site_id in record.sites]
    # Without issuer keys (before `certdrop init`) no agent can have been registered.
    if publisher is not None:
        for record in holders:
            publisher.withdraw(record.agent_id, site_id)
            if publisher.registry.problem(record) is None:
                sites = tuple(s for s in record.sites if s != site_id)
                publisher.registry.set_sites(record.agent_id, sites)
            # A record the issuer did not sign stays as it is: re-signing it would vouch for
            # its keys, and nothing is sealed to it anyway.
    for prefix in (
        store_layout.escrow_prefix(site_id),
        store_layout.escrow_statements(site_id),
        store_layout.schedule_prefix(site_id),
    ):
        for info in list(store.list(prefix)):
            store.delete(info.key)
    # Not the challenge journal: TXT values it lists are still in DNS, and the runs of a site
    # no longer configured remove them (`Runner.run_site`).
    store.delete(store_layout.site_state(site_id))
    return len(holders)


def _read(path: Path) -> tomlkit.TOMLDocument:
    """The file as an editable document; ConfigError when it cannot be read or is not TOML."""
    text = read_text(path)
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        problem = ConfigProblem("(file)", f"not valid TOML: {exc}", "fix the syntax")
        raise ConfigError([problem], str(path)) from exc


def _write_checked(path: Path, text: str) -> config_module.Config:
    config = config_module.parse(text, path)  # raises ConfigError; the file is untouched
    write_text(path, text)
    return config
