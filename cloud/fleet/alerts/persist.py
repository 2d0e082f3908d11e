"""The alerts of dns-persist-01 sites, from what their records were last seen to say: pure
functions over the fleet's status, like `rules.py`.

- "persist_expiring": a record's persistUntil is less than `expiry_days` away (or has passed):
  after it the CA refuses the record, and renewals fail.
- "persist_account_mismatch": a record names another ACME account than this issuer's: a new
  account invalidates every record (a key rollover keeps the account's URI).

One alert per site and kind, naming every record concerned; its cause is what the records say,
so a record replaced by its owner is a "changed" notice, and one that is fine again resolves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloud.fleet.alerts import Alert
from cloud.fleet.status import SiteStatus
from cloud.pipeline.site_state import PersistSeen


def persist_expiring(site: SiteStatus, now: datetime, expiry_days: float) -> Alert | None:
    soon = [
        seen
        for seen in site.persist
        if seen.persist_until is not None
        and (seen.persist_until - now).total_seconds() / 86400 < expiry_days
    ]
    if not soon:
        return None
    first = min(soon, key=lambda seen: seen.persist_until or now)
    assert first.persist_until is not None
    days = (first.persist_until - now).total_seconds() / 86400
    when = f"{first.persist_until:%Y-%m-%d %H:%M} UTC"
    if days <= 0:
        text = f"stopped authorizing issuance at its persistUntil, {when}"
    else:
        text = f"stops authorizing issuance in {_days(days)}, at its persistUntil {when}"
    return Alert(
        kind="persist_expiring",
        severity="critical" if days <= 0 else "warning",
        message=(
            f"The dns-persist-01 record {first.fqdn} of {site.site} {text}: replace it with a "
            f"later one (certdrop site persist-record {site.site} --persist-until YYYY-MM-DD)."
        ),
        at=now,
        cause=" ".join(f"{s.fqdn}={s.persist_until:%Y-%m-%dT%H:%M:%S}" for s in soon),
        site=site.site,
        details={"records": [_record(seen) for seen in soon], "expiry_days": expiry_days},
    )


def persist_account_mismatch(site: SiteStatus, now: datetime) -> Alert | None:
    other = [
        seen
        for seen in site.persist
        if seen.account_uri is not None and seen.account_uri != seen.account
    ]
    if not other:
        return None
    first = other[0]
    return Alert(
        kind="persist_account_mismatch",
        severity="error",
        message=(
            f"The dns-persist-01 record {first.fqdn} of {site.site} names the ACME account "
            f"{first.account_uri}, not this issuer's account {first.account}: the CA refuses it "
            f"(a new account invalidates every record). Replace it: certdrop site "
            f"persist-record {site.site}."
        ),
        at=now,
        cause=" ".join(f"{s.fqdn}={s.account_uri}" for s in other),
        site=site.site,
        details={"records": [_record(seen) for seen in other]},
    )


def _record(seen: PersistSeen) -> dict[str, Any]:
    return {
        "fqdn": seen.fqdn,
        "account_uri": seen.account_uri,
        "account": seen.account,
        "persist_until": seen.persist_until.isoformat() if seen.persist_until else None,
        "checked_at": seen.checked_at.isoformat(),
        "code": seen.code,
    }


def _days(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = int(days)
    return "1 day" if whole == 1 else f"{whole} days"
