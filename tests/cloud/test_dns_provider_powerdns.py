"""powerdns against a real PowerDNS 4.7: errors, the read-modify-write race it must survive, and
the records of others it must write back exactly as stored."""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator

import pytest
import requests

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.powerdns import PowerDnsProvider
from cloud.dns01.providers.registry import build_provider
from cloud.errors import CertdropError, DnsProviderError
from lab.ports import free_port
from lab.powerdns import PowerDns
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

    def _replace(self, record, *args):
        super()._replace(record, *args)
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


# --- read-modify-write must keep every record that is not ours as it was -------------------------


def _pdns_session(server: PowerDns) -> tuple[requests.Session, str]:
    session = requests.Session()
    session.headers["X-API-Key"] = server.api_key
    return session, f"{server.api_url}/api/v1/servers/localhost/zones/{ZONE}"


def _pdns_set(server: PowerDns, fqdn: str, records: list[dict], ttl: int = 300) -> None:
    session, url = _pdns_session(server)
    rrset = {"name": fqdn, "type": "TXT", "ttl": ttl, "changetype": "REPLACE", "records": records}
    response = session.patch(url, json={"rrsets": [rrset]}, timeout=5)
    assert response.status_code == 204, response.text


def _pdns_rrset(server: PowerDns, fqdn: str) -> dict:
    session, url = _pdns_session(server)
    zone = session.get(url, timeout=5).json()  # unfiltered: disabled records are listed too
    found = [s for s in zone["rrsets"] if s["name"] == fqdn and s["type"] == "TXT"]
    return found[0] if found else {"records": []}


def _pdns_records(server: PowerDns, fqdn: str) -> list[dict]:
    return _pdns_rrset(server, fqdn)["records"]


def test_powerdns_add_keeps_a_disabled_record_that_is_not_ours(
    powerdns_harness, powerdns_server: PowerDns
) -> None:
    """Expected (base.py: `add_txt` never touches other values at the same name): a TXT record
    another party keeps disabled at _acme-challenge (PowerDNS API: a record's "disabled" flag)
    is still there, still disabled, after we add and remove our value.

    Instead: `_read` asks with rrset_name/rrset_type, which PowerDNS 4.7 answers without the
    disabled records; the REPLACE that adds ours then writes the RRset without it, so the
    disabled record is deleted (and had it been listed, it would be re-enabled: every record is
    written back with "disabled": False).

    Found by an independent review of the dns-01 layer; failed before the fix."""
    fqdn = record().fqdn
    _pdns_set(
        powerdns_server,
        fqdn,
        [
            {"content": '"other-client"', "disabled": False},
            {"content": '"parked"', "disabled": True},
        ],
    )
    mine = TxtRecord(ZONE, fqdn, secrets.token_urlsafe(32))
    powerdns_harness.provider.add_txt(mine)
    powerdns_harness.provider.remove_txt(mine)
    assert {"content": '"parked"', "disabled": True} in _pdns_records(powerdns_server, fqdn)


def test_powerdns_add_keeps_another_value_written_with_escapes_byte_for_byte(
    powerdns_harness, powerdns_server: PowerDns
) -> None:
    """Expected: another TXT value at the name is served unchanged after we add ours. RFC 1035
    section 5.1: in presentation form `\\DDD` is the byte with decimal value DDD; PowerDNS keeps
    and returns content in that form (a non-ASCII value reads back as `"caf\\195\\169"`).

    Instead: `_txt.unquote` reads `\\1` as a quoted "1", so the value is written back as the
    text "caf195169": the other party's record is rewritten (wrong bytes served).

    Found by an independent review of the dns-01 layer; failed before the fix."""
    fqdn = record().fqdn
    _pdns_set(powerdns_server, fqdn, [{"content": '"caf\\195\\169"', "disabled": False}])
    assert dns_txt(powerdns_server.address, powerdns_server.port, fqdn) == ["café"]
    mine = TxtRecord(ZONE, fqdn, secrets.token_urlsafe(32))
    powerdns_harness.provider.add_txt(mine)
    assert sorted(dns_txt(powerdns_server.address, powerdns_server.port, fqdn)) == sorted(
        ["café", mine.value]
    )


def test_powerdns_add_and_remove_keep_the_ttl_of_a_set_held_with_others(
    powerdns_harness, powerdns_server: PowerDns
) -> None:
    fqdn = record().fqdn
    _pdns_set(powerdns_server, fqdn, [{"content": '"other-client"', "disabled": False}], ttl=3600)
    mine = TxtRecord(ZONE, fqdn, secrets.token_urlsafe(32))
    powerdns_harness.provider.add_txt(mine)
    assert _pdns_rrset(powerdns_server, fqdn)["ttl"] == 3600
    powerdns_harness.provider.remove_txt(mine)
    assert _pdns_rrset(powerdns_server, fqdn)["ttl"] == 3600
    assert _pdns_records(powerdns_server, fqdn) == [
        {"content": '"other-client"', "disabled": False}
    ]


def test_our_value_found_disabled_is_enabled_by_add(
    powerdns_harness, powerdns_server: PowerDns
) -> None:
    mine = record()
    _pdns_set(powerdns_server, mine.fqdn, [{"content": f'"{mine.value}"', "disabled": True}])
    powerdns_harness.provider.add_txt(mine)
    assert served(powerdns_server, mine.fqdn) == [mine.value]


# --- a clear error with a stable code ------------------------------------------------------------


class _HtmlOk(http.server.BaseHTTPRequestHandler):
    """What a login/captive proxy or a wrong port in front of the API answers: 200 and HTML."""

    def _reply(self) -> None:
        body = b"<html><body>Please sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = _reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_ok_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlOk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_powerdns_api_answering_200_with_html_is_a_provider_error(html_ok_url: str) -> None:
    """Expected (base.py: failures raise DnsProviderError; the bar: any DNS failure is a clear
    error with a stable code): an API that answers 200 with something that is not the JSON of a
    zone is reported as dns.provider_failed naming the PowerDNS API.

    Instead: `_read` calls `response.json()` unguarded and a raw requests JSONDecodeError escapes
    the provider: no code, and `Dns01Solver.cleanup` / `_remove_one` (which catch only
    CertdropError) stop at the first value, and order.py's `_cleanup` lets it replace the error
    that led there.

    Found by an independent review of the dns-01 layer; failed before the fix."""
    provider = PowerDnsProvider(html_ok_url, "key", timeout=5)
    with pytest.raises(CertdropError) as caught:
        provider.add_txt(record())
    assert isinstance(caught.value, DnsProviderError)
    assert caught.value.code == "dns.provider_failed"
    assert "PowerDNS API" in str(caught.value) and "text/html" in str(caught.value)
