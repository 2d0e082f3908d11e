"""Builds the working parts (key store, object store, DNS providers, ACME client) from a Config.

The CLI and the Lambda handlers call these; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cloud.acme_client import AcmeClient
from cloud.challenges import ChallengeJournal, Dns01Solver
from cloud.config import Config
from cloud.dns import DnsProvider
from cloud.dns.registry import build_provider
from cloud.errors import ConfigError, ConfigProblem
from cloud.issuance import IssuedCertificate, issue
from cloud.issuer import load_issuer
from cloud.keystore import KeyStore, LocalKeyStore
from cloud.lock import SiteLock
from cloud.publish import Publisher
from cloud.secrets import SecretRef, resolve
from cloud.store import Store
from cloud.store.url import open_store


def keystore(config: Config) -> KeyStore:
    """Secrets Manager when the configuration names the stack's key secrets, else keys_dir."""
    if config.storage.key_secrets is not None:
        from cloud.aws import SecretsManagerKeyStore

        return SecretsManagerKeyStore(config.storage.key_secrets)
    return LocalKeyStore(config.storage.keys_dir)


def store(config: Config) -> Store:
    storage = config.storage
    return open_store(storage.store_url, endpoint_url=storage.endpoint_url, region=storage.region)


def provider(config: Config, name: str) -> DnsProvider:
    """The named provider with its secrets read now, at the moment of use."""
    settings = config.providers[name]
    values = {k: resolve(v) if isinstance(v, SecretRef) else v for k, v in settings.values.items()}
    return build_provider(settings.type, values)


def site(config: Config, site_id: str):
    try:
        return config.sites[site_id]
    except KeyError:
        known = ", ".join(sorted(config.sites)) or "none configured"
        problem = ConfigProblem(f"sites.{site_id}", "no such site", f"use one of: {known}")
        raise ConfigError([problem], str(config.source)) from None


def issue_site(
    config: Config, site_id: str, *, object_store: Store | None = None
) -> IssuedCertificate:
    """Issues one site now through its configured CA and DNS provider."""
    target = site(config, site_id)
    object_store = object_store or store(config)
    solver = Dns01Solver(
        target.provider,
        provider(config, target.provider),
        config.dns,
        ChallengeJournal(object_store, target.id),
        provider_by_name=lambda name: provider(config, name),
    )
    acme = AcmeClient(config.ca, keystore(config))
    acme.connect()
    return issue(
        target,
        acme,
        solver,
        order_timeout=config.ca.order_timeout,
        preferred_chain=config.ca.preferred_chain,
    )


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
