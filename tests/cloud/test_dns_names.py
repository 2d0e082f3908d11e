"""Where a challenge's TXT record lives: names, CNAME delegation and the enclosing zone."""

from __future__ import annotations

from collections.abc import Iterator

import dns.name
import dns.resolver
import pytest

from cloud.dns01.names import (
    TxtLocation,
    build_resolver,
    challenge_name,
    find_zone,
    follow_cnames,
    locate,
    normalize,
    parse_address,
)
from cloud.dns01.propagation import DnsCheckSettings
from cloud.errors import CnameChainError, DnsError, ZoneNotFoundError
from lab.bind import BindServer, Zone
from lab.ports import free_port

_CHAIN_LENGTH = 9  # CNAMEs from _acme-challenge.long.chain.test. to end.chain.test.


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    """A server with CNAME loops, a long chain, and a zone nested inside another."""
    hops = [f"hop{i}.chain.test." for i in range(1, _CHAIN_LENGTH)]
    long_chain = [
        f"{owner} CNAME {target}"
        for owner, target in zip(
            ["_acme-challenge.long.chain.test.", *hops], [*hops, "end.chain.test."], strict=True
        )
    ]
    chain = Zone(
        "chain.test.",
        (
            "_acme-challenge.self CNAME _acme-challenge.self.chain.test.",
            "_acme-challenge.ping CNAME pong.chain.test.",
            "pong CNAME _acme-challenge.ping.chain.test.",
            "_acme-challenge.txtonly TXT unrelated",
            "_acme-challenge.cross CNAME cross.deep.walk.test.",
            *long_chain,
        ),
    )
    walk = Zone("walk.test.", ("a.b TXT in-the-parent",))
    deep = Zone("deep.walk.test.", ("a.b TXT in-the-child",))
    server = BindServer(tmp_path_factory.mktemp("bind-chains"), [chain, walk, deep], tsig=None)
    with server:
        yield server


def _resolver(server: BindServer) -> dns.resolver.Resolver:
    return build_resolver((server.address,), timeout=1.0)


@pytest.mark.parametrize(
    "domain", ["example.test", "*.example.test", "EXAMPLE.Test.", " example.test"]
)
def test_apex_and_wildcard_share_one_challenge_name(domain: str) -> None:
    assert challenge_name(domain) == "_acme-challenge.example.test."


def test_unicode_domain_gets_the_idna_challenge_name() -> None:
    assert challenge_name("*.Bücher.example.test") == "_acme-challenge.xn--bcher-kva.example.test."


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "*",
        "a.*.example.test",
        "*.*.example.test",
        "under_score.test",
        "-x.test",
        "*.a..test",
    ],
)
def test_challenge_name_refuses_what_is_no_host_name(domain: str) -> None:
    with pytest.raises(DnsError) as caught:
        challenge_name(domain)
    assert not caught.value.transient
    assert caught.value.fqdn == domain


def test_challenge_name_refuses_a_name_too_long_for_the_prefix() -> None:
    domain = ".".join(["a" * 60] * 4)  # 243 octets: fits alone, not after "_acme-challenge."
    normalize(domain)
    with pytest.raises(DnsError, match="255"):
        challenge_name(domain)


