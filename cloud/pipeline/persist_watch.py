"""dns-persist-01 in the pipeline: what a record check saw, as the site state keeps it; the daily
look at a site's records between issuances; and a CA's refusal of a site's challenge, recorded so
the site is not ordered again until something changes.

The status, the dashboard and the alerts read the records kept here: an expiring persistUntil,
and a record naming another account than the issuer's (a new ACME account invalidates every
record; a key rollover keeps the account's URI).
"""

from __future__ import annotations

import logging
from datetime import datetime

from cloud.acme.client import AcmeClient
from cloud.config import SiteConfig
from cloud.dns01.names import PERSIST_LABEL, challenge_name
from cloud.dns01.persist.check import RecordCheck, check_names
from cloud.dns01.propagation import DnsCheckSettings
from cloud.errors import CertdropError, ChallengeNotOffered
from cloud.pipeline.renewal import site_digest
from cloud.pipeline.site_state import ChallengeUnavailable, PersistSeen

log = logging.getLogger(__name__)


def seen(checks: tuple[RecordCheck, ...], account: str) -> tuple[PersistSeen, ...]:
    """One record per check: what the first server that does not authorize us serves (or,
    when all do, the earliest persistUntil any of them serves)."""
    return tuple(_seen(check, account) for check in checks)


def look(
    site: SiteConfig, acme: AcmeClient, settings: DnsCheckSettings, now: datetime
) -> tuple[PersistSeen, ...]:
    """Reads the site's records now, with the issuer domains the CA's directory lists. A record
    that cannot be read is kept with its error, so the next look is still a day away."""
    try:
        checks = check_names(site.names, acme.caa_identities, acme.account_uri, settings, now)
    except CertdropError as exc:
        log.warning("dns-persist-01 record not read: %s", exc, extra={"site": site.id})
        fqdn = challenge_name(site.domain, PERSIST_LABEL)
        return (PersistSeen(fqdn, now, acme.account_uri, None, None, exc.code, str(exc)),)
    return seen(checks, acme.account_uri)


def refusal(exc: CertdropError, site: SiteConfig, now: datetime) -> ChallengeUnavailable | None:
    """The record of a CA refusing the site's challenge, for a failure that is one."""
    if not isinstance(exc, ChallengeNotOffered):
        return None
    return ChallengeUnavailable(exc.challenge, exc.directory, site_digest(site), now)


def _seen(check: RecordCheck, account: str) -> PersistSeen:
    error = check.error()
    failing = [r for r in check.readings if not r.ok]
    readings = failing[:1] if failing else check.readings
    values = [r.verdict.value for r in readings if r.verdict and r.verdict.value]
    untils = [v.persist_until for v in values if v.persist_until is not None]
    return PersistSeen(
        fqdn=check.fqdn,
        checked_at=check.checked_at,
        account=account,
        account_uri=values[0].account_uri if values else None,
        persist_until=min(untils) if untils else None,
        code=error.code if error else None,
        problem=str(error) if error else None,
    )
