"""lexicon through Lexicon's own powerdns provider against the real PowerDNS server."""

from __future__ import annotations

import secrets

import pytest
from lexicon._private.providers import powerdns as lexicon_powerdns

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import build_provider
from cloud.errors import DnsProviderError
from cloud.secrets import SecretRef
from tests.cloud.conftest import ZONE, dns_txt


def record(value: str | None = None) -> TxtRecord:
    fqdn = f"_acme-challenge.t{secrets.token_hex(5)}.{ZONE}"
    return TxtRecord(ZONE, fqdn, value or secrets.token_urlsafe(32))


@pytest.fixture
def lexicon_env(monkeypatch, tmp_path, powerdns_server) -> None:
    """The API key where the settings refer to it; tldextract's cache out of $HOME."""
    monkeypatch.setenv("CERTDROP_TEST_PDNS_KEY", powerdns_server.api_key)
    monkeypatch.setenv("TLDEXTRACT_CACHE_PATH", str(tmp_path))


def lexicon_powerdns_provider(server, key_variable: str = "CERTDROP_TEST_PDNS_KEY"):
    return build_provider(
        "lexicon",
        {
            "provider": "powerdns",
            "options": {"pdns_server": server.api_url},
            "secret_options": {"auth_token": SecretRef("env", key_variable)},
        },
    )


def _replacing_create(self, rtype, name, content):
    """Lexicon's powerdns create, changed to replace the record set as some providers do."""
    rrset = {
        "name": self._fqdn_name(name),
        "type": rtype,
        "ttl": 60,
        "changetype": "REPLACE",
        "records": [{"content": self._clean_content(rtype, content), "disabled": False}],
    }
    self._patch("/zones/" + self._ensure_dot(self.domain), data={"rrsets": [rrset]})
    self._zone_data = None
    return True


def test_a_provider_that_replaces_instead_of_adding_is_caught_and_the_value_put_back(
    lexicon_harness, powerdns_server, monkeypatch
):
    # No Lexicon provider that replaces runs on this machine (those are hosted services), so the
    # real powerdns one is made to replace: the real Lexicon client and server stay in the loop.
    apex, wildcard = record(), record()
    wildcard = TxtRecord(ZONE, apex.fqdn, wildcard.value)
    monkeypatch.setattr(lexicon_powerdns.Provider, "create_record", _replacing_create)
    lexicon_harness.provider.add_txt(apex)

    with pytest.raises(DnsProviderError) as caught:
        lexicon_harness.provider.add_txt(wildcard)

    message = str(caught.value)
    assert "Lexicon's powerdns provider replaced the TXT record" in message
    assert "cannot keep two TXT values at one name" in message
    assert "it was put back" in message
    assert caught.value.transient is False
    assert dns_txt(powerdns_server.address, powerdns_server.port, apex.fqdn) == [apex.value]


def test_a_wrong_auth_token_is_a_terminal_error_without_the_token(
    lexicon_env, powerdns_server, monkeypatch
):
    wrong = secrets.token_urlsafe(24)
    monkeypatch.setenv("CERTDROP_TEST_WRONG_KEY", wrong)
    provider = lexicon_powerdns_provider(powerdns_server, "CERTDROP_TEST_WRONG_KEY")

    with pytest.raises(DnsProviderError, match=r"refused the credentials \(HTTP 401\)") as caught:
        provider.add_txt(record())

    assert caught.value.transient is False
    assert wrong not in str(caught.value)


def test_an_unknown_lexicon_provider_is_a_terminal_error():
    provider = build_provider("lexicon", {"provider": "no-such-dns-host"})
    with pytest.raises(DnsProviderError, match="not supported by Lexicon") as caught:
        provider.add_txt(record())
    assert caught.value.transient is False


def test_lexicon_never_downloads_the_public_suffix_list(lexicon_env, powerdns_server, monkeypatch):
    # With an empty cache (lexicon_env gives it a fresh directory) tldextract would fetch
    # publicsuffix.org, which the suite's network guard turns into an error: the provider must
    # keep tldextract on its bundled snapshot.
    monkeypatch.delenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", raising=False)
    provider = lexicon_powerdns_provider(powerdns_server)
    mine = record()

    provider.add_txt(mine)

    assert dns_txt(powerdns_server.address, powerdns_server.port, mine.fqdn) == [mine.value]
