"""`certdrop issue --dry-run`: one site issued by the CA's staging directory, recorded nowhere.

Like any run it takes the site's lock and journals its TXT values before adding them (a crash is
cleaned up by the next run), but under an ACME account of its own at the staging CA, and it
writes no site state, version, escrow copy, agent object or schedule marker: the pipeline
(`site_run`) cannot tell that it happened. The certificate is the caller's to show.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.acme.client import AcmeClient
from cloud.acme.order import IssuedCertificate, issue
from cloud.config import LETSENCRYPT_PRODUCTION, CaConfig, Config
from cloud.errors import ConfigError, ConfigProblem
from cloud.keys.store import KeyStore
from cloud.pipeline import parts
from cloud.store import Store, conditional_writes


def staging_ca(config: Config) -> CaConfig:
    """The configured CA with its staging directory in place of its directory; ConfigError when
    the configuration names none (Let's Encrypt's is known: it is the default for its CA)."""
    staging = config.ca.staging_directory
    if staging is None:
        problem = ConfigProblem(
            "ca.staging_directory",
            f"missing: a dry run issues from the staging directory of the CA, and none is known "
            f"for {config.ca.directory}",
            'add staging_directory = "<the CA\'s staging ACME directory URL>" to [ca] '
            f"(Let's Encrypt's is the default when directory = {LETSENCRYPT_PRODUCTION!r})",
        )
        raise ConfigError([problem], str(config.source))
    return replace(config.ca, directory=staging)


def dry_run(config: Config, store: Store, keys: KeyStore, site_id: str) -> IssuedCertificate:
    """Issues `site_id` from the staging CA now, holding the site's lock (raises `Locked` when
    another run holds it) and journalling TXT values as every run does; records nothing else."""
    site = parts.site(config, site_id)
    ca = staging_ca(config)
    conditional_writes.require(store)  # the lock relies on them, as every run's does
    with parts.site_lock(config, store, site.id):
        acme = AcmeClient(ca, keys, staging=True)
        acme.connect()
        # No callbacks: neither the order URL nor a dns-persist-01 reading is saved anywhere.
        return issue(
            site,
            acme,
            parts.authorizer(config, site, store),
            order_timeout=ca.order_timeout,
            preferred_chain=ca.preferred_chain,
        )
