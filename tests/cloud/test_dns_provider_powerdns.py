"""powerdns against a real PowerDNS 4.7: errors, and the read-modify-write race it must survive."""

from __future__ import annotations

import secrets

import pytest
import requests

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.powerdns import PowerDnsProvider
from cloud.dns01.providers.registry import build_provider
from cloud.errors import DnsProviderError
from lab.ports import free_port
from tests.cloud.conftest import ZONE, dns_txt


def record(zone: str = ZONE, value: str | None = None) -> TxtRecord:
    fqdn = f"_acme-challenge.t{secrets.token_hex(5)}.{zone}"
    return TxtRecord(zone, fqdn, value or secrets.token_urlsafe(32))


def served(server, fqdn: str) -> list[str]:
    return dns_txt(server.address, server.port, fqdn)


def test_a_wrong_api_key_is_a_terminal_error_without_the_key(powerdns_server):
    wrong = secrets.token_urlsafe(24)
    provider = build_provider("powerdns", {"api_url": powerdns_server.api_url, "api_key": wrong})

    with pytest.raises(DnsProviderError, match="refused the API key") as caught:
        provider.add_txt(record())

    assert caught.value.transient is False
    assert wrong not in str(caught.value)


def test_a_zone_the_server_does_not_hold_is_a_terminal_error(powerdns_harness):
    with pytest.raises(DnsProviderError, match=r"zone nope\.test\. not found") as caught:
        powerdns_harness.provider.add_txt(record("nope.test."))
    assert caught.value.transient is False


def test_an_api_that_is_not_listening_is_a_transient_error():
    provider = build_provider(
        "powerdns", {"api_url": f"http://127.0.0.1:{free_port()}", "api_key": "k"}
    )
    with pytest.raises(DnsProviderError, match="cannot reach") as caught:
        provider.remove_txt(record())
    assert caught.value.transient is True


def test_api_url_may_be_given_with_the_api_path(powerdns_server):
    provider = build_provider(
        "powerdns",
        {"api_url": powerdns_server.api_url + "/api/v1/", "api_key": powerdns_server.api_key},
    )
    mine = record()

    provider.add_txt(mine)

    assert served(powerdns_server, mine.fqdn) == [mine.value]


def test_a_value_with_quotes_and_spaces_round_trips(powerdns_harness, powerdns_server):
    mine = record(value='a "quoted" value \\ with spaces')

    powerdns_harness.provider.add_txt(mine)
    assert served(powerdns_server, mine.fqdn) == [mine.value]
    powerdns_harness.provider.remove_txt(mine)
    assert served(powerdns_server, mine.fqdn) == []


class _RacingProvider(PowerDnsProvider):
    """After its first write, another writer replaces the RRset with only its own value, as a
    concurrent read-modify-write that read before ours would."""

    def __init__(self, server, rival: str) -> None:
        super().__init__(server.api_url, server.api_key)
        self._server = server
        self._rival = rival
        self.writes = 0

    def _replace(self, record, values):
        super()._replace(record, values)
        self.writes += 1
        if self.writes == 1:
            rrset = {
                "name": record.fqdn,
                "type": "TXT",
                "ttl": 60,
                "changetype": "REPLACE",
                "records": [{"content": f'"{self._rival}"', "disabled": False}],
            }
            response = requests.patch(
                f"{self._server.api_url}/api/v1/servers/localhost/zones/{record.zone}",
                json={"rrsets": [rrset]},
                headers={"X-API-Key": self._server.api_key},
                timeout=5,
            )
            response.raise_for_status()


def test_a_value_dropped_by_a_concurrent_writer_is_merged_back(powerdns_server):
    mine = record()
    provider = _RacingProvider(powerdns_server, rival="rival-value")

    provider.add_txt(mine)

    assert provider.writes == 2
    assert sorted(served(powerdns_server, mine.fqdn)) == sorted([mine.value, "rival-value"])
