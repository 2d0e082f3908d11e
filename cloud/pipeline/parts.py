"""Builds the working parts (key store, object store, DNS providers, the site's challenge) from
a Config.

The CLI and the Lambda handlers call these; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cloud.acme.challenge_types import ChallengeType
from cloud.acme.order import Authorizer, Dns01Authorizer
from cloud.config import Config, SiteConfig
from cloud.dns01.providers.base import DnsProvider
from cloud.dns01.providers.registry import build_provider
from cloud.dns01.solver import ChallengeJournal, Dns01Solver, sweep_journal
from cloud.errors import ConfigError, ConfigProblem
from cloud.keys.store import KeyStore, LocalKeyStore
from cloud.pipeline.lock import SiteLock
from cloud.store import Store
from cloud.store.url import open_store

if TYPE_CHECKING:  # imported where used: a dns-01 run that publishes nothing needs neither
    from cloud.dns01.persist.check import RecordCheck
    from cloud.publish.publisher import Publisher


def keystore(config: Config) -> KeyStore:
    """Secrets Manager when the configuration names the stack's key secrets, else keys_dir."""
    if config.storage.key_secrets is not None:
        from cloud.aws.environment import SecretsManagerKeyStore

        return SecretsManagerKeyStore(config.storage.key_secrets, region=config.storage.region)
    return LocalKeyStore(config.storage.keys_dir)


def store(config: Config) -> Store:
    storage = config.storage
    return open_store(storage.store_url, endpoint_url=storage.endpoint_url, region=storage.region)


def provider(config: Config, name: str) -> DnsProvider:
    """The named provider with its secrets read now, at the moment of use. Raises ConfigError
    when the configuration has no such provider (any more: a journal names the one that placed
    its values)."""
    try:
        settings = config.providers[name]
    except KeyError:
        problem = ConfigProblem(
            f"providers.{name}",
            "no such provider, though TXT values placed through it are still in DNS",
            "add the provider back until a run has removed them, or remove them by hand",
        )
        raise ConfigError([problem], str(config.source)) from None
    return build_provider(settings.type, settings.values)


def sweep(config: Config, site_id: str, object_store: Store, now: Callable[[], datetime]) -> int:
    """Removes the TXT values the site's runs left (its challenge journal), each through the
    provider that placed it: whatever the site's challenge is now, and also for a site no longer
    configured. Returns how many are still left."""
    journal = ChallengeJournal(object_store, site_id)
    return sweep_journal(journal, config.dns, lambda name: provider(config, name), now)


def authorizer(
    config: Config,
    site: SiteConfig,
    object_store: Store,
    *,
    on_persist_check: Callable[[tuple[RecordCheck, ...], str], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Authorizer:
    """The site's challenge: dns-01 through its provider (journalled in `object_store`), or
    dns-persist-01's read-only check, whose readings go to `on_persist_check`."""
    if site.challenge is ChallengeType.DNS_PERSIST_01:
        from cloud.acme.persist import PersistAuthorizer

        return PersistAuthorizer(config.dns, on_check=on_persist_check, now=now)
    assert site.provider is not None  # the configuration requires one for dns-01
    solver = Dns01Solver(
        site.provider,
        provider(config, site.provider),
        config.dns,
        ChallengeJournal(object_store, site.id),
        provider_by_name=lambda name: provider(config, name),
    )
    return Dns01Authorizer(solver)


def site(config: Config, site_id: str):
    try:
        return config.sites[site_id]
    except KeyError:
        known = ", ".join(sorted(config.sites)) or "none configured"
        problem = ConfigProblem(f"sites.{site_id}", "no such site", f"use one of: {known}")
        raise ConfigError([problem], str(config.source)) from None


def site_lock(
    config: Config,
    object_store: Store,
    site_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SiteLock:
    """The site's lock, held longer than any run can take: the order's deadline, the
    propagation deadline and some slack, so only a dead run's lock ever expires."""
    ttl = timedelta(seconds=config.ca.order_timeout + config.dns.timeout + 300)
    return SiteLock(object_store, site_id, ttl, now=now)


def publisher(config: Config, object_store: Store | None = None) -> Publisher:
    """A publisher with the issuer's keys (raises IssuerNotInitialized before `certdrop init`)."""
    from cloud.keys.issuer import load_issuer
    from cloud.publish.publisher import Publisher

    return Publisher(object_store or store(config), load_issuer(keystore(config)))
