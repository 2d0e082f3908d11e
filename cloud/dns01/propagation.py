# Over 300 lines: discovery and polling share one query layer (UDP/TCP, AA flag, addresses).
"""Waits until every authoritative nameserver of a zone serves a challenge's TXT values.

The servers are found once (`authoritative_servers`), then asked directly (`read_txt`: recursion
off, the AA flag required, UDP with TCP on truncation) until each serves every value, with
exponential backoff and one deadline. The first poll is immediate and nameservers already
confirmed are not asked again, so a record that is already in place costs one round of queries.
A wait that lasts says every few seconds (INFO) which servers still lack which values.

A nameserver is confirmed by name, as lego's check does: one of its addresses serving every value
is enough. An address this host has no route to (IPv6 on a Lambda outside an IPv6 VPC: the send
fails at once, `_UNROUTABLE`) is warned about once and not asked again in that check; an address
that answers late or not at all still counts as not serving.
`read_txt` alone is also the read-only check of a dns-persist-01 record.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from cloud.dns01.names import build_resolver, lookup, normalize, parse_address
from cloud.dns01.providers.base import TxtRecord
from cloud.errors import DnsError, PropagationTimeout

_log = logging.getLogger(__name__)

_ADDRESS_TYPES = {4: "A", 6: "AAAA"}
IP_VERSIONS = (4, 6)  # the address families of nameservers asked unless configured ([dns])
# A send failing with one of these says this host cannot route to the address (its family, most
# often), not that the server lags: asking it again in the same check would only fail again.
_UNROUTABLE = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}
)
# Near the deadline a query still gets this long: the last poll must be able to succeed.
_MIN_QUERY_TIMEOUT = 0.05
# Seconds one whole propagation check may take unless configured ([dns] propagation_timeout).
PROPAGATION_TIMEOUT = 120.0


@dataclass(frozen=True)
class DnsCheckSettings:
    """How the challenge's location and its propagation are checked.

    `resolvers` ("host:port") answer the discovery lookups (CNAME, zone, NS, addresses); None
    means the system's resolver and is for production only. `nameserver_addresses` maps an
    absolute NS name to the "host:port" addresses to ask instead of looking its name up.
    Raises `ValueError` naming the setting on bad input.
    """

    resolvers: tuple[str, ...] | None = None
    nameserver_addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float = PROPAGATION_TIMEOUT  # deadline of one whole propagation check, seconds
    query_timeout: float = 2.0  # one DNS query
    first_interval: float = 0.05  # pause after the first poll, doubling up to max_interval
    max_interval: float = 2.0
    progress_interval: float = 5.0  # seconds between the "still waiting" lines of a long wait
    require_all: bool = True  # False: one authoritative server serving every value is enough
    # Address families of nameservers to ask ([dns] ip_versions). An address this host cannot
    # route to is skipped after its first send anyway; (4,) also spares that send and warning.
    ip_versions: tuple[int, ...] = IP_VERSIONS
    max_cname_hops: int = 8

    def __post_init__(self) -> None:
        if self.resolvers is not None:
            if isinstance(self.resolvers, str) or not self.resolvers:
                raise ValueError("resolvers: give a non-empty list of host:port, or None")
            object.__setattr__(self, "resolvers", tuple(self.resolvers))
            _check_addresses("resolvers", self.resolvers)
        mapping = {}
        for name, addresses in self.nameserver_addresses.items():
            key = f"nameserver_addresses[{name!r}]"
            if isinstance(addresses, str) or not addresses:
                raise ValueError(f"{key}: give a list of host:port")
            _check_addresses(key, addresses)
            mapping[normalize(name)] = tuple(addresses)
        object.__setattr__(self, "nameserver_addresses", MappingProxyType(mapping))
        for key in (
            "timeout",
            "query_timeout",
            "first_interval",
            "max_interval",
            "progress_interval",
        ):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}: must be a positive number of seconds")
        if self.first_interval > self.max_interval:
            raise ValueError("first_interval: must not exceed max_interval")
        if not self.ip_versions or not set(self.ip_versions) <= set(_ADDRESS_TYPES):
            raise ValueError("ip_versions: give a non-empty subset of (4, 6)")
        if self.max_cname_hops < 1:
            raise ValueError("max_cname_hops: must be at least 1")


def _check_addresses(key: str, addresses: Iterable[str]) -> None:
    for text in addresses:
        try:
            parse_address(text)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None


@dataclass(frozen=True)
class Nameserver:
    """One address of one authoritative nameserver; a name with two addresses is two of these,
    and the name counts as serving a value when one of them serves it."""

    name: str  # "ns1.example.test."
    address: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.name} {host}:{self.port}"


@dataclass(frozen=True)
class PropagationResult:
    """A name whose values the authoritative servers were seen serving."""

    fqdn: str
    values: tuple[str, ...]
    servers: tuple[Nameserver, ...]  # the addresses seen serving every value
    polls: int  # rounds of queries it took
    duration: float  # seconds from the start of the check until confirmed


@dataclass(frozen=True)
class _Check:
    fqdn: str
    values: tuple[str, ...]
    servers: tuple[Nameserver, ...]


def authoritative_servers(zone: str, settings: DnsCheckSettings) -> tuple[Nameserver, ...]:
    """Every address of every NS of `zone`, from `settings.nameserver_addresses` where mapped.

    A nameserver whose name has no address, or whose address lookup fails, is left out with a
    warning. Raises `DnsError` when the zone has no NS records, `DnsError(transient=True)` when
    the NS lookup fails or no nameserver is left.
    """
    zone = normalize(zone)
    resolver = build_resolver(settings.resolvers, settings.query_timeout)
    answer = lookup(resolver, zone, "NS")
    if answer is None or answer.rrset is None:
        raise DnsError(zone, "the zone has no NS records")
    servers: list[Nameserver] = []
    failures: list[str] = []
    for name in sorted({rdata.target.canonicalize().to_text() for rdata in answer.rrset}):
        failure = None
        if name in settings.nameserver_addresses:
            found = [parse_address(text) for text in settings.nameserver_addresses[name]]
        else:
            found, failure = _published_addresses(resolver, name, settings.ip_versions)
        if failure is not None:
            # A validating resolver, the CA's included, goes on to the zone's next nameserver
            # (RFC 1035 section 7.2): one broken NS name must not block the check.
            left = "checked at the addresses found before" if found else "not checked"
            _log.warning("nameserver %s of %s: %s; %s", name, zone, failure, left)
            failures.append(f"{name}: {failure}")
        elif not found:
            # Nobody can reach a nameserver without an address, the CA's resolver included.
            _log.warning("nameserver %s of %s has no address; not checked", name, zone)
        servers.extend(Nameserver(name, address, port) for address, port in found)
    if not servers:
        detail = f" ({'; '.join(failures)})" if failures else ""
        raise DnsError(zone, f"no authoritative nameserver has an address{detail}", transient=True)
    return tuple(servers)


def _published_addresses(
    resolver: dns.resolver.Resolver, name: str, versions: Iterable[int]
) -> tuple[list[tuple[str, int]], str | None]:
    """The addresses of the families `versions` that `name` has, and why a lookup failed (the
    families after a failed one are not asked: the next lookup would most likely fail too).

    Only an answer that failed (SERVFAIL, REFUSED from every resolver) is such a reason: a
    lookup that timed out raises, so the check is tried again rather than confirmed without a
    nameserver the CA may well reach and find lagging."""
    found: list[tuple[str, int]] = []
    for version in versions:
        try:
            reply = lookup(resolver, name, _ADDRESS_TYPES[version])
        except DnsError as exc:
            if isinstance(exc.__cause__, dns.exception.Timeout):
                raise
            return found, f"{_ADDRESS_TYPES[version]} lookup failed: {exc.__cause__ or exc}"
        if reply is not None and reply.rrset is not None:
            found.extend((rdata.address, 53) for rdata in reply.rrset)
    return found, None


def wait_for_txt(
    fqdn: str,
    values: Collection[str],
    servers: Collection[Nameserver],
    settings: DnsCheckSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PropagationResult:
    """Polls `servers` until each nameserver (by name: one of its addresses is enough) serves
    every one of `values` at `fqdn`.

    Raises `PropagationTimeout` at the deadline, naming each address of the nameservers still
    lacking a value and why.
    """
    check = _Check(normalize(fqdn), tuple(dict.fromkeys(values)), tuple(servers))
    return _wait([check], settings, clock, sleep)[0]


def wait_for_records(
    records: Iterable[TxtRecord],
    settings: DnsCheckSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[PropagationResult, ...]:
    """Checks several records at once, under one deadline: one result per distinct name.

    Records sharing a name (the apex and the wildcard) are one check with several values; the
    nameservers of each zone are looked up once. Raises what `authoritative_servers` and
    `wait_for_txt` raise (for the first name still missing at the deadline).
    """
    grouped: dict[tuple[str, str], dict[str, None]] = {}
    for record in records:
        key = (normalize(record.zone), normalize(record.fqdn))
        grouped.setdefault(key, {})[record.value] = None
    if not grouped:
        return ()
    servers_of = {zone: authoritative_servers(zone, settings) for zone, _ in grouped}
    checks = [
        _Check(fqdn, tuple(values), servers_of[zone]) for (zone, fqdn), values in grouped.items()
    ]
    return _wait(checks, settings, clock, sleep)


def _wait(
    checks: list[_Check],
    settings: DnsCheckSettings,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[PropagationResult, ...]:
    for check in checks:
        if not check.values or not check.servers:
            raise ValueError(f"{check.fqdn}: need at least one value and one nameserver")
    start = clock()
    deadline = start + settings.timeout
    interval = settings.first_interval
    # What each (check, server) pair still lacks, or None once the server serves every value.
    lacking: dict[tuple[_Check, Nameserver], _Lack | None] = {
        (check, server): _Lack(check.values, "not asked yet")
        for check in checks
        for server in check.servers
    }
    unroutable: set[Nameserver] = set()  # addresses this host cannot send to: not asked again
    finished: dict[_Check, PropagationResult] = {}
    polls = 0
    told = start  # when the last "still waiting" lines were logged
    while True:
        polls += 1
        ask = [
            (check, server)
            for check in checks
            if check not in finished
            for server in _to_ask(check, lacking)
            if server not in unroutable
        ]
        timeout = min(settings.query_timeout, max(deadline - clock(), _MIN_QUERY_TIMEOUT))
        lacks = _poll(ask, timeout)
        lacking.update(zip(ask, lacks, strict=True))
        _log.debug("poll %d: %s", polls, _describe(ask, lacks))
        for (_, server), lack in zip(ask, lacks, strict=True):
            if lack is not None and lack.unroutable and server not in unroutable:
                unroutable.add(server)
                _log.warning(
                    "cannot send to nameserver %s from this host (%s): not asked again in this "
                    "check; its name is confirmed by its other addresses",
                    server,
                    lack,
                )
        now = clock()
        for check in checks:
            if check not in finished and _confirmed(check, lacking, settings.require_all):
                finished[check] = _result(check, lacking, polls, now - start)
        if len(finished) == len(checks):
            return tuple(finished[check] for check in checks)
        if now >= deadline:
            pending = next(check for check in checks if check not in finished)
            raise _timeout(pending, lacking, now - start)
        if now - told >= settings.progress_interval:
            told = now
            for check in checks:
                if check not in finished:
                    _log_waiting(check, lacking, now - start, settings.timeout)
        sleep(min(interval, deadline - now))
        interval = min(interval * 2, settings.max_interval)


def _to_ask(
    check: _Check, lacking: Mapping[tuple[_Check, Nameserver], _Lack | None]
) -> list[Nameserver]:
    """The addresses still lacking a value, of the nameservers none of whose addresses serves
    them all yet."""
    served = _served_names(check, lacking)
    return [s for s in check.servers if lacking[check, s] and not served[s.name]]


def _served_names(
    check: _Check, lacking: Mapping[tuple[_Check, Nameserver], _Lack | None]
) -> dict[str, bool]:
    """Each nameserver name of the check: whether one of its addresses serves every value."""
    served: dict[str, bool] = {}
    for server in check.servers:
        served[server.name] = served.get(server.name, False) or lacking[check, server] is None
    return served


@dataclass(frozen=True)
class _Lack:
    values: tuple[str, ...]  # the values the server did not serve
    reason: str
    unroutable: bool = False  # the query could not be sent: this host has no route to it

    def __str__(self) -> str:
        return self.reason


def _poll(ask: list[tuple[_Check, Nameserver]], timeout: float) -> list[_Lack | None]:
    answers = read_txts([(check.fqdn, server) for check, server in ask], timeout)
    return [_lack(check, answer) for (check, _), answer in zip(ask, answers, strict=True)]


@dataclass(frozen=True)
class TxtAnswer:
    """What one authoritative server answered for the TXT records at a name."""

    values: tuple[str, ...]  # each record's strings joined, as a validator reads them
    problem: str | None = None  # why there is no usable answer (then `values` is empty)
    unroutable: bool = False  # the query could not be sent: this host has no route to the address


def read_txt(fqdn: str, server: Nameserver, timeout: float) -> TxtAnswer:
    """Asks `server` directly for the TXT records at `fqdn`: recursion off, the answer must be
    authoritative, UDP with TCP on truncation. A name that does not exist has no values."""
    return read_txts([(fqdn, server)], timeout)[0]


def read_txts(questions: Sequence[tuple[str, Nameserver]], timeout: float) -> list[TxtAnswer]:
    """`read_txt` for several (name, server) questions at once, in this thread: every query is
    sent before any answer is read, so a round takes as long as its slowest server, and no
    thread is started for it (a thread per server cost a fleet run more CPU than the queries)."""
    deadline = time.monotonic() + timeout
    answers: dict[int, TxtAnswer] = {}
    with contextlib.ExitStack() as sockets, selectors.DefaultSelector() as selector:
        for i, (fqdn, server) in enumerate(questions):
            query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
            query.flags &= ~dns.flags.RD
            family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
            try:
                udp = sockets.enter_context(socket.socket(family, socket.SOCK_DGRAM))
                udp.setblocking(False)
                # A connected socket hears the ICMP "port unreachable" of a server that is down,
                # so that is reported at once instead of as a timeout.
                udp.connect((server.address, server.port))
                udp.send(query.to_wire())
            except OSError as exc:
                answers[i] = _unreachable(exc, unroutable=exc.errno in _UNROUTABLE)
                continue
            selector.register(udp, selectors.EVENT_READ, (i, query, udp))
        # At the deadline one last look without waiting: answers that came while a truncated
        # one was asked again over TCP still count.
        while selector.get_map() and (
            ready := selector.select(max(deadline - time.monotonic(), 0))
        ):
            for key, _ in ready:
                i, query, udp = key.data
                selector.unregister(udp)
                answers[i] = _read_answer(udp, query, questions[i], deadline)
    unanswered = TxtAnswer((), f"no answer within {timeout:.2g}s")
    return [answers.get(i, unanswered) for i in range(len(questions))]


def _read_answer(
    udp: socket.socket,
    query: dns.message.Message,
    question: tuple[str, Nameserver],
    deadline: float,
) -> TxtAnswer:
    """The answer waiting on `udp` (asked again over TCP when it is truncated)."""
    fqdn, server = question
    tcp_timeout = max(deadline - time.monotonic(), _MIN_QUERY_TIMEOUT)
    try:
        try:
            response = dns.message.from_wire(udp.recv(65535), raise_on_truncation=True)
        except dns.message.Truncated:
            response = dns.query.tcp(query, server.address, timeout=tcp_timeout, port=server.port)
        if not query.is_response(response):
            raise dns.query.BadResponse
    except dns.exception.Timeout:
        return TxtAnswer((), f"no answer over TCP within {tcp_timeout:.2g}s")
    except OSError as exc:
        return _unreachable(exc)
    except dns.exception.DNSException as exc:
        return TxtAnswer((), f"bad answer: {exc}")
    # The rcode first: a lame server's REFUSED or SERVFAIL carries no AA flag either, and what
    # it said is what tells an operator which nameserver is broken.
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return TxtAnswer((), f"answered {dns.rcode.to_text(response.rcode())}")
    if not response.flags & dns.flags.AA:
        return TxtAnswer((), "answer not authoritative (AA flag unset)")
    rrset = response.get_rrset(
        response.answer, dns.name.from_text(fqdn), dns.rdataclass.IN, dns.rdatatype.TXT
    )
    return TxtAnswer(
        tuple(b"".join(rdata.strings).decode("utf-8", "replace") for rdata in rrset or ())
    )


def _unreachable(exc: OSError, *, unroutable: bool = False) -> TxtAnswer:
    return TxtAnswer((), f"unreachable: {(exc.strerror or str(exc)).lower()}", unroutable)


def _lack(check: _Check, answer: TxtAnswer) -> _Lack | None:
    """What a server does not serve of `check.values`, and why; None when it serves them all."""
    if answer.problem is not None:
        return _Lack(check.values, answer.problem, answer.unroutable)
    served = set(answer.values)
    missing = tuple(value for value in check.values if value not in served)
    if not missing:
        return None
    return _Lack(
        missing, f"serves {len(check.values) - len(missing)} of {len(check.values)} values"
    )


def _describe(ask: list[tuple[_Check, Nameserver]], lacks: list[_Lack | None]) -> str:
    lines = [
        f"{check.fqdn} at {server}: {lack or 'confirmed'}"
        for (check, server), lack in zip(ask, lacks, strict=True)
    ]
    return "; ".join(lines)


def _log_waiting(
    check: _Check,
    lacking: Mapping[tuple[_Check, Nameserver], _Lack | None],
    waited: float,
    timeout: float,
) -> None:
    """Which servers of the nameservers not yet confirmed lack which values, and why."""
    lacks = [
        f"{server} lacks {', '.join(map(repr, lack.values))} ({lack})"
        for server, lack in _unserved(check, lacking).items()
    ]
    _log.info(
        "still waiting for TXT %s after %.0f of at most %g s: %s",
        check.fqdn,
        waited,
        timeout,
        "; ".join(lacks),
        extra={"fqdn": check.fqdn},
    )


def _confirmed(
    check: _Check, lacking: Mapping[tuple[_Check, Nameserver], _Lack | None], require_all: bool
) -> bool:
    served = _served_names(check, lacking).values()
    return all(served) if require_all else any(served)


def _result(
    check: _Check,
    lacking: Mapping[tuple[_Check, Nameserver], _Lack | None],
    polls: int,
    duration: float,
) -> PropagationResult:
    serving = tuple(server for server in check.servers if lacking[check, server] is None)
    names = _served_names(check, lacking)
    _log.info(
        "TXT %s served by %d of %d authoritative nameservers after %d ms",
        check.fqdn,
        sum(names.values()),
        len(names),
        round(duration * 1000),
        extra={"fqdn": check.fqdn, "duration_ms": round(duration * 1000)},
    )
    return PropagationResult(check.fqdn, check.values, serving, polls, duration)


def _timeout(
    check: _Check, lacking: Mapping[tuple[_Check, Nameserver], _Lack | None], waited: float
) -> PropagationTimeout:
    lacks = _unserved(check, lacking)
    value = next(value for value in check.values if any(value in x.values for x in lacks.values()))
    return PropagationTimeout(
        check.fqdn, value, tuple(f"{server}: {lack}" for server, lack in lacks.items()), waited
    )


def _unserved(
    check: _Check, lacking: Mapping[tuple[_Check, Nameserver], _Lack | None]
) -> dict[Nameserver, _Lack]:
    """What each address of the nameservers not yet confirmed lacks."""
    served = _served_names(check, lacking)
    return {
        server: lack
        for server in check.servers
        if not served[server.name] and (lack := lacking[check, server])
    }
