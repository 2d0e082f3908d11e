"""rfc2136 against BIND: the failures an operator meets, each with a clear, classified error."""

from __future__ import annotations

import base64
import os
import secrets

import pytest

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import build_provider
from cloud.dns01.providers.rfc2136 import parse_server
from cloud.errors import ConfigError, DnsProviderError
from lab.ports import free_port
from tests.cloud.issuing import txt_values


def provider(server: str, name: str, secret: str, algorithm: str = "hmac-sha256"):
    return build_provider(
        "rfc2136",
        {
            "server": parse_server(server),
            "tsig_name": name,
            "tsig_secret": secret,
            "tsig_algorithm": algorithm,
        },
    )


def record(zone: str = "example.test.") -> TxtRecord:
    return TxtRecord(zone, f"_acme-challenge.t{secrets.token_hex(5)}.{zone}", "value")


def test_a_wrong_tsig_secret_is_reported_as_a_refused_key(bind_auth, tsig_key):
    wrong = base64.b64encode(os.urandom(32)).decode()

    with pytest.raises(DnsProviderError) as caught:
        provider(bind_auth.address, tsig_key.name, wrong).add_txt(record())

    error = caught.value
    assert "refused the TSIG key" in str(error)
    assert "wrong secret" in str(error)
    assert error.transient is False
    assert error.provider == "rfc2136"
    assert wrong not in str(error) and tsig_key.secret not in str(error)


def test_an_unknown_tsig_key_name_is_reported_as_a_refused_key(bind_auth, tsig_key):
    with pytest.raises(DnsProviderError, match="refused the TSIG key not-a-key") as caught:
        provider(bind_auth.address, "not-a-key.", tsig_key.secret).add_txt(record())
    assert caught.value.transient is False


def test_a_wrong_tsig_algorithm_is_reported_as_a_refused_key(bind_auth, tsig_key):
    with pytest.raises(DnsProviderError, match="refused the TSIG key"):
        provider(bind_auth.address, tsig_key.name, tsig_key.secret, "hmac-sha512").add_txt(record())


def test_a_zone_the_server_does_not_serve_is_a_terminal_notauth(bind_auth, tsig_key):
    with pytest.raises(DnsProviderError, match="NOTAUTH") as caught:
        provider(bind_auth.address, tsig_key.name, tsig_key.secret).add_txt(record("nope.test."))
    assert caught.value.transient is False


def test_a_server_that_is_not_listening_is_a_transient_error(tsig_key):
    dead = f"127.0.0.1:{free_port()}"

    with pytest.raises(DnsProviderError, match="Connection refused") as caught:
        provider(dead, tsig_key.name, tsig_key.secret).remove_txt(record())
    assert caught.value.transient is True


def test_a_tsig_secret_that_is_not_base64_is_a_config_error_naming_the_key(tsig_key):
    # Only the built provider sees the secret: the config layer holds its reference.
    with pytest.raises(ConfigError) as caught:
        provider("127.0.0.1:53", tsig_key.name, "not base64!")

    assert [p.key for p in caught.value.problems] == ["rfc2136.tsig_secret"]


def test_the_server_port_defaults_to_53():
    assert parse_server("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_server("[::1]:5353") == ("::1", 5353)


def test_the_apex_and_wildcard_values_go_in_one_update_all_or_none(bind_auth, tsig_key):
    dns_api = provider(bind_auth.address, tsig_key.name, tsig_key.secret)
    name = f"_acme-challenge.t{secrets.token_hex(5)}.example.test."
    apex, wildcard = (TxtRecord("example.test.", name, value) for value in ("apex", "wildcard"))
    outside = TxtRecord("example.test.", "_acme-challenge.elsewhere.test.", "outside")

    with pytest.raises(DnsProviderError, match="NOTZONE"):
        dns_api.add_txts([apex, outside])
    refused = txt_values(bind_auth.address, name)
    dns_api.add_txts([apex, wildcard])
    added = txt_values(bind_auth.address, name)
    dns_api.remove_txts([apex, wildcard])

    assert refused == set()  # the server applied none of a batch it refused
    assert added == {"apex", "wildcard"}
    assert txt_values(bind_auth.address, name) == set()
