"""Pebble, the ACME test CA, on 127.0.0.1 with its validator pointed at a loopback DNS server.

Every listener is on loopback with a free port, its HTTPS certificate comes from a throw-away CA
(`ca_bundle`, to pass as `verify=`), and the random pre-validation sleep is off. Pebble makes a
new root and intermediate on every start; fetch them with `roots_pem()`/`intermediates_pem()`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import requests

from ._process import Service, ServiceProcess, child_env
from .ports import LOOPBACK, free_port
from .tls import make_ca_and_server_cert

# Pebble 2.10.1, built by `make pebble` into build/pebble/ (Debian's 2.4.0 lacks ARI, profiles and
# dns-persist-01); CERTDROP_PEBBLE names another binary.
_BUILT = Path(__file__).resolve().parents[1] / "build" / "pebble" / "pebble"
_START_TIMEOUT = 30.0
# Let's Encrypt's profiles as of 2026: "classic" 90 days, "shortlived" 6 days.
CLASSIC = 90 * 86400
SHORTLIVED = 6 * 86400


class Pebble(Service):
    def __init__(
        self,
        workdir: Path,
        dns_server: str,
        *,
        eab_keys: Mapping[str, str] | None = None,
        nonce_reject_percent: int = 0,
        authz_reuse_percent: int = 0,
        alternate_roots: int = 0,
        chain_length: int | None = None,
        always_valid: bool = False,
        port: int | None = None,
        management_port: int | None = None,
        profiles: Mapping[str, int] | None = None,
    ) -> None:
        """`dns_server` is "127.0.0.1:PORT"; `eab_keys` maps kid to a base64url HMAC key;
        `profiles` maps a profile name to its validity in seconds. Pebble picks a profile at
        random for an order that names none, so by default there is one: 90-day "classic"."""
        host, _, dns_port = dns_server.rpartition(":")
        if host != LOOPBACK or not dns_port.isdigit():
            raise ValueError(f"dns_server must be {LOOPBACK}:PORT, got {dns_server!r}")
        for label, percent in (
            ("nonce_reject_percent", nonce_reject_percent),
            ("authz_reuse_percent", authz_reuse_percent),
        ):
            if not 0 <= percent <= 100:
                raise ValueError(f"{label} must be within 0..100, got {percent}")
        self.workdir = Path(workdir)
        self.dns_server = dns_server
        self.eab_keys = dict(eab_keys or {})
        self.nonce_reject_percent = nonce_reject_percent
        self.authz_reuse_percent = authz_reuse_percent
        self.alternate_roots = alternate_roots
        self.chain_length = chain_length
        self.always_valid = always_valid
        self.profiles = dict(profiles or {"classic": CLASSIC})
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.management_port = management_port if management_port is not None else free_port()
        self.directory_url = f"https://{self.host}:{self.port}/dir"
        self.management_url = f"https://{self.host}:{self.management_port}"
        self.ca_bundle = self.workdir / "tls" / "ca.pem"

    @property
    def root_count(self) -> int:
        return 1 + self.alternate_roots

    @property
    def eab_kid(self) -> str:
        """The first EAB key id (the fixtures configure exactly one)."""
        return self._first_eab()[0]

    @property
    def eab_hmac_key(self) -> str:
        """The base64url HMAC key belonging to `eab_kid`."""
        return self._first_eab()[1]

    def roots_pem(self, index: int = 0) -> str:
        return self._management_get(f"/roots/{index}")

    def intermediates_pem(self, index: int = 0) -> str:
        return self._management_get(f"/intermediates/{index}")

    def order_ids(self) -> list[str]:
        """Every order Pebble has accepted since it started, from its log: what a test counts
        to prove no run placed an order twice (in-process counters miss other processes)."""
        return self._logged(r'Added order "([^"]+)" to the db')

    def issued_serials(self) -> list[str]:
        """Every certificate Pebble has issued since it started, from its log."""
        return self._logged(r"Issued certificate serial (\S+) for order")

    def _logged(self, pattern: str) -> list[str]:
        log = self.workdir / "pebble.log"
        return re.findall(pattern, log.read_text() if log.exists() else "")

    def set_renewal_info(self, cert_pem: str, start: str, end: str) -> None:
        """Makes the CA suggest the window [start, end) (RFC 3339) for this certificate, through
        the management interface's `POST /set-renewal-info/`."""
        window = {"suggestedWindow": {"start": start, "end": end}}
        body = {"Certificate": cert_pem, "ARIResponse": json.dumps(window)}
        with self._session() as session:
            response = session.post(
                self.management_url + "/set-renewal-info/", json=body, timeout=5
            )
        response.raise_for_status()

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"Pebble on {self.host}:{self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        _ca, cert, key = make_ca_and_server_cert(self.workdir / "tls")
        config = self.workdir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": self._config(cert, key)}, indent=2))
        process = ServiceProcess(
            f"Pebble on {self.host}:{self.port}",
            [_binary(), "-config", str(config), "-dnsserver", self.dns_server],
            self.workdir / "pebble.log",
            child_env(self._environment()),
        )
        self._run(process, _START_TIMEOUT, f"Pebble directory {self.directory_url}")

    def _config(self, cert: Path, key: Path) -> dict[str, object]:
        config: dict[str, object] = {
            "listenAddress": f"{self.host}:{self.port}",
            "managementListenAddress": f"{self.host}:{self.management_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            # Not listeners: the ports Pebble's validator connects to for http-01 and
            # tls-alpn-01. Free loopback ports, so a stray validation reaches nothing.
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
            "profiles": {
                name: {
                    "description": f"{seconds // 86400}-day certificates",
                    "validityPeriod": seconds,
                }
                for name, seconds in self.profiles.items()
            },
        }
        if self.eab_keys:
            config["externalAccountMACKeys"] = self.eab_keys
        return config

    def _environment(self) -> dict[str, str]:
        env = {
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject_percent),
            "PEBBLE_AUTHZREUSE": str(self.authz_reuse_percent),
            "PEBBLE_ALTERNATE_ROOTS": str(self.alternate_roots),
        }
        if self.chain_length is not None:
            env["PEBBLE_CHAIN_LENGTH"] = str(self.chain_length)
        if self.always_valid:
            env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        return env

    def _ready(self) -> bool:
        assert self._process is not None
        self._process.check_alive()
        try:
            with self._session() as session:
                response = session.get(self.directory_url, timeout=2)
        except (requests.ConnectionError, requests.Timeout):
            return False
        return response.status_code == 200 and "newAccount" in response.json()

    def _management_get(self, path: str) -> str:
        with self._session() as session:
            response = session.get(self.management_url + path, timeout=5)
        response.raise_for_status()
        return response.text

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.verify = str(self.ca_bundle)
        # Proxy variables in the environment must not route loopback requests elsewhere.
        session.trust_env = False
        return session

    def _first_eab(self) -> tuple[str, str]:
        if not self.eab_keys:
            raise RuntimeError("this Pebble was started without EAB keys")
        return next(iter(self.eab_keys.items()))


def _binary() -> str:
    path = Path(os.environ.get("CERTDROP_PEBBLE") or _BUILT)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"no Pebble at {path}: run `make pebble` (Pebble 2.10.1)")
    return str(path)
