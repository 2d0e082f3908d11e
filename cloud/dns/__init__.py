"""DNS-01 challenge plumbing.

The core (`cloud.dns.names`, `cloud.propagation`) works out where a challenge's TXT record must
live — following CNAME delegation to the zone that really holds it — and checks that every
authoritative nameserver serves it. A provider only adds one TXT value and removes one TXT value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


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


@dataclass(frozen=True)
class Setting:
    """One key of a provider's settings table in the configuration."""

    key: str
    help: str
    required: bool = True
    secret: bool = False  # given by reference ("env:NAME", "file:/path"), never inline
    kind: type = str  # str, int, float, bool or list
    default: Any = None


@dataclass(frozen=True)
class ProviderInfo:
    """What the config validator, the README table and the factory need to know of a provider."""

    name: str
    summary: str
    settings: tuple[Setting, ...]
    permissions: str
    # Called with the validated settings, secrets already resolved to their values.
    build: Callable[[Mapping[str, Any]], DnsProvider] = field(compare=False)
