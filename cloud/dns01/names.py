"""Where a challenge's TXT record lives: its name, CNAME delegation, and the zone holding it.

dns-01 reads `_acme-challenge.<domain>` (`CHALLENGE_LABEL`), dns-persist-01
`_validation-persist.<domain>` (`PERSIST_LABEL`); a wildcard and its apex share the name.

Every lookup goes through a resolver built from explicit settings (`build_resolver`); only when
no resolver addresses are configured does it read the system's configuration. Errors from
dnspython are translated here, once, into `cloud.errors` types carrying the name asked about.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from cloud.errors import CnameChainError, DnsError, ZoneNotFoundError
from nas_agent.ids import WILDCARD_PREFIX, is_hostname, is_wildcard

if TYPE_CHECKING:
    from cloud.dns01.propagation import DnsCheckSettings

_log = logging.getLogger(__name__)

CHALLENGE_LABEL = "_acme-challenge"
PERSIST_LABEL = "_validation-persist"


@dataclass(frozen=True)
class TxtLocation:
    """Where the TXT record for one domain must be written: `fqdn` inside `zone`."""

    fqdn: str  # "_acme-challenge.example.test." or the CNAME target it delegates to
    zone: str  # "example.test."


def normalize(name: str) -> str:
    """The absolute, lower-case ASCII form of a name ("Bücher.Test" -> "xn--bcher-kva.test.")."""
    return _to_name(name).to_text()


def challenge_name(domain: str, label: str = CHALLENGE_LABEL) -> str:
    """The `label` name validating `domain` (`_acme-challenge` unless given); "*.example.test"
    and "example.test" share it.

    Raises `DnsError` (terminal) when `domain` is not a host name, possibly with one leading "*".
    """
    base = domain.strip()
    if is_wildcard(base):
        base = base[len(WILDCARD_PREFIX) :]
    host = _to_name(base, subject=domain)
    if not is_hostname(host.to_text(omit_final_dot=True)):
        raise DnsError(
            domain,
            "not a host name (letters, digits and inner hyphens per label; "
            "a wildcard only as the leftmost label)",
        )
    return _to_name(f"{label}.{host.to_text()}").to_text()


def parse_address(text: str) -> tuple[str, int]:
    """Splits "127.0.0.1:5353", "[::1]:5353", "127.0.0.1" or "::1" into (address, port).

    Raises `ValueError` unless the host is an IP address: nothing here resolves a server's name.
    """
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: write an IPv6 server as [address]:port")
        port = rest[1:] or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"{text!r}: the host must be an IP address, e.g. 127.0.0.1:5353") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return address, int(port)


def build_resolver(addresses: tuple[str, ...] | None, timeout: float) -> dns.resolver.Resolver:
    """A stub resolver asking exactly `addresses` ("host:port"), or the system's when None."""
    if addresses is None:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_address(text)) for text in addresses
        ]
    resolver.timeout = timeout
    # One lookup may try each server once more after a lost datagram.
    resolver.lifetime = 2 * timeout
    return resolver