def test_normalize_makes_names_absolute_and_lower_case() -> None:
    assert normalize("NS1.Example.TEST") == "ns1.example.test."
    assert normalize("ns1.example.test.") == "ns1.example.test."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_address_reads_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("localhost:53", "must be an IP address"),
        ("ns1.example.test", "must be an IP address"),
        ("127.0.0.1:0", "port must be a number"),
        ("127.0.0.1:x", "port must be a number"),
        ("[::1", "IPv6 server as"),
        ("[::1]x", "IPv6 server as"),
    ],
)
def test_parse_address_refuses_names_and_bad_ports(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_address(text)


def test_a_name_without_cname_is_its_own_end(chains: BindServer) -> None:
    resolver = _resolver(chains)
    # No name at all (NXDOMAIN), and a name holding other records (NODATA).
    for name in ("_acme-challenge.absent.chain.test.", "_acme-challenge.txtonly.chain.test."):
        assert follow_cnames(name, resolver) == name


def test_cname_is_followed_into_another_zone(chains: BindServer) -> None:
    found = follow_cnames("_acme-challenge.cross.Chain.Test", _resolver(chains))
    assert found == "cross.deep.walk.test."


@pytest.mark.parametrize(
    "name", ["_acme-challenge.self.chain.test.", "_acme-challenge.ping.chain.test."]
)
def test_cname_loop_is_refused(chains: BindServer, name: str) -> None:
    with pytest.raises(CnameChainError, match="loop") as caught:
        follow_cnames(name, _resolver(chains))
    assert caught.value.fqdn == name
    assert not caught.value.transient


def test_cname_chain_longer_than_allowed_is_refused(chains: BindServer) -> None:
    resolver = _resolver(chains)
    with pytest.raises(CnameChainError, match=f"more than {_CHAIN_LENGTH - 1} CNAMEs"):
        follow_cnames("_acme-challenge.long.chain.test.", resolver, max_hops=_CHAIN_LENGTH - 1)
    found = follow_cnames("_acme-challenge.long.chain.test.", resolver, max_hops=_CHAIN_LENGTH)
    assert found == "end.chain.test."


def test_zone_is_the_closest_enclosing_soa(chains: BindServer) -> None:
    resolver = _resolver(chains)
    assert find_zone("_acme-challenge.x.a.b.walk.test.", resolver) == "walk.test."
    assert find_zone("_acme-challenge.x.a.b.deep.walk.test.", resolver) == "deep.walk.test."
    assert find_zone("deep.walk.test.", resolver) == "deep.walk.test."


def test_a_cname_owner_is_no_zone_apex(chains: BindServer) -> None:
    assert find_zone("_acme-challenge.cross.chain.test.", _resolver(chains)) == "chain.test."


class _Counting:
    """The real resolver, recording each question; with `strip`, negative answers come back
    without their authority section, as some forwarders return them."""

    def __init__(self, resolver: dns.resolver.Resolver, *, strip: bool = False) -> None:
        self.resolver = resolver
        self.strip = strip
        self.asked: list[str] = []

    def resolve(self, qname: dns.name.Name, rdtype: str, **kwargs: bool) -> dns.resolver.Answer:
        self.asked.append(qname.to_text())
        try:
            answer = self.resolver.resolve(qname, rdtype, **kwargs)
        except dns.resolver.NXDOMAIN:
            if self.strip:
                raise dns.resolver.NXDOMAIN from None
            raise
        if self.strip:
            answer.response.authority = []
        return answer


def test_a_negative_answer_names_the_zone_in_one_question(chains: BindServer) -> None:
    resolver = _Counting(_resolver(chains))
    found = find_zone("_acme-challenge.x.a.b.deep.walk.test.", resolver)  # type: ignore[arg-type]
    assert found == "deep.walk.test."
    assert resolver.asked == ["_acme-challenge.x.a.b.deep.walk.test."]


def test_without_the_authority_section_the_zone_is_found_by_walking_up(
    chains: BindServer,
) -> None:
    resolver = _Counting(_resolver(chains), strip=True)
    found = find_zone("_acme-challenge.x.a.b.deep.walk.test.", resolver)  # type: ignore[arg-type]
    assert found == "deep.walk.test."
    assert resolver.asked == [
        "_acme-challenge.x.a.b.deep.walk.test.",
        "x.a.b.deep.walk.test.",
        "a.b.deep.walk.test.",
        "b.deep.walk.test.",
        "deep.walk.test.",
    ]


class _NothingExists:
    """A resolver for which no name exists; anything but the expected question fails."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def resolve(
        self, qname: dns.name.Name, rdtype: str, *, search: bool, raise_on_no_answer: bool
    ) -> dns.resolver.Answer:
        assert rdtype == "SOA" and search is False and raise_on_no_answer is False
        self.asked.append(qname.to_text())
        raise dns.resolver.NXDOMAIN


def test_zone_not_found_when_no_name_up_to_the_root_has_an_soa() -> None:
    resolver = _NothingExists()
    with pytest.raises(ZoneNotFoundError) as caught:
        find_zone("_acme-challenge.a.b.test", resolver)  # type: ignore[arg-type]
    assert caught.value.fqdn == "_acme-challenge.a.b.test."
    assert resolver.asked == ["_acme-challenge.a.b.test.", "a.b.test.", "b.test.", "test."]


def test_locate_follows_delegation_to_the_zone_holding_the_target(chains: BindServer) -> None:
    settings = DnsCheckSettings(resolvers=(chains.address,))
    assert locate("*.cross.chain.test", settings) == TxtLocation(
        fqdn="cross.deep.walk.test.", zone="deep.walk.test."
    )
    assert locate("x.a.b.deep.walk.test", settings) == TxtLocation(
        fqdn="_acme-challenge.x.a.b.deep.walk.test.", zone="deep.walk.test."
    )


def test_locate_uses_the_configured_hop_limit(chains: BindServer) -> None:
    settings = DnsCheckSettings(resolvers=(chains.address,), max_cname_hops=_CHAIN_LENGTH - 1)
    with pytest.raises(CnameChainError):
        locate("long.chain.test", settings)


def test_a_silent_resolver_is_a_transient_error_not_a_fallback() -> None:
    settings = DnsCheckSettings(resolvers=(f"127.0.0.1:{free_port()}",), query_timeout=0.2)
    with pytest.raises(DnsError) as caught:
        locate("example.test", settings)
    assert caught.value.transient
    assert caught.value.fqdn == "_acme-challenge.example.test."


def test_a_name_outside_the_resolvers_zones_is_a_transient_error(chains: BindServer) -> None:
    # An authoritative-only server refuses names it does not serve; that must not look like
    # "no such zone" (terminal) but like a lookup that failed.
    with pytest.raises(DnsError) as caught:
        find_zone("_acme-challenge.elsewhere.example", _resolver(chains))
    assert caught.value.transient
    assert not isinstance(caught.value, ZoneNotFoundError)


def test_delegated_challenge_of_the_shared_server_lands_in_the_validation_zone(
    bind_auth: BindServer,
) -> None:
    settings = DnsCheckSettings(resolvers=(bind_auth.address,))
    assert locate("*.delegated.example.test", settings) == TxtLocation(
        fqdn="delegated.validation.test.", zone="validation.test."
    )
    assert locate("example.test", settings) == TxtLocation(
        fqdn="_acme-challenge.example.test.", zone="example.test."
    )
