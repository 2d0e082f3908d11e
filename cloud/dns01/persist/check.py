"""Reading a site's dns-persist-01 records at every authoritative nameserver, read-only.

Each name a certificate covers is validated by the record `_validation-persist.<name>` (a
wildcard and its apex share it). The record is located as dns-01's is (`names.locate`: CNAMEs
followed, the zone found by its SOA), the zone's nameservers found once
(`propagation.authoritative_servers`) and each asked directly (`propagation.read_txt`); each must
serve a value that authorizes this issuer (`record.judge`). Nothing is written and nothing is
waited for: the domain's owner creates the record once, so what is not there now is an error
naming the record, what was found and what was expected — before the CA is asked to validate,
so a missing record costs no failed authorization.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cloud.dns01.names import PERSIST_LABEL, locate
from cloud.dns01.persist.record import Condition, Expectation, Verdict, judge
from cloud.dns01.propagation import DnsCheckSettings, authoritative_servers, read_txt
from cloud.errors import (
    DnsError,
    PersistRecordExpired,
    PersistRecordInvalid,
    PersistRecordMismatch,
    PersistRecordMissing,
)
from nas_agent.ids import WILDCARD_PREFIX


@dataclass(frozen=True)
class ServerReading:
    """What one authoritative server serves at the record's name."""

    server: str  # "ns1.example.test. 127.0.0.1:53"
    values: tuple[str, ...]
    verdict: Verdict | None  # None when the server gave no usable answer
    problem: str | None = None  # why not: unreachable, not authoritative, ...

    @property
    def ok(self) -> bool:
        return self.verdict is not None and self.verdict.ok


@dataclass(frozen=True)
class RecordCheck:
    """One record read at every authoritative nameserver of its zone."""

    domain: str  # "example.test": the name it validates (and its wildcard)
    fqdn: str  # where it was read: "_validation-persist.example.test." or a CNAME's target
    expected: Expectation
    readings: tuple[ServerReading, ...]
    checked_at: datetime
    require_all: bool = True  # every server must authorize (else one is enough)

    @property
    def ok(self) -> bool:
        served = [reading.ok for reading in self.readings]
        return all(served) if self.require_all else any(served)

    def error(self) -> DnsError | None:
        """The first failing server's problem as an error, None when the check passed."""
        if self.ok:
            return None
        reading = next(r for r in self.readings if not r.ok)
        if reading.verdict is None:
            return DnsError(
                self.fqdn,
                f"dns-persist-01 record not readable at {reading.server}: {reading.problem}",
                transient=True,
            )
        return _error(self.fqdn, reading, reading.verdict, self.expected.value())


def expectations(
    names: Iterable[str], issuer_domains: tuple[str, ...], account_uri: str
) -> dict[str, Expectation]:
    """One expectation per record the names need: "example.test" and "*.example.test" share
    one, which then needs policy=wildcard."""
    wildcard: dict[str, bool] = {}
    for name in names:
        base = name.removeprefix(WILDCARD_PREFIX)
        wildcard[base] = wildcard.get(base, False) or name.startswith(WILDCARD_PREFIX)
    return {
        base: Expectation(issuer_domains, account_uri, needs) for base, needs in wildcard.items()
    }


def check_record(
    domain: str, expected: Expectation, settings: DnsCheckSettings, now: datetime
) -> RecordCheck:
    """Reads the record validating `domain` at every authoritative nameserver of its zone.

    Raises what locating it raises (`ZoneNotFoundError`, `CnameChainError`, a transient
    `DnsError`); a server that does not answer is a failed reading, not an exception.
    """
    where = locate(domain, settings, PERSIST_LABEL)
    readings = []
    for server in authoritative_servers(where.zone, settings):
        answer = read_txt(where.fqdn, server, settings.query_timeout)
        verdict = None if answer.problem else judge(answer.values, expected, now)
        readings.append(ServerReading(str(server), answer.values, verdict, answer.problem))
    return RecordCheck(domain, where.fqdn, expected, tuple(readings), now, settings.require_all)


def check_names(
    names: Iterable[str],
    issuer_domains: tuple[str, ...],
    account_uri: str,
    settings: DnsCheckSettings,
    now: datetime,
) -> tuple[RecordCheck, ...]:
    """Every record a certificate for `names` needs, each read at every nameserver."""
    return tuple(
        check_record(domain, expected, settings, now)
        for domain, expected in expectations(names, issuer_domains, account_uri).items()
    )


def _error(fqdn: str, reading: ServerReading, verdict: Verdict, expected: str) -> DnsError:
    args = (fqdn, reading.server, reading.values, expected, verdict.detail)
    if verdict.condition is Condition.MISSING:
        return PersistRecordMissing(*args)
    if verdict.condition in (Condition.ACCOUNT, Condition.POLICY):
        return PersistRecordMismatch(*args, field=verdict.condition.value)
    if verdict.condition is Condition.EXPIRED:
        assert verdict.value is not None and verdict.value.persist_until is not None
        return PersistRecordExpired(*args, persist_until=verdict.value.persist_until)
    return PersistRecordInvalid(*args)