def lookup(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> dns.resolver.Answer | None:
    """The answer to one question, None when the name does not exist (NXDOMAIN).

    An existing name without records of `rdtype` gives an answer whose `rrset` is None.
    Timeouts, SERVFAIL and unreachable servers raise `DnsError(transient=True)`.
    """
    try:
        return resolver.resolve(
            dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
        )
    except dns.resolver.NXDOMAIN:
        return None
    except dns.exception.DNSException as exc:
        raise DnsError(name, f"{rdtype} lookup failed: {exc}", transient=True) from exc


def follow_cnames(name: str, resolver: dns.resolver.Resolver, max_hops: int = 8) -> str:
    """The end of the CNAME chain starting at `name` (`name` itself when it is no CNAME).

    A target that does not exist yet ends the chain: that is where the TXT record will be written.
    Raises `CnameChainError` on a loop or a chain of more than `max_hops` CNAMEs.
    """
    current = normalize(name)
    seen = [current]
    while (target := _cname_target(current, resolver)) is not None:
        if target in seen:
            raise CnameChainError(seen[0], f"CNAME loop: {' -> '.join([*seen, target])}")
        if len(seen) > max_hops:
            raise CnameChainError(
                seen[0], f"more than {max_hops} CNAMEs: {' -> '.join(seen)} -> ..."
            )
        _log.debug("CNAME %s -> %s", current, target, extra={"fqdn": current})
        seen.append(target)
        current = target
    return current


def find_zone(name: str, resolver: dns.resolver.Resolver) -> str:
    """The zone holding `name`: the closest enclosing name that owns an SOA record.

    A negative answer (the name does not exist, or has no SOA) carries the SOA of the zone that
    gave it (RFC 2308, section 3), which is that zone: one question instead of one per label.
    Where a resolver strips it, the walk goes on up. Raises `ZoneNotFoundError` when no name up
    to the root owns one.
    """
    candidate = _to_name(name)
    while candidate != dns.name.root:
        apex, negative = _ask_soa(resolver, candidate)
        if apex:
            return candidate.to_text()
        if negative is not None:
            return negative.to_text()
        candidate = candidate.parent()
    raise ZoneNotFoundError(normalize(name), "no enclosing zone (no SOA found up to the root)")


def _ask_soa(
    resolver: dns.resolver.Resolver, name: dns.name.Name
) -> tuple[bool, dns.name.Name | None]:
    """Whether `name` owns an SOA, and else the zone a negative answer names in its authority
    section (None when it names none)."""
    try:
        answer = resolver.resolve(name, "SOA", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        # A resolver's NXDOMAIN carries the answers it got; one raised by hand may carry none.
        responses = exc.kwargs.get("responses") or {}
        return False, _authority_zone(responses.get(name), name)
    except dns.exception.DNSException as exc:
        raise DnsError(name.to_text(), f"SOA lookup failed: {exc}", transient=True) from exc
    # Only an SOA owned by the name itself marks an apex: a CNAME at the name makes a
    # recursive resolver answer with the SOA of wherever the CNAME points.
    response = answer.response
    if response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.SOA):
        return True, None
    return False, None if response.answer else _authority_zone(response, name)


def _authority_zone(
    response: dns.message.Message | None, name: dns.name.Name
) -> dns.name.Name | None:
    """The owner of the SOA in a negative answer's authority section, if it encloses `name`."""
    for rrset in response.authority if response is not None else ():
        if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
            return rrset.name.canonicalize()
    return None


def locate(domain: str, settings: DnsCheckSettings, label: str = CHALLENGE_LABEL) -> TxtLocation:
    """Where the TXT record validating `domain` goes (or is read), after CNAME delegation."""
    resolver = build_resolver(settings.resolvers, settings.query_timeout)
    start = challenge_name(domain, label)
    fqdn = follow_cnames(start, resolver, settings.max_cname_hops)
    location = TxtLocation(fqdn=fqdn, zone=find_zone(fqdn, resolver))
    _log.debug(
        "challenge for %s goes to %s in zone %s",
        domain,
        location.fqdn,
        location.zone,
        extra={"fqdn": location.fqdn},
    )
    return location


def _cname_target(name: str, resolver: dns.resolver.Resolver) -> str | None:
    answer = lookup(resolver, name, "CNAME")
    if answer is None:
        return None
    rrset = answer.response.get_rrset(
        answer.response.answer, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.CNAME
    )
    if not rrset:
        return None
    return rrset[0].target.canonicalize().to_text()


def _to_name(text: str, subject: str | None = None) -> dns.name.Name:
    """The canonical name for `text`; errors name `subject`, the input as the caller knows it."""
    subject = text if subject is None else subject
    stripped = text.strip()
    if not stripped:
        raise DnsError(subject, "empty name")
    try:
        name = dns.name.from_text(stripped)
    except dns.exception.DNSException as exc:
        raise DnsError(subject, f"not a valid DNS name: {exc}") from exc
    return name.canonicalize()
