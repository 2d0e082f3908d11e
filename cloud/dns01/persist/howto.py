"""The dns-persist-01 record(s) a site needs, to create once: in zone-file form, and how to create
them at common DNS hosts (a BIND zone file or nsupdate, Route 53, Cloudflare).

A zone file and nsupdate take a TXT value of up to 255 bytes per quoted string: a longer value is
written as several strings, which a validator joins again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cloud.dns01.names import PERSIST_LABEL, challenge_name
from cloud.dns01.persist.check import expectations

TTL = 3600  # the record is created once and rarely changes
_CHUNK = 255


@dataclass(frozen=True)
class RecordToCreate:
    fqdn: str  # "_validation-persist.example.com."
    value: str
    wildcard: bool  # the value allows a wildcard (policy=wildcard)

    def zone_line(self) -> str:
        return f"{self.fqdn} {TTL} IN TXT {quoted(self.value)}"


def records_for(
    names: tuple[str, ...],
    issuer_domain: str,
    account_uri: str,
    persist_until: datetime | None = None,
) -> list[RecordToCreate]:
    """One record per name a certificate for `names` is validated at (apex and wildcard share)."""
    return [
        RecordToCreate(
            challenge_name(domain, PERSIST_LABEL),
            expected.value(persist_until),
            expected.wildcard,
        )
        for domain, expected in expectations(names, (issuer_domain,), account_uri).items()
    ]


def quoted(value: str) -> str:
    """The value as zone-file strings: quoted, escaped, split every 255 bytes."""
    data = value.encode()
    chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
    escaped = [c.decode().replace("\\", "\\\\").replace('"', '\\"') for c in chunks]
    return " ".join(f'"{chunk}"' for chunk in escaped)


def render(
    site_id: str,
    names: tuple[str, ...],
    caa_identities: tuple[str, ...],
    account_uri: str,
    directory: str,
    persist_until: datetime | None = None,
) -> str:
    """What `certdrop site persist-record` prints."""
    issuer = caa_identities[0]
    records = records_for(names, issuer, account_uri, persist_until)
    listed = ", ".join(caa_identities)
    lines = [
        f"; dns-persist-01 record{'s' if len(records) > 1 else ''} for site {site_id}: "
        f"{', '.join(names)}",
        f"; issuer domain  {issuer} (the first of the CA directory's meta.caaIdentities: {listed})",
        f"; accounturi     {account_uri} (certdrop's ACME account at {directory})",
    ]
    if any(r.wildcard for r in records):
        lines.append("; policy         wildcard (a name and its wildcard share one record)")
    if persist_until is not None:
        lines.append(
            f"; persistUntil   {int(persist_until.timestamp())} = {persist_until:%Y-%m-%d %H:%M} "
            "UTC: after it the CA refuses the record; replace it before"
        )
    lines += [r.zone_line() for r in records]
    lines += [
        "",
        "Create it once at the domain's DNS host: certdrop never writes it and holds no DNS",
        "credentials. Whoever can use this ACME account's key can then get certificates for",
        "these names: keep the key safe. A key rollover keeps the record valid; a new account",
        "invalidates it.",
        "  BIND zone file  add the line above to the zone, bump its serial, `rndc reload`",
    ]
    for r in records:
        lines.append(
            "  nsupdate        printf 'update add "
            f"{r.fqdn} {TTL} TXT {quoted(r.value)}\\nsend\\n' | nsupdate -k /path/to/tsig.key"
        )
    for r in records:
        change = {
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": r.fqdn,
                        "Type": "TXT",
                        "TTL": TTL,
                        "ResourceRecords": [{"Value": quoted(r.value)}],
                    },
                }
            ]
        }
        lines.append(
            "  Route 53        aws route53 change-resource-record-sets --hosted-zone-id ZONE_ID "
            f"--change-batch '{json.dumps(change, separators=(',', ':'))}'"
            " (UPSERT replaces every TXT value at that name: add any other CA's value too)"
        )
    for r in records:
        lines.append(
            "  Cloudflare      DNS > Records > Add record: type TXT, name "
            f"{r.fqdn.rstrip('.')}, content {r.value}"
        )
    lines.append("Then check it at every authoritative nameserver: certdrop doctor")
    return "\n".join(lines)
