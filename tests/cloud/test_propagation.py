"""The propagation check against real BIND servers: discovery, polling, deadline and backoff."""

from __future__ import annotations

import errno
import itertools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from cloud.dns01 import propagation
from cloud.dns01.propagation import (
    DnsCheckSettings,
    Nameserver,
    authoritative_servers,
    read_txt,
    wait_for_records,
    wait_for_txt,
)
from cloud.dns01.providers.base import TxtRecord
from cloud.errors import DnsError, PropagationTimeout
from lab.bind import BindResolver, BindServer, TsigKey, Zone
from lab.ports import free_port

_NS1 = "ns1.example.test."
_NS2 = "ns2.example.test."


class _Clock:
    """A clock that moves only when slept on, recording every sleep."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self._on_sleep is not None:
            self._on_sleep(len(self.sleeps))


def _name(zone: str = "example.test.") -> str:
    """A challenge name no other test uses: the shared server keeps what each test writes."""
    return f"_acme-challenge.{uuid.uuid4().hex[:12]}.{zone}"


def _write(server: BindServer, key: TsigKey, zone: str, fqdn: str, *values: str) -> None:
    keyring = dns.tsigkeyring.from_text({key.name: key.secret})
    update = dns.update.UpdateMessage(zone, keyring=keyring, keyalgorithm=key.algorithm)
    for value in values:
        update.add(fqdn, 60, "TXT", f'"{value}"')
    response = dns.query.tcp(update, server.host, port=server.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR


def _settings(
    resolver: BindServer, mapping: dict[str, BindServer | str] | None = None
) -> DnsCheckSettings:
    """Discovery through `resolver`; each NS name in `mapping` asked at that server's address."""
    addresses = {
        name: (where if isinstance(where, str) else where.address,)
        for name, where in (mapping or {}).items()
    }
    return DnsCheckSettings(resolvers=(resolver.address,), nameserver_addresses=addresses)


def _both_on(server: BindServer) -> DnsCheckSettings:
    return _settings(server, {_NS1: server, _NS2: server})


def test_nameservers_are_found_through_the_resolver_and_mapped(
    bind_auth: BindServer, bind_stale: BindServer
) -> None:
    settings = _settings(bind_auth, {_NS1: bind_auth, _NS2: bind_stale})
    assert authoritative_servers("Example.Test", settings) == (
        Nameserver(_NS1, bind_auth.host, bind_auth.port),
        Nameserver(_NS2, bind_stale.host, bind_stale.port),
    )


def test_unmapped_nameservers_get_their_published_addresses(bind_auth: BindServer) -> None:
    servers = authoritative_servers("example.test.", _settings(bind_auth))
    assert servers == (Nameserver(_NS1, "127.0.0.1", 53), Nameserver(_NS2, "127.0.0.1", 53))


def test_a_zone_whose_nameservers_have_no_address_of_the_asked_family_is_refused(
    bind_auth: BindServer,
) -> None:
    settings = replace(_settings(bind_auth), ip_versions=(6,))
    with pytest.raises(DnsError, match="no authoritative nameserver has an address"):
        authoritative_servers("example.test.", settings)


def test_without_configured_resolvers_the_system_resolver_is_used(bind_auth: BindServer) -> None:
    # The suite's network guard refuses the system resolver, which proves which one was asked;
    # with `resolvers` set (every other test here) it is never touched.
    with pytest.raises(RuntimeError, match="system resolver"):
        authoritative_servers("example.test.", DnsCheckSettings())


def test_a_value_on_every_nameserver_is_confirmed_in_one_poll_without_sleeping(
    bind_auth: BindServer, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "apex-value", "wildcard-value")
    settings = _both_on(bind_auth)
    servers = authoritative_servers("example.test.", settings)
    clock = _Clock()
    result = wait_for_txt(
        fqdn, ["apex-value", "wildcard-value"], servers, settings, clock=clock, sleep=clock.sleep
    )
    assert result.fqdn == fqdn
    assert result.values == ("apex-value", "wildcard-value")
    assert result.servers == servers
    assert (result.polls, result.duration, clock.sleeps) == (1, 0.0, [])


