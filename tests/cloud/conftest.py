"""The DNS providers' backends, one per provider, each paired with a way to read what it holds.

A `Harness` is a built provider, the zone it writes into, and `held(fqdn)`: the TXT values the
backend really holds at that name, read without going through the provider (BIND and PowerDNS over
DNS with RD off, Route53 and Cloudflare through their APIs, the exec script's JSON file). It is a
list, not a set, so a duplicate would show.

Servers are started once per session on free loopback ports; tests use unique names under
`example.test.` so they can share them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from cloud.dns import DnsProvider
from cloud.dns.registry import build_provider
from tests.services.powerdns import PowerDns

ZONE = "example.test."


@dataclass(frozen=True)
class Harness:
    provider: DnsProvider
    zone: str
    held: Callable[[str], list[str]]


def dns_txt(host: str, port: int, fqdn: str) -> list[str]:
    """The TXT values an authoritative server answers for `fqdn`, asked over TCP with RD off."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(fqdn, "TXT")
    query.flags &= ~dns.flags.RD
    response = dns.query.tcp(query, host, port=port, timeout=3)
    return [
        b"".join(rdata.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    ]


# --- rfc2136 against BIND (bind_auth and tsig_key come from tests/conftest.py) ---------------


@pytest.fixture
def rfc2136_harness(bind_auth, tsig_key) -> Harness:
    provider = build_provider(
        "rfc2136",
        {
            "server": bind_auth.address,
            "tsig_name": tsig_key.name,
            "tsig_secret": tsig_key.secret,
            "tsig_algorithm": tsig_key.algorithm,
        },
    )
    return Harness(provider, ZONE, lambda fqdn: dns_txt(bind_auth.host, bind_auth.port, fqdn))


# --- PowerDNS ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def powerdns_server() -> Iterator[PowerDns]:
    with PowerDns() as server:
        yield server


@pytest.fixture
def powerdns_harness(powerdns_server: PowerDns) -> Harness:
    provider = build_provider(
        "powerdns", {"api_url": powerdns_server.api_url, "api_key": powerdns_server.api_key}
    )
    return Harness(
        provider,
        ZONE,
        lambda fqdn: dns_txt(powerdns_server.address, powerdns_server.port, fqdn),
    )
