"""BIND on 127.0.0.1 for tests: an authoritative server taking TSIG updates, and a resolver.

`BindServer` serves zones written fresh on every start; with a TSIG key and `allow_update` it
accepts RFC 2136 updates of TXT records anywhere in its zones (`update_add` sends one). A second
`BindServer` over the same zones with `allow_update=False` plays a nameserver that never receives
the update.

`BindResolver` sits in front of a `BindServer` with recursion on and every zone forwarded to it, so
a validator (Pebble) can follow a CNAME from one zone into another. It never queries past loopback:
all names are forwarded to the authoritative server, its root hints name only 127.0.0.1, and its
queries leave from 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ._dnsprobe import query_soa
from ._process import Service, ServiceError, ServiceProcess, child_env
from .ports import LOOPBACK, free_port, port_is_free

_NAMED = "named"
_START_TIMEOUT = 20.0

_N = TypeVar("_N", bound="_Named")


@dataclass(frozen=True)
class TsigKey:
    name: str
    secret: str  # base64
    algorithm: str = "hmac-sha256"

    @classmethod
    def generate(cls, name: str) -> TsigKey:
        return cls(name=name, secret=base64.b64encode(os.urandom(32)).decode("ascii"))


@dataclass(frozen=True)
class Zone:
    """A zone: `name` absolute, `records` zone-file lines relative to it, NS in-zone or not."""

    name: str
    records: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ("ns1",)

    def __post_init__(self) -> None:
        if not self.name.endswith(".") or self.name == ".":
            raise ValueError(f"zone name must be absolute (end with '.'): {self.name!r}")
        if not self.nameservers:
            raise ValueError(f"zone {self.name} needs at least one nameserver")

    def nameserver_fqdns(self) -> tuple[str, ...]:
        return tuple(ns if ns.endswith(".") else f"{ns}.{self.name}" for ns in self.nameservers)

    def zone_file(self) -> str:
        fqdns = self.nameserver_fqdns()
        # TTLs of 1 s, negative TTL included: a resolver must not hide a fresh TXT for long.
        lines = [
            f"$ORIGIN {self.name}",
            "$TTL 1",
            f"@ IN SOA {fqdns[0]} hostmaster.{self.name} 1 3600 600 86400 1",
        ]
        lines += [f"@ IN NS {ns}" for ns in fqdns]
        lines += [f"{ns} IN A {LOOPBACK}" for ns in fqdns if _inside(ns, self.name)]
        lines += list(self.records)
        return "\n".join(lines) + "\n"


def _inside(fqdn: str, zone: str) -> bool:
    return fqdn == zone or fqdn.endswith("." + zone)


class _Named(Service):
    """Lifecycle shared by both roles: config, checks, foreground `named`, readiness, stop."""

    role = "named"

    def __init__(self, workdir: Path, zones: Sequence[Zone], port: int | None) -> None:
        self.workdir = Path(workdir)
        self.zones = tuple(zones)
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"{self.role} on {self.address} is already running")
        if not port_is_free(self.port):
            # Checked because BIND binds with SO_REUSEPORT and would share the port silently.
            raise ServiceError(self.role, f"port {self.port} on {self.host} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for journal in self.workdir.glob("*.jnl"):
            journal.unlink()
        self._write_data_files()
        conf = self.workdir / "named.conf"
        conf.write_text(self._config())
        _check(self.role, ["named-checkconf", str(conf)])
        for zone in self._zone_files_to_check():
            _check(self.role, ["named-checkzone", "-i", "local", zone.name, str(self._file(zone))])
        process = ServiceProcess(
            f"{self.role} on {self.address}",
            [_executable(_NAMED), "-g", "-4", "-c", str(conf)],
            self.workdir / "named.log",
            child_env(),
        )
        self._run(process, _START_TIMEOUT, f"{self.role} on {self.address} answering SOA")

    def _ready(self) -> bool:
        assert self._process is not None
        self._process.check_alive()
        recursion = self._recursion_desired()
        for zone in self.zones:
            answer = query_soa(
                self.host, self.port, zone.name, recursion_desired=recursion, timeout=0.3
            )
            if answer is None or not answer.has_answer:
                return False
        return True

    def _file(self, zone: Zone) -> Path:
        return self.workdir / f"{zone.name}zone"

    def _options(self) -> list[str]:
        return [
            f'directory "{self.workdir}";',
            "pid-file none;",
            "session-keyfile none;",
            f"listen-on port {self.port} {{ {LOOPBACK}; }};",
            "listen-on-v6 { none; };",
            "notify no;",
            "dnssec-validation no;",
            "allow-transfer { none; };",
        ]

    def _write_data_files(self) -> None:
        raise NotImplementedError

    def _config(self) -> str:
        raise NotImplementedError

    def _zone_files_to_check(self) -> Sequence[Zone]:
        return ()

    def _recursion_desired(self) -> bool:
        raise NotImplementedError


class BindServer(_Named):
    """Authoritative `named` for `zones`; TXT updates signed with `tsig` when `allow_update`."""

    role = "BIND authoritative"

    def __init__(
        self,
        workdir: Path,
        zones: Sequence[Zone],
        tsig: TsigKey | None,
        port: int | None = None,
        allow_update: bool = True,
    ) -> None:
        super().__init__(workdir, zones, port)
        self.tsig = tsig
        self.allow_update = allow_update

    def _write_data_files(self) -> None:
        for zone in self.zones:
            self._file(zone).write_text(zone.zone_file())

    def _config(self) -> str:
        parts = []
        if self.tsig is not None:
            parts.append(
                f'key "{self.tsig.name}" {{ algorithm {self.tsig.algorithm}; '
                f'secret "{self.tsig.secret}"; }};'
            )
        options = [*self._options(), "recursion no;"]
        parts.append("options {\n  " + "\n  ".join(options) + "\n};")
        # Without this, named opens an rndc control channel on 127.0.0.1:953.
        parts.append("controls { };")
        for zone in self.zones:
            policy = ""
            if self.allow_update and self.tsig is not None:
                policy = f' update-policy {{ grant "{self.tsig.name}" zonesub TXT; }};'
            parts.append(
                f'zone "{zone.name}" {{ type primary; file "{self._file(zone)}";{policy} }};'
            )
        return "\n".join(parts) + "\n"

    def _zone_files_to_check(self) -> Sequence[Zone]:
        return self.zones

    def _recursion_desired(self) -> bool:
        return False

    def update_add(self, zone: str, zone_line: str) -> None:
        """Adds the record of one zone-file line (`NAME TTL IN TYPE DATA`) to `zone` by an RFC
        2136 update signed with the TSIG key: what `nsupdate` does for a zone's owner (the
        demo and the bench place a dns-persist-01 record so)."""
        import dns.query
        import dns.rcode
        import dns.tsigkeyring
        import dns.update

        if self.tsig is None:
            raise ServiceError(self.role, "started without a TSIG key: it takes no updates")
        name, ttl, _class, rdtype, data = zone_line.split(None, 4)
        keyring = dns.tsigkeyring.from_text(
            {self.tsig.name: (self.tsig.algorithm, self.tsig.secret)}
        )
        update = dns.update.UpdateMessage(zone, keyring=keyring)
        update.add(name, int(ttl), rdtype, data)
        answer = dns.query.tcp(update, self.host, port=self.port, timeout=5)
        if answer.rcode() != dns.rcode.NOERROR:
            rcode = dns.rcode.to_text(answer.rcode())
            raise ServiceError(self.role, f"the update of {name} was refused: {rcode}")


class BindResolver(_Named):
    """A recursive `named` that forwards every zone of `upstream` (and everything else) to it."""

    role = "BIND resolver"

    def __init__(self, workdir: Path, upstream: BindServer, port: int | None = None) -> None:
        super().__init__(workdir, upstream.zones, port)
        self.upstream = upstream

    def _hints(self) -> Path:
        return self.workdir / "loopback-root.hints"

    def _write_data_files(self) -> None:
        self._hints().write_text(
            f". 3600000 IN NS loopback-root.\nloopback-root. 3600000 IN A {LOOPBACK}\n"
        )

    def _config(self) -> str:
        forwarders = f"forwarders {{ {LOOPBACK} port {self.upstream.port}; }};"
        options = [
            *self._options(),
            "recursion yes;",
            f"allow-recursion {{ {LOOPBACK}; }};",
            # No cache: back-to-back issuances of one name must not see the previous TXT values.
            "max-cache-ttl 0;",
            "max-ncache-ttl 0;",
            "servfail-ttl 0;",
            # Everything, not only the test zones, goes to the authoritative server on loopback...
            "forward only;",
            forwarders,
            # ...and should anything still recurse, it can only leave from and reach loopback.
            f"query-source address {LOOPBACK};",
        ]
        parts = ["options {\n  " + "\n  ".join(options) + "\n};", "controls { };"]
        parts.append(f'zone "." {{ type hint; file "{self._hints()}"; }};')
        for zone in self.zones:
            parts.append(f'zone "{zone.name}" {{ type forward; forward only; {forwarders} }};')
        return "\n".join(parts) + "\n"

    def _recursion_desired(self) -> bool:
        return True


def _executable(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(name, "not installed (Debian packages bind9 and bind9-utils)")


def _check(role: str, argv: list[str]) -> None:
    argv = [_executable(argv[0]), *argv[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceError(role, f"{' '.join(argv)} failed", output)