def test_a_nameserver_that_never_gets_the_value_is_named_at_the_deadline(
    bind_auth: BindServer, bind_stale: BindServer, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "v1")
    settings = _settings(bind_auth, {_NS1: bind_auth, _NS2: bind_stale})
    clock = _Clock()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(
            fqdn,
            ["v1"],
            authoritative_servers("example.test.", settings),
            settings,
            clock=clock,
            sleep=clock.sleep,
        )
    error = caught.value
    assert (error.fqdn, error.value, error.waited) == (fqdn, "v1", settings.timeout)
    assert error.missing == (f"{_NS2} {bind_stale.address}: serves 0 of 1 values",)
    assert error.transient


def test_polls_back_off_exponentially_up_to_the_cap_and_end_at_the_deadline(
    bind_auth: BindServer, bind_stale: BindServer
) -> None:
    settings = replace(
        _settings(bind_stale, {_NS1: bind_stale, _NS2: bind_stale}),
        timeout=10.0,
        first_interval=0.25,
        max_interval=2.0,
    )
    clock = _Clock()
    with pytest.raises(PropagationTimeout):
        wait_for_txt(
            _name(),
            ["v"],
            authoritative_servers("example.test.", settings),
            settings,
            clock=clock,
            sleep=clock.sleep,
        )
    *full, last = clock.sleeps
    assert full[0] == settings.first_interval
    assert all(b == min(2 * a, settings.max_interval) for a, b in itertools.pairwise(full))
    assert full[-1] == settings.max_interval
    assert 0 < last <= settings.max_interval
    assert sum(clock.sleeps) == pytest.approx(settings.timeout)


def test_a_short_real_deadline_is_kept(bind_auth: BindServer, bind_stale: BindServer) -> None:
    settings = replace(
        _settings(bind_auth, {_NS1: bind_stale, _NS2: bind_stale}),
        timeout=0.5,
    )
    servers = authoritative_servers("example.test.", settings)
    began = time.monotonic()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(_name(), ["v"], servers, settings)
    elapsed = time.monotonic() - began
    assert settings.timeout <= caught.value.waited <= elapsed < settings.timeout + 0.5


def test_every_value_at_a_name_is_required(bind_auth: BindServer, tsig_key: TsigKey) -> None:
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "first")
    settings = replace(_both_on(bind_auth), timeout=1.0)
    servers = authoritative_servers("example.test.", settings)
    clock = _Clock()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(fqdn, ["first", "second"], servers, settings, clock=clock, sleep=clock.sleep)
    assert caught.value.value == "second"
    assert caught.value.missing == tuple(f"{s}: serves 1 of 2 values" for s in servers)

    _write(bind_auth, tsig_key, "example.test.", fqdn, "second")
    result = wait_for_txt(fqdn, ["first", "second"], servers, settings)
    assert result.servers == servers


