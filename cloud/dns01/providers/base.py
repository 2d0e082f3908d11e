"""The DNS provider contract: a TXT record, the provider protocol, and how providers declare their
settings.

The core (`cloud.dns01.names`, `cloud.dns01.propagation`) works out where a challenge's TXT record
must live — following CNAME delegation to the zone that really holds it — and checks that every
authoritative nameserver serves it. A provider only adds one TXT value and removes one TXT value;
one whose API can do several in one request may say so (`BatchingDnsProvider`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class TxtRecord:
    """One TXT value at one name. Names are absolute, lower-case, with the trailing dot."""

    zone: str  # "example.test."
    fqdn: str  # "_acme-challenge.example.test."
    value: str  # the dns-01 key-authorization digest
    ttl: int = 60


class DnsProvider(Protocol):
    """Adds and removes single TXT values.

    Both calls are idempotent and keep no state between calls: `add_txt` never touches other
    values at the same name (the apex and the wildcard share one name with two values);
    `remove_txt` removes only this value and treats "already gone" as success. Failures raise
    `cloud.errors.DnsProviderError`, with `transient=True` when a later retry may succeed.
    """

    def add_txt(self, record: TxtRecord) -> None: ...

    def remove_txt(self, record: TxtRecord) -> None: ...


@runtime_checkable
class BatchingDnsProvider(DnsProvider, Protocol):
    """A provider whose API changes several values of one zone in one request, all or none
    (an RFC 2136 UPDATE carries any number): the apex's and the wildcard's values then cost one
    round trip instead of two. Same rules as single values, for records all in one zone; a
    failure leaves none of them changed."""

    def add_txts(self, records: Sequence[TxtRecord]) -> None: ...

    def remove_txts(self, records: Sequence[TxtRecord]) -> None: ...


class InvalidSetting(ValueError):
    """What a provider's `Setting.parse` or `ProviderInfo.check` raises: what is wrong and what to
    write instead. Only the config layer calls those, and turns this into a ConfigProblem."""

    def __init__(self, cause: str, fix: str, *, key: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        self.key = key  # for `ProviderInfo.check`: the setting the problem is reported at


@dataclass(frozen=True)
class Setting:
    """One key of a provider's settings table in the configuration.

    `cloud.config` checks each written value once and hands the provider typed values:
    `kind` says what TOML may hold (str, int, float, bool, list, dict or a tuple of these); a
    float is a number of seconds (finite, above 0, at most a day) and arrives as a float even
    when written as an integer, a list as a tuple, a dict as a
    read-only table of strings (numbers and booleans become text). `parse` then turns the value
    into the provider's own type, or raises InvalidSetting. A secret (and each value of a secret
    table) is written as a reference and stays a SecretRef until `build_provider` resolves it.
    """

    key: str
    help: str
    required: bool = True
    secret: bool = False  # given by reference ("env:NAME", "file:/path"), never inline
    kind: type | tuple[type, ...] = str
    default: Any = None  # filled in by `build_provider` when the setting is left out
    parse: Callable[[Any], Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ProviderInfo:
    """What the config validator, the README table and the factory need to know of a provider."""

    name: str
    summary: str
    settings: tuple[Setting, ...]
    permissions: str
    # Called with the settings as `cloud.config` checked them, defaults filled in, secrets
    # resolved to their values.
    build: Callable[[Mapping[str, Any]], DnsProvider] = field(compare=False)
    # Rules across settings, run by the config layer once each setting passed on its own:
    # raises InvalidSetting naming the key.
    check: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)
