"""Issuing example.test + *.example.test from a real Pebble, with real BIND and PowerDNS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from cloud.acme.certificate_keys import KeyType
from cloud.errors import (
    AcmeError,
    DnsProviderError,
    PropagationTimeout,
    ValidationFailed,
)
from cloud.pipeline import parts
from lab.issuer_config import bind_config as standard_config
from lab.issuer_config import rfc2136_provider, write_config
from lab.pebble import Pebble
from tests.cloud.issuing import assert_issued, order_certificate, txt_values

NAMES = ("example.test", "*.example.test")
CHALLENGE = "_acme-challenge.example.test."


@pytest.fixture
def bind_config(tmp_path, pebble, bind_auth):
    """Writes a config for the shared Pebble + BIND; extra keyword arguments override."""

    def make(*, pebble_=None, **overrides):
        return standard_config(tmp_path, pebble_ or pebble, bind_auth, **overrides)

    return make


@pytest.mark.parametrize("key_type", list(KeyType))
def test_issues_apex_and_wildcard_through_rfc2136(bind_config, pebble, bind_auth, key_type):
    config = bind_config(site=f'domain = "example.test"\nkey_type = "{key_type.value}"')

    cert = order_certificate(config, "example")

    assert_issued(cert, pebble, NAMES, key_type)
    assert txt_values(bind_auth.address, CHALLENGE) == set()


def test_the_preferred_chain_is_picked_by_its_top_issuer(tmp_path, bind_config, bind_resolver):
    with Pebble(tmp_path / "pebble", bind_resolver.address, alternate_roots=1) as pebble:
        roots = [x509.load_pem_x509_certificate(pebble.roots_pem(i).encode()) for i in (0, 1)]
        names = [r.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for r in roots]
        for wanted in names:
            config = bind_config(pebble_=pebble, ca_extra=f'preferred_chain = "{wanted}"')

            cert = order_certificate(config, "example")

            assert cert.issuer_cn == wanted
            assert_issued(cert, pebble, NAMES, KeyType.EC_P256)


def test_issues_through_a_cname_into_a_separate_validation_zone(bind_config, pebble, bind_auth):
    config = bind_config(site='domain = "delegated.example.test"')

    cert = order_certificate(config, "example")

    assert_issued(
        cert, pebble, ("delegated.example.test", "*.delegated.example.test"), KeyType.EC_P256
    )
    # The values went to the CNAME's target, and are gone from there too.
    assert txt_values(bind_auth.address, "delegated.validation.test.") == set()
    assert txt_values(bind_auth.address, "_acme-challenge.delegated.example.test.") == set()


def test_issues_with_external_account_binding(
    bind_config, pebble_eab, bind_auth, tmp_path, monkeypatch
):
    monkeypatch.setenv("TEST_EAB_HMAC", pebble_eab.eab_hmac_key)
    config = bind_config(
        pebble_=pebble_eab,
        ca_extra=f'eab_kid = "{pebble_eab.eab_kid}"\neab_hmac_key = "env:TEST_EAB_HMAC"',
    )

    cert = order_certificate(config, "example")

    assert_issued(cert, pebble_eab, NAMES, KeyType.EC_P256)
    assert txt_values(bind_auth.address, CHALLENGE) == set()


def test_a_ca_requiring_eab_is_refused_clearly_without_it(bind_config, pebble_eab):
    config = bind_config(pebble_=pebble_eab)

    with pytest.raises(AcmeError) as caught:
        order_certificate(config, "example")

    assert caught.value.problem == "externalAccountRequired"


def test_the_account_key_is_created_once_and_reused(bind_config, tmp_path):
    config = bind_config()
    order_certificate(config, "example")
    keys = sorted(p.name for p in (tmp_path / "keys").iterdir())
    account = (tmp_path / "keys" / keys[0]).read_bytes()

    order_certificate(config, "example")

    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == keys
    assert (tmp_path / "keys" / keys[0]).read_bytes() == account
    assert (tmp_path / "keys" / keys[0]).stat().st_mode & 0o777 == 0o600


def test_issues_through_powerdns(tmp_path, powerdns_server, monkeypatch):
    pdns = powerdns_server
    dns_address = f"{pdns.address}:{pdns.port}"
    monkeypatch.setenv("PDNS_KEY", pdns.api_key)
    with Pebble(tmp_path / "pebble", dns_address) as pebble:
        config = write_config(
            tmp_path,
            pebble=pebble,
            resolver=dns_address,
            nameservers={"ns1.example.test": dns_address},
            provider=f'type = "powerdns"\napi_url = "{pdns.api_url}"\napi_key = "env:PDNS_KEY"',
        )

        cert = order_certificate(config, "example")

        assert_issued(cert, pebble, NAMES, KeyType.EC_P256)
    assert txt_values(dns_address, CHALLENGE) == set()


# --- failures: each ends with a clear error and no TXT value left behind -------------------


def test_a_wrong_tsig_key_is_a_clear_terminal_error(bind_config, bind_auth, tsig_key, tmp_path):
    (tmp_path / "bad").write_text("AAAA" + tsig_key.secret[4:])
    provider = rfc2136_provider(bind_auth.address, tsig_key, tmp_path / "tsig").replace(
        f"file:{tmp_path / 'tsig'}", f"file:{tmp_path / 'bad'}"
    )
    config = bind_config(provider=provider)

    with pytest.raises(DnsProviderError) as caught:
        order_certificate(config, "example")

    assert "TSIG" in str(caught.value)
    assert not caught.value.transient
    assert txt_values(bind_auth.address, CHALLENGE) == set()


def test_an_unreachable_dns_api_is_a_transient_error(bind_config, bind_auth):
    config = bind_config(
        provider='type = "powerdns"\napi_url = "http://127.0.0.1:9"\napi_key = "env:HOME"'
    )

    with pytest.raises(DnsProviderError) as caught:
        order_certificate(config, "example")

    assert caught.value.transient
    assert txt_values(bind_auth.address, CHALLENGE) == set()


def test_a_value_never_served_by_one_nameserver_names_that_server(
    bind_config, bind_auth, bind_stale
):
    config = bind_config(
        nameservers={
            "ns1.example.test": bind_auth.address,
            "ns2.example.test": bind_stale.address,
        },
        propagation_timeout=1,
    )

    with pytest.raises(PropagationTimeout) as caught:
        order_certificate(config, "example")

    assert any("ns2.example.test" in server for server in caught.value.missing)
    assert not any("ns1.example.test" in server for server in caught.value.missing)
    assert txt_values(bind_auth.address, CHALLENGE) == set()


def test_the_ca_rejecting_validation_is_reported_with_its_problem(
    tmp_path, bind_config, bind_auth, bind_stale
):
    # Pebble looks at a nameserver that never receives the value (split horizon).
    with Pebble(tmp_path / "pebble", bind_stale.address) as blind:
        config = bind_config(pebble_=blind)

        with pytest.raises(ValidationFailed) as caught:
            order_certificate(config, "example")

    assert caught.value.problem == "validation"
    assert caught.value.failures[0][1] == "unauthorized"
    assert txt_values(bind_auth.address, CHALLENGE) == set()


def test_issuance_succeeds_when_the_ca_rejects_half_the_nonces(
    tmp_path, bind_config, bind_resolver
):
    with Pebble(tmp_path / "pebble", bind_resolver.address, nonce_reject_percent=50) as flaky:
        config = bind_config(pebble_=flaky)

        cert = order_certificate(config, "example")

        assert_issued(cert, flaky, NAMES, KeyType.EC_P256)


def test_a_crashed_runs_values_are_removed_by_the_next_run(bind_config, bind_auth):
    from cloud.dns01.providers.base import TxtRecord
    from cloud.dns01.solver import ChallengeJournal

    config = bind_config()
    store = parts.store(config)
    stale = TxtRecord("example.test.", CHALLENGE, "left-by-a-crashed-run______________________")
    provider = parts.provider(config, "dns")
    ChallengeJournal(store, "example").record("dns", [("example.test", stale)], datetime.now(UTC))
    provider.add_txt(stale)
    assert txt_values(bind_auth.address, CHALLENGE) == {
        "left-by-a-crashed-run______________________"
    }

    order_certificate(config, "example", object_store=store)

    assert txt_values(bind_auth.address, CHALLENGE) == set()
    assert ChallengeJournal(store, "example").entries() == ()
