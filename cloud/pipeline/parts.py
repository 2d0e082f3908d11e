"""Builds the working parts (key store, object store, DNS providers, ACME client) from a Config.

The CLI and the Lambda handlers call these; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cloud.config import Config
from cloud.dns01.providers.base import DnsProvider
from cloud.dns01.providers.registry import build_provider
from cloud.errors import ConfigError, ConfigProblem
from cloud.keys.issuer import load_issuer
from cloud.keys.store import KeyStore, LocalKeyStore
from cloud.pipeline.lock import SiteLock
from cloud.publish.publisher import Publisher
from cloud.store import Store
from cloud.store.url import open_store


def keystore(config: Config) -> KeyStore:
    """Secrets Manager when the configuration names the stack's key secrets, else keys_dir."""
    if config.storage.key_secrets is not None:
        from cloud.aws.environment import SecretsManagerKeyStore

        return SecretsManagerKeyStore(config.storage.key_secrets)
    return LocalKeyStore(config.storage.keys_dir)


def store(config: Config) -> Store:
    storage = config.storage
    return open_store(storage.store_url, endpoint_url=storage.endpoint_url, region=storage.region)


def provider(config: Config, name: str) -> DnsProvider:
    """The named provider with its secrets read now, at the moment of use."""
    settings = config.providers[name]
    return build_provider(settings.type, settings.values)


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
    return Publisher(object_store or store(config), load_issuer(keystore(config)))
