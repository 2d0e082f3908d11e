"""The test services start, behave as the other tests assume, and the network guard holds."""

from __future__ import annotations

import socket
import uuid

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest
import requests
from cryptography import x509

from lab.bind import BindServer, TsigKey
from tests import netguard


def _update(key: TsigKey, zone: str) -> dns.update.UpdateMessage:
    keyring = dns.tsigkeyring.from_text({key.name: key.secret})
    return dns.update.UpdateMessage(zone, keyring=keyring, keyalgorithm=key.algorithm)


def _send(server: BindServer, message: dns.message.Message) -> dns.message.Message:
    return dns.query.tcp(message, server.host, port=server.port, timeout=3)


def _txt_values(server_host: str, port: int, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "TXT"), server_host, port=port, timeout=3)
    return {
        b"".join(rdata.strings).decode()
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    }


def _add_txt(server: BindServer, zone: str, name: str, value: str) -> None:
    update = _update(server.tsig, zone)
    update.add(name, 60, "TXT", f'"{value}"')
    assert _send(server, update).rcode() == dns.rcode.NOERROR


def test_bind_answers_soa_authoritatively_for_every_zone(bind_auth):
    for zone in bind_auth.zones:
        query = dns.message.make_query(zone.name, "SOA")
        reply = dns.query.udp(query, bind_auth.host, port=bind_auth.port, timeout=3)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        assert reply.answer[0].rdtype == dns.rdatatype.SOA


def test_two_txt_values_added_by_tsig_update_coexist(bind_auth):
    name = f"_acme-challenge.{uuid.uuid4().hex}.example.test."
    _add_txt(bind_auth, "example.test.", name, "first")
    _add_txt(bind_auth, "example.test.", name, "second")
    assert _txt_values(bind_auth.host, bind_auth.port, name) == {"first", "second"}


def test_update_signed_with_another_key_changes_nothing(bind_auth):
    name = f"{uuid.uuid4().hex}.example.test."
    update = _update(TsigKey.generate(bind_auth.tsig.name), "example.test.")
    update.add(name, 60, "TXT", '"forged"')
    with pytest.raises(dns.tsig.PeerError):
        _send(bind_auth, update)
    assert _txt_values(bind_auth.host, bind_auth.port, name) == set()


def test_update_policy_refuses_records_other_than_txt(bind_auth):
    update = _update(bind_auth.tsig, "other.test.")
    update.add(f"{uuid.uuid4().hex}.other.test.", 60, "A", "127.0.0.2")
    assert _send(bind_auth, update).rcode() == dns.rcode.REFUSED


def test_resolver_follows_the_cname_from_example_test_into_validation_test(
    bind_auth, bind_resolver
):
    value = uuid.uuid4().hex
    _add_txt(bind_auth, "validation.test.", "delegated.validation.test.", value)
    try:
        seen = _txt_values(
            bind_resolver.host, bind_resolver.port, "_acme-challenge.delegated.example.test."
        )
        assert value in seen
    finally:
        update = _update(bind_auth.tsig, "validation.test.")
        update.delete("delegated.validation.test.", "TXT", f'"{value}"')
        _send(bind_auth, update)


def test_resolver_answers_servfail_for_names_outside_the_test_zones(bind_resolver):
    query = dns.message.make_query("www.example.com.", "A")
    reply = dns.query.udp(query, bind_resolver.host, port=bind_resolver.port, timeout=3)
    assert reply.rcode() == dns.rcode.SERVFAIL


def test_stale_nameserver_serves_the_zone_but_never_sees_the_update(bind_auth, bind_stale):
    name = f"_acme-challenge.{uuid.uuid4().hex}.example.test."
    _add_txt(bind_auth, "example.test.", name, "fresh")
    assert _txt_values(bind_auth.host, bind_auth.port, name) == {"fresh"}
    assert _txt_values(bind_stale.host, bind_stale.port, name) == set()
    soa = dns.message.make_query("example.test.", "SOA")
    assert dns.query.udp(soa, bind_stale.host, port=bind_stale.port, timeout=3).answer


def test_pebble_directory_is_served_over_tls_signed_by_the_bundle(pebble):
    directory = requests.get(pebble.directory_url, verify=str(pebble.ca_bundle), timeout=5).json()
    assert directory["newOrder"].startswith(f"https://127.0.0.1:{pebble.port}/")
    assert not directory.get("meta", {}).get("externalAccountRequired", False)


def test_pebble_root_is_a_ca_that_issued_the_intermediate(pebble):
    root = x509.load_pem_x509_certificate(pebble.roots_pem().encode())
    intermediate = x509.load_pem_x509_certificate(pebble.intermediates_pem().encode())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert intermediate.issuer == root.subject


def test_pebble_eab_directory_requires_an_account_binding(pebble_eab):
    directory = requests.get(
        pebble_eab.directory_url, verify=str(pebble_eab.ca_bundle), timeout=5
    ).json()
    assert directory["meta"]["externalAccountRequired"] is True
    assert pebble_eab.eab_kid and len(pebble_eab.eab_hmac_key) == 64


def test_guard_is_active_for_the_whole_session():
    assert netguard.is_installed()


def test_guard_refuses_udp_connect_to_test_net_before_the_kernel_sees_it():
    # A UDP connect sends no packet even if the guard failed; an unbound local address
    # afterwards shows the kernel never processed the connect at all.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(RuntimeError, match=r"192\.0\.2\.1:53 outside loopback"):
            sock.connect(("192.0.2.1", 53))
        assert sock.getsockname() == ("0.0.0.0", 0)


def test_guard_refuses_before_calling_the_real_socket(monkeypatch):
    # The real calls are swapped for tripwires first, so even a broken guard sends nothing.
    reached = []

    def tripwire(*args):
        reached.append(args)

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, tripwire)
    monkeypatch.setattr(socket, "getaddrinfo", tripwire)
    uninstall = netguard.install()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            for attempt in (
                lambda: sock.connect(("192.0.2.1", 443)),
                lambda: sock.connect_ex(("192.0.2.1", 443)),
                lambda: sock.sendto(b"x", ("192.0.2.1", 53)),
                lambda: socket.getaddrinfo("acme-v02.api.letsencrypt.org", 443),
            ):
                with pytest.raises(RuntimeError, match=r"192\.0\.2\.1|system resolver"):
                    attempt()
    finally:
        uninstall()
    assert reached == []


def test_guard_lets_loopback_traffic_through():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(3)
        sender.sendto(b"ping", receiver.getsockname())
        assert receiver.recv(16) == b"ping"


def test_dnspython_system_resolver_is_unusable():
    with pytest.raises(netguard.SystemResolverUsed):
        dns.resolver.Resolver()  # reads /etc/resolv.conf
    with pytest.raises(netguard.SystemResolverUsed):
        dns.resolver.get_default_resolver().nameservers  # noqa: B018
