"""RFC 2136 dynamic updates signed with TSIG: BIND, Knot, PowerDNS (`dnsupdate=yes`) and others.

One update message changes its records atomically on the server: `add_txts` adds TXT rdatas (the
server ignores a duplicate), `remove_txts` deletes exactly those rdatas (deleting an absent one is a
no-op); the apex's and the wildcard's values go in one message. No read-modify-write, so
concurrent writers cannot lose each other's values. Updates go over TCP to the primary given in
`server`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from cloud.dns01.providers.base import InvalidSetting, ProviderInfo, Setting, TxtRecord
from cloud.errors import ConfigError, ConfigProblem, DnsProviderError

log = logging.getLogger(__name__)

NAME = "rfc2136"
_ALGORITHMS = (
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
    "hmac-sha224",
    "hmac-sha1",
    "hmac-md5",
)
_MAX_STRING = 255
TSIG_ALGORITHM = "hmac-sha256"
TIMEOUT = 10.0  # seconds per update
_SERVER_FIX = 'write server = "192.0.2.53" or "192.0.2.53:5353"'


class Rfc2136Provider:
    def __init__(
        self,
        server: tuple[str, int],
        tsig_name: str,
        tsig_secret: str,
        tsig_algorithm: str = TSIG_ALGORITHM,
        timeout: float = TIMEOUT,
    ) -> None:
        """`server` as `parse_server` gives it; a host name is resolved now."""
        import dns.name
        import dns.tsig

        self._host, self._port = _resolve(*server), server[1]
        self._timeout = timeout
        try:
            self._key = dns.tsig.Key(tsig_name, tsig_secret, tsig_algorithm)
        except (ValueError, TypeError, dns.name.NameTooLong, dns.name.EmptyLabel) as exc:
            # The message would not contain the secret, but there is nothing in it worth showing.
            raise _config_error(
                "tsig_secret", f"not a usable TSIG key ({type(exc).__name__})"
            ) from None

    def add_txt(self, record: TxtRecord) -> None:
        self.add_txts((record,))

    def remove_txt(self, record: TxtRecord) -> None:
        self.remove_txts((record,))

    def add_txts(self, records: Sequence[TxtRecord]) -> None:
        """One UPDATE adding every value (all in one zone): the server applies all or none."""
        update = self._update(records[0])
        for record in records:
            update.add(record.fqdn, record.ttl, self._rdata(record.value))
        self._send(update, records[0])
        log.info("rfc2136: added %d TXT value(s) at %s", len(records), _names(records))

    def remove_txts(self, records: Sequence[TxtRecord]) -> None:
        update = self._update(records[0])
        for record in records:
            update.delete(record.fqdn, self._rdata(record.value))
        self._send(update, records[0])
        log.info("rfc2136: removed %d TXT value(s) at %s", len(records), _names(records))

    def _update(self, record: TxtRecord) -> Any:
        import dns.update

        return dns.update.UpdateMessage(record.zone, keyring=self._key)

    @staticmethod
    def _rdata(value: str) -> Any:
        import dns.rdataclass
        import dns.rdatatype
        from dns.rdtypes.ANY.TXT import TXT

        data = value.encode()
        strings = [data[i : i + _MAX_STRING] for i in range(0, len(data), _MAX_STRING)] or [b""]
        return TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)

    def _send(self, update: Any, record: TxtRecord) -> None:
        import dns.exception
        import dns.query
        import dns.rcode
        import dns.tsig

        where = f"{self._host}:{self._port}"
        try:
            response = dns.query.tcp(update, self._host, port=self._port, timeout=self._timeout)
        except dns.tsig.PeerError as exc:
            raise DnsProviderError(
                NAME,
                record.fqdn,
                f"{where} refused the TSIG key {self._key.name} ({_peer_error(exc)}): check "
                "tsig_name, tsig_secret and tsig_algorithm against the server's key",
            ) from exc
        except dns.exception.Timeout as exc:
            raise DnsProviderError(
                NAME,
                record.fqdn,
                f"no answer from {where} within {self._timeout:g} s",
                transient=True,
            ) from exc
        except (OSError, EOFError) as exc:
            cause = getattr(exc, "strerror", None) or type(exc).__name__
            raise DnsProviderError(
                NAME, record.fqdn, f"cannot talk to {where}: {cause}", transient=True
            ) from exc
        except dns.exception.DNSException as exc:
            raise DnsProviderError(
                NAME, record.fqdn, f"bad reply from {where}: {type(exc).__name__}: {exc}"
            ) from exc
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        name = dns.rcode.to_text(rcode)
        if rcode == dns.rcode.REFUSED:
            cause = (
                f"{where} answered REFUSED: the key {self._key.name} may not update TXT at "
                f"{record.fqdn} (check the zone's update-policy)"
            )
        elif rcode == dns.rcode.NOTAUTH:
            cause = (
                f"{where} answered NOTAUTH: it is not authoritative for {record.zone}, or "
                f"the key {self._key.name} may not update it"
            )
        elif rcode == dns.rcode.NOTZONE:
            cause = f"{where} answered NOTZONE: it is not authoritative for {record.zone}"
        else:
            cause = f"{where} answered {name}"
        raise DnsProviderError(NAME, record.fqdn, cause, transient=rcode == dns.rcode.SERVFAIL)


def _names(records: Sequence[TxtRecord]) -> str:
    return ", ".join(sorted({record.fqdn for record in records}))


def parse_server(server: str) -> tuple[str, int]:
    """("host", port) from "host", "host:port", "[v6]" or "[v6]:port"; nothing is resolved."""
    host, port = server.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), server)
    elif host.count(":") == 1:
        host, _, text = host.partition(":")
        port = _port(text, server)
    if not host:
        raise InvalidSetting(f"no host in {server!r}", _SERVER_FIX)
    return host, port


def _port(text: str, server: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidSetting(f"bad port in {server!r}", _SERVER_FIX)
    return int(text)


def _resolve(host: str, port: int) -> str:
    try:
        # An address literal comes back as it is, without any lookup.
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _config_error("server", f"cannot resolve {host!r}: {exc.strerror}") from exc
    return str(infos[0][4][0])


def _algorithm(text: str) -> str:
    algorithm = text.lower().rstrip(".")
    if algorithm not in _ALGORITHMS:
        raise InvalidSetting(f"unknown algorithm {text!r}", f"use one of: {', '.join(_ALGORITHMS)}")
    return algorithm


def _peer_error(exc: Exception) -> str:
    return {
        "PeerBadKey": "unknown key name or algorithm",
        "PeerBadSignature": "bad signature: wrong secret or algorithm",
        "PeerBadTime": "clock skew between here and the server",
        "PeerBadTruncation": "bad truncation",
    }.get(type(exc).__name__, type(exc).__name__)


def _config_error(key: str, cause: str) -> ConfigError:
    """What only a built provider can find wrong: a secret, a server name that resolves."""
    fixes = {
        "server": _SERVER_FIX,
        "tsig_secret": "give the base64 secret of the key (tsig-keygen prints it)",
    }
    return ConfigError([ConfigProblem(f"{NAME}.{key}", cause, fixes[key])])


def _build(values: Mapping[str, Any]) -> Rfc2136Provider:
    return Rfc2136Provider(
        values["server"],
        values["tsig_name"],
        values["tsig_secret"],
        values["tsig_algorithm"],
        values["timeout"],
    )


INFO = ProviderInfo(
    name=NAME,
    summary="RFC 2136 dynamic updates with TSIG (BIND, Knot, PowerDNS, Windows DNS...)",
    settings=(
        Setting(
            "server",
            'the primary nameserver, "host" or "host:port" (port 53 by default)',
            parse=parse_server,
        ),
        Setting("tsig_name", "the TSIG key name"),
        Setting("tsig_secret", "the TSIG key secret (base64)", secret=True),
        Setting(
            "tsig_algorithm",
            "the TSIG algorithm",
            required=False,
            default=TSIG_ALGORITHM,
            parse=_algorithm,
        ),
        Setting("timeout", "seconds per update", required=False, kind=float, default=TIMEOUT),
    ),
    permissions="a TSIG key allowed to update TXT records at the challenge names, e.g. BIND "
    "`update-policy { grant KEY name _acme-challenge.example.com. TXT; };` (or `subdomain` of a "
    "zone dedicated to validation)",
    build=_build,
)
