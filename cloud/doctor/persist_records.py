"""The doctor's first check: each dns-persist-01 site's record(s), read-only at every
authoritative nameserver of the zone holding them, judged as the CA would judge them with the
issuer domains the CA's directory lists (`meta.caaIdentities`) and this issuer's account."""

from __future__ import annotations

from datetime import datetime

from cloud.acme.challenge_types import ChallengeType
from cloud.dns01.persist.check import RecordCheck, ServerReading, check_names
from cloud.doctor.report import Context, Finding, Report
from cloud.errors import CertdropError

TITLE = "dns-persist-01 records, read at every authoritative nameserver"


def check(context: Context) -> Report:
    config = context.config
    sites = [s for s in config.sites.values() if s.challenge is ChallengeType.DNS_PERSIST_01]
    if not sites:
        return Report(TITLE, (Finding("-", True, "no dns-persist-01 site is configured"),))
    try:
        acme = context.acme()
    except CertdropError as exc:  # e.g. an account key that cannot sign: the account check says
        return Report(TITLE, (Finding("CA", False, f"account not loaded: {exc} ({exc.code})"),))
    issuers, account = acme.caa_identities, acme.account_uri
    findings: list[Finding] = []
    if not issuers:
        text = f"the CA's directory {config.ca.directory} lists no caaIdentities (issuer domains)"
        findings.append(Finding("CA", False, text))
    for site in sites:
        try:
            checks = check_names(site.names, issuers, account, config.dns, context.now)
        except CertdropError as exc:
            findings.append(Finding(site.id, False, f"{exc} ({exc.code})"))
            continue
        for record in checks:
            for reading in record.readings:
                subject = f"{site.id}  {record.fqdn}  {reading.server}"
                findings.append(Finding(subject, reading.ok, _text(record, reading, context.now)))
    return Report(TITLE, tuple(findings))


def _text(record: RecordCheck, reading: ServerReading, now: datetime) -> str:
    if reading.verdict is None:
        return f"not readable: {reading.problem}"
    value = reading.verdict.value
    if not reading.verdict.ok:
        found = "; ".join(f'"{v}"' for v in reading.values) or "no TXT value"
        return f'{reading.verdict.detail}; found {found}; expected "{record.expected.value()}"'
    assert value is not None
    parts = [f"accounturi {value.account_uri}"]
    if record.expected.wildcard:
        parts.append("policy=wildcard")
    if value.persist_until is None:
        parts.append("no persistUntil")
    else:
        days = (value.persist_until - now).total_seconds() / 86400
        parts.append(
            f"persistUntil {value.persist_until:%Y-%m-%d %H:%M} UTC ({days:.0f} days left)"
        )
    return "authorizes this issuer: " + ", ".join(parts)