def test_a_value_arriving_late_is_seen_and_confirmed_servers_are_not_asked_again(
    tmp_path: Path, bind_auth: BindServer, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    zone = Zone("example.test.", nameservers=("ns1", "ns2"))
    early = BindServer(tmp_path, [zone], tsig_key)

    def on_sleep(count: int) -> None:
        if count == 1:
            early.stop()  # confirmed in the first poll: asking it again would now fail
        if count == 3:
            _write(bind_auth, tsig_key, "example.test.", fqdn, "late")

    with early:
        _write(early, tsig_key, "example.test.", fqdn, "late")
        settings = _settings(bind_auth, {_NS1: early, _NS2: bind_auth})
        servers = authoritative_servers("example.test.", settings)
        clock = _Clock(on_sleep)
        result = wait_for_txt(fqdn, ["late"], servers, settings, clock=clock, sleep=clock.sleep)
    assert result.servers == servers
    assert result.polls == 4
    assert result.duration == pytest.approx(sum(clock.sleeps))


def test_truncated_udp_answers_are_retried_over_tcp(
    bind_auth: BindServer, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    values = [f"{i:02d}-" + "x" * 200 for i in range(30)]
    _write(bind_auth, tsig_key, "example.test.", fqdn, *values)
    probe = dns.message.make_query(fqdn, "TXT")
    probe.flags &= ~dns.flags.RD
    udp_only = dns.query.udp(probe, bind_auth.host, port=bind_auth.port, timeout=2)
    assert udp_only.flags & dns.flags.TC  # the premise: too big for one datagram

    settings = _both_on(bind_auth)
    result = wait_for_txt(fqdn, values, authoritative_servers("example.test.", settings), settings)
    assert result.polls == 1


def test_a_server_that_is_down_is_reported_missing_with_its_reason(
    bind_auth: BindServer, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "v")
    down = f"127.0.0.1:{free_port()}"
    settings = _settings(bind_auth, {_NS1: bind_auth, _NS2: down})
    clock = _Clock()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(
            fqdn,
            ["v"],
            authoritative_servers("example.test.", settings),
            settings,
            clock=clock,
            sleep=clock.sleep,
        )
    assert caught.value.missing == (f"{_NS2} {down}: unreachable: connection refused",)


def test_a_server_that_never_answers_is_reported_after_its_query_timeout(
    bind_auth: BindServer,
) -> None:
    # A bound socket that reads nothing: the datagram is accepted and never answered.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        settings = replace(_both_on(bind_auth), query_timeout=0.1, timeout=0.1)
        with pytest.raises(PropagationTimeout) as caught:
            wait_for_txt(_name(), ["v"], [Nameserver(_NS1, "127.0.0.1", port)], settings)
    assert caught.value.missing == (f"{_NS1} 127.0.0.1:{port}: no answer within 0.1s",)


def test_a_round_asks_every_server_at_once_from_the_calling_thread(
    bind_auth: BindServer, tsig_key: TsigKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A thread per server cost a fleet run more CPU than its queries (issue 16): a round now
    # sends every query, then reads the answers as they come, without starting a thread.
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "v")

    def no_thread(self: threading.Thread) -> None:
        raise AssertionError(f"the propagation check started a thread ({self.name})")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_b,
    ):
        silent_a.bind(("127.0.0.1", 0))
        silent_b.bind(("127.0.0.1", 0))
        servers = [
            Nameserver(_NS1, bind_auth.host, bind_auth.port),
            Nameserver(_NS2, "127.0.0.1", silent_a.getsockname()[1]),
            Nameserver("ns3.example.test.", "127.0.0.1", silent_b.getsockname()[1]),
        ]
        settings = replace(_both_on(bind_auth), query_timeout=0.2, timeout=0.2)
        with pytest.raises(PropagationTimeout) as caught:
            wait_for_txt(fqdn, ["v"], servers, settings)
        # Both silent servers got their query and were given the whole round to answer.
        assert all(silent.recv(512) for silent in (silent_a, silent_b))
    assert caught.value.missing == tuple(
        f"{server}: no answer within 0.2s" for server in servers[1:]
    )


def test_an_answer_without_the_authoritative_flag_does_not_count(
    bind_auth: BindServer, bind_resolver: BindResolver, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "v")
    settings = _both_on(bind_auth)
    recursive = Nameserver(_NS1, bind_resolver.host, bind_resolver.port)
    clock = _Clock()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(fqdn, ["v"], [recursive], settings, clock=clock, sleep=clock.sleep)
    assert caught.value.missing == (f"{recursive}: answer not authoritative (AA flag unset)",)


def test_one_server_is_enough_when_not_all_are_required(
    bind_auth: BindServer, bind_stale: BindServer, tsig_key: TsigKey
) -> None:
    fqdn = _name()
    _write(bind_auth, tsig_key, "example.test.", fqdn, "v")
    settings = replace(
        _settings(bind_auth, {_NS1: bind_auth, _NS2: bind_stale}),
        require_all=False,
    )
    servers = authoritative_servers("example.test.", settings)
    result = wait_for_txt(fqdn, ["v"], servers, settings)
    assert result.servers == (Nameserver(_NS1, bind_auth.host, bind_auth.port),)


@pytest.fixture
def sites(bind_auth: BindServer, tsig_key: TsigKey) -> Iterator[list[TxtRecord]]:
    """Apex and wildcard of one site, a site delegated into validation.test, one in other.test."""
    apex = _name("example.test.")
    delegated = f"{uuid.uuid4().hex[:12]}.validation.test."
    other = _name("other.test.")
    yield [
        TxtRecord("example.test.", apex, "apex"),
        TxtRecord("example.test.", apex, "wildcard"),
        TxtRecord("validation.test.", delegated, "delegated"),
        TxtRecord("other.test.", other, "other"),
    ]


def _everything_on(server: BindServer) -> DnsCheckSettings:
    zones_ns = (_NS1, _NS2, "ns1.validation.test.", "ns1.other.test.")
    return _settings(server, dict.fromkeys(zones_ns, server))


def test_records_of_several_sites_and_zones_are_checked_together(
    bind_auth: BindServer, tsig_key: TsigKey, sites: list[TxtRecord]
) -> None:
    for record in sites:
        _write(bind_auth, tsig_key, record.zone, record.fqdn, record.value)
    clock = _Clock()
    results = wait_for_records(sites, _everything_on(bind_auth), clock=clock, sleep=clock.sleep)
    assert [(r.fqdn, r.values) for r in results] == [
        (sites[0].fqdn, ("apex", "wildcard")),
        (sites[2].fqdn, ("delegated",)),
        (sites[3].fqdn, ("other",)),
    ]
    assert [len(r.servers) for r in results] == [2, 1, 1]
    assert clock.sleeps == []


def test_records_wait_names_the_one_name_still_missing(
    bind_auth: BindServer, tsig_key: TsigKey, sites: list[TxtRecord]
) -> None:
    for record in sites[:3]:
        _write(bind_auth, tsig_key, record.zone, record.fqdn, record.value)
    clock = _Clock()
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_records(sites, _everything_on(bind_auth), clock=clock, sleep=clock.sleep)
    assert (caught.value.fqdn, caught.value.value) == (sites[3].fqdn, "other")
    assert caught.value.missing == (f"ns1.other.test. {bind_auth.address}: serves 0 of 1 values",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resolvers": ()}, "resolvers"),
        ({"resolvers": "127.0.0.1:53"}, "resolvers"),
        ({"resolvers": ("dns.example:53",)}, "IP address"),
        ({"nameserver_addresses": {"ns1.example.test": "127.0.0.1:53"}}, "nameserver_addresses"),
        ({"nameserver_addresses": {"ns1.example.test": ("127.0.0.1:99999",)}}, "port"),
        ({"timeout": 0}, "timeout"),
        ({"query_timeout": -1}, "query_timeout"),
        ({"first_interval": 3.0, "max_interval": 2.0}, "first_interval"),
        ({"ip_versions": (5,)}, "ip_versions"),
        ({"max_cname_hops": 0}, "max_cname_hops"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DnsCheckSettings(**changes)


def test_nameserver_names_in_settings_are_normalised() -> None:
    settings = DnsCheckSettings(nameserver_addresses={"NS1.Example.Test": ["127.0.0.1:5300"]})
    assert dict(settings.nameserver_addresses) == {_NS1: ("127.0.0.1:5300",)}


def test_no_records_need_no_check() -> None:
    assert wait_for_records([], DnsCheckSettings(resolvers=("127.0.0.1",))) == ()


def test_a_check_needs_values_and_servers() -> None:
    server = Nameserver(_NS1, "127.0.0.1", 53)
    with pytest.raises(ValueError, match="at least one value"):
        wait_for_txt(_name(), [], [server], DnsCheckSettings(resolvers=("127.0.0.1",)))
    with pytest.raises(ValueError, match="at least one value"):
        wait_for_txt(_name(), ["v"], [], DnsCheckSettings(resolvers=("127.0.0.1",)))


# --- nameservers that are partly broken or partly out of reach ---------------------------------

_OTHER_V6 = "2001:db8::53"  # documentation prefix: never reached, the send fails first


@pytest.fixture(scope="module")
def odd_bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """Zones whose nameservers are dual-stack, partly unresolvable or all unresolvable."""
    zones = [
        # ns1 has an IPv4 and an IPv6 address, as every Route 53 / Cloudflare nameserver has.
        Zone("dualstack.test.", (f"ns1 AAAA {_OTHER_V6}", '_acme-challenge TXT "ready-value"')),
        # Two nameservers; the second one's name lives in a zone nobody serves (lame/broken).
        Zone(
            "halfbroken.test.",
            ('_acme-challenge TXT "ready-value"',),
            nameservers=("ns1", "ns.unserved.invalid."),
        ),
        Zone("allbroken.test.", nameservers=("ns.unserved.invalid.",)),
    ]
    with BindServer(tmp_path_factory.mktemp("bind-odd"), zones, tsig=None) as server:
        yield server


@pytest.fixture
def ipv4_only_host(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """This host has no IPv6 route: every IPv6 connect fails at once. Returns those tried."""
    real_connect = socket.socket.connect
    tried: list[object] = []

    def connect(sock: socket.socket, address: object) -> None:
        if sock.family == socket.AF_INET6:
            tried.append(address)
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return tried


def _dualstack(odd_bind: BindServer, settings: DnsCheckSettings) -> tuple[Nameserver, ...]:
    found = authoritative_servers("dualstack.test.", settings)
    assert {s.address for s in found} == {"127.0.0.1", _OTHER_V6}
    # The published port is 53; our BIND listens elsewhere: point the IPv4 address at it.
    return tuple(replace(s, port=odd_bind.port) if s.address == "127.0.0.1" else s for s in found)


def test_an_ipv6_address_this_host_cannot_route_to_does_not_time_out_every_check(
    odd_bind: BindServer, ipv4_only_host: list[object]
) -> None:
    """Expected: on a host without an IPv6 route (the issuer's Lambda, which infra/ puts in no
    VPC) a zone whose nameservers publish AAAA records (Route 53's and Cloudflare's all do) is
    still confirmed once the nameserver serves the value over IPv4 - lego asks each NS *name*,
    and Go dials the address family it can route. propagation.py's own comment said ip_versions
    must then be (4,), but `[dns]` in the configuration accepted only resolvers, nameservers and
    propagation_timeout (cloud/config/__init__.py `dns`), so no operator could set it.

    Instead: the IPv6 address fails with ENETUNREACH on every poll, require_all keeps waiting for
    it, and every dns-01 issuance ends in dns.propagation_timeout after the whole deadline.

    Found by an independent review of the dns-01 layer; failed before the fix."""
    settings = DnsCheckSettings(resolvers=(odd_bind.address,), timeout=1.0, query_timeout=0.5)
    servers = _dualstack(odd_bind, settings)
    result = wait_for_txt("_acme-challenge.dualstack.test.", ["ready-value"], servers, settings)
    assert result.values == ("ready-value",)


def test_an_unroutable_address_is_warned_about_once_and_a_lagging_one_still_counts_as_not_serving(
    odd_bind: BindServer, ipv4_only_host: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    settings = DnsCheckSettings(resolvers=(odd_bind.address,), timeout=5.0, query_timeout=0.5)
    servers = _dualstack(odd_bind, settings)
    clock = _Clock()
    with caplog.at_level(logging.WARNING), pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(
            "_acme-challenge.dualstack.test.",
            ["not-there-yet"],
            servers,
            settings,
            clock=clock,
            sleep=clock.sleep,
        )
    assert len(clock.sleeps) > 2  # polled again and again: the IPv6 address only the first time
    assert len(ipv4_only_host) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"[{_OTHER_V6}]:53" in warnings[0], warnings
    v4, v6 = sorted(servers, key=lambda s: s.address)
    assert set(caught.value.missing) == {
        f"{v4}: serves 0 of 1 values",
        f"{v6}: unreachable: network is unreachable",
    }


def test_a_nameserver_is_confirmed_when_one_of_its_addresses_serves_the_value(
    odd_bind: BindServer,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        servers = (
            Nameserver("ns1.dualstack.test.", odd_bind.host, odd_bind.port),
            Nameserver("ns1.dualstack.test.", "127.0.0.1", silent.getsockname()[1]),
        )
        settings = DnsCheckSettings(resolvers=(odd_bind.address,), timeout=1.0, query_timeout=0.2)
        result = wait_for_txt("_acme-challenge.dualstack.test.", ["ready-value"], servers, settings)
    assert (result.servers, result.polls) == (servers[:1], 1)


def test_one_nameserver_whose_name_cannot_be_looked_up_does_not_abort_the_check(
    odd_bind: BindServer,
) -> None:
    """Expected: a nameserver whose address cannot be looked up is left out with a warning, the
    way `authoritative_servers` already treats one whose name does not exist ("Nobody can reach
    a nameserver without an address, the CA's resolver included"), and the zone's other
    nameservers are checked. A validating CA's resolver fails over to the next NS (RFC 1035
    section 7.2); one broken out-of-zone NS name must not block issuance.

    Instead: the A lookup of `ns.unserved.invalid.` fails (REFUSED / SERVFAIL) and the whole
    discovery raises DnsError, so the check never asks ns1, which serves the value.

    Found by an independent review of the dns-01 layer; failed before the fix."""
    settings = DnsCheckSettings(
        resolvers=(odd_bind.address,),
        nameserver_addresses={"ns1.halfbroken.test.": (odd_bind.address,)},
        timeout=1.0,
        query_timeout=0.5,
    )
    servers = authoritative_servers("halfbroken.test.", settings)
    assert servers == (Nameserver("ns1.halfbroken.test.", "127.0.0.1", odd_bind.port),)


def test_a_nameserver_whose_address_lookup_timed_out_is_not_left_out(
    odd_bind: BindServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup that timed out says nothing of the nameserver: left out, the check could confirm
    without a server the CA may reach and find lagging (a failed validation, counted by the
    CA). It stays a transient error, tried again. Only a failed answer (SERVFAIL, REFUSED) leaves
    a name out (found by a review of the change above; failed before this fix)."""
    real_lookup = propagation.lookup

    def lookup(resolver: object, name: str, rdtype: str) -> object:
        if name == "ns.unserved.invalid.":
            try:
                raise dns.exception.Timeout()
            except dns.exception.Timeout as exc:
                raise DnsError(name, f"{rdtype} lookup failed: {exc}", transient=True) from exc
        return real_lookup(resolver, name, rdtype)  # type: ignore[arg-type]

    monkeypatch.setattr(propagation, "lookup", lookup)
    settings = DnsCheckSettings(
        resolvers=(odd_bind.address,),
        nameserver_addresses={"ns1.halfbroken.test.": (odd_bind.address,)},
        query_timeout=0.5,
    )
    with pytest.raises(DnsError) as caught:
        authoritative_servers("halfbroken.test.", settings)
    assert caught.value.transient


def test_a_zone_none_of_whose_nameservers_can_be_looked_up_is_a_clear_error(
    odd_bind: BindServer,
) -> None:
    settings = DnsCheckSettings(resolvers=(odd_bind.address,), query_timeout=0.5)
    with pytest.raises(DnsError, match="no authoritative nameserver has an address") as caught:
        authoritative_servers("allbroken.test.", settings)
    assert "ns.unserved.invalid.: A lookup failed" in str(caught.value)
    assert caught.value.transient


def test_a_lame_nameserver_answering_refused_is_reported_as_refused(
    odd_bind: BindServer,
) -> None:
    """Expected: the reason a server is not counted names what it said, so the timeout tells an
    operator which nameserver is lame (the bar: a clear error). `_read_answer` has a branch
    for exactly this ("answered REFUSED"/"answered SERVFAIL").

    Instead: REFUSED and SERVFAIL answers carry no AA flag (RFC 1035 4.1.1: AA is only meaningful
    in authoritative answers; BIND, PowerDNS and resolvers leave it clear on errors), and the AA
    test comes first, so a lame server is reported as "answer not authoritative (AA flag
    unset)" - the rcode branch is unreachable in practice.

    Found by an independent review of the dns-01 layer; failed before the fix."""
    lame = Nameserver("ns1.example.test.", odd_bind.host, odd_bind.port)  # no example.test
    answer = read_txt("_acme-challenge.example.test.", lame, timeout=2.0)
    assert answer.values == ()
    assert answer.problem is not None and "REFUSED" in answer.problem, answer.problem
