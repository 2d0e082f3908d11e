"""A throw-away PowerDNS Authoritative server (Debian `pdns-server` 4.7, sqlite) on 127.0.0.1.

    with PowerDns() as pdns:
        pdns.api_url, pdns.api_key        # the HTTP API, for the powerdns provider
        pdns.address, pdns.port           # DNS, for asking what the server really serves

Everything lives in a temporary directory: the sqlite database (loaded from the package's schema),
`pdns.conf`, the control socket and the log. Zones are created with `pdnsutil` before the server
starts, each with an NS `ns1.<zone>` whose A record is 127.0.0.1.

Settings that matter here (found by running it):
- `security-poll-suffix=` (empty): otherwise pdns asks the system resolver for
  `auth-4.7.3.security-status.secpoll.powerdns.com` at start, i.e. DNS traffic off this machine.
- `cache-ttl=0`, `negquery-cache-ttl=0`, `query-cache-ttl=0`, `zone-cache-refresh-interval=0`:
  a change made through the API is served by the very next query.
- `default-soa-content`: without it the SOA names `a.misconfigured.dns.server.invalid.`.
- `socket-dir`: the control socket goes to /var/run/pdns by default, which a test may not own.

This module imports only the standard library and requests (scripts import it too); dnspython is
imported by the readiness check only.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

import requests

from lab._process import Service
from lab.ports import LOOPBACK, free_port, wait_until

SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
PDNS_SERVER = "/usr/sbin/pdns_server"
PDNSUTIL = "/usr/bin/pdnsutil"
DEFAULT_ZONES = ("example.test.", "validation.test.", "other.test.")


class PowerDnsError(RuntimeError):
    """The server could not be set up or did not come up; the message carries its log."""


class PowerDns(Service):
    def __init__(
        self, zones: tuple[str, ...] = DEFAULT_ZONES, *, start_timeout: float = 20.0
    ) -> None:
        self.zones = tuple(z if z.endswith(".") else z + "." for z in zones)
        self.address = LOOPBACK
        self.port = 0
        self.api_port = 0
        self.api_key = secrets.token_urlsafe(24)
        self.server_id = "localhost"
        self._start_timeout = start_timeout
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.address}:{self.api_port}"

    @property
    def log(self) -> str:
        if self._dir is None or not (self._dir / "pdns.log").exists():
            return ""
        return (self._dir / "pdns.log").read_text(errors="replace")

    def start(self) -> None:
        if self._proc is not None:
            raise PowerDnsError("already started")
        self._dir = Path(tempfile.mkdtemp(prefix="certdrop-pdns-"))
        try:
            self._prepare()
            self._launch()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # --- internals ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        assert self._dir is not None
        database = self._dir / "pdns.sqlite3"
        with closing(sqlite3.connect(database)) as db:
            db.executescript(SCHEMA.read_text())
        self.port = free_port()
        self.api_port = free_port()
        settings = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(database),
            "local-address": self.address,
            "local-port": self.port,
            "webserver": "yes",
            "webserver-address": self.address,
            "webserver-port": self.api_port,
            "webserver-allow-from": f"{self.address}/32",
            "api": "yes",
            "api-key": self.api_key,
            "socket-dir": str(self._dir),
            "security-poll-suffix": "",
            "default-soa-content": "ns1.@ hostmaster.@ 1 10800 3600 604800 60",
            "cache-ttl": 0,
            "negquery-cache-ttl": 0,
            "query-cache-ttl": 0,
            "zone-cache-refresh-interval": 0,
            "guardian": "no",
            "daemon": "no",
            "disable-syslog": "yes",
            "write-pid": "no",
            "loglevel": 4,
        }
        conf = "".join(f"{key}={value}\n" for key, value in settings.items())
        (self._dir / "pdns.conf").write_text(conf)
        (self._dir / "pdns.conf").chmod(0o600)  # it holds the API key
        for zone in self.zones:
            self._pdnsutil("create-zone", zone, f"ns1.{zone}")
            self._pdnsutil("add-record", zone, "ns1", "A", "60", self.address)

    def _pdnsutil(self, *args: str) -> None:
        result = subprocess.run(
            [PDNSUTIL, "--config-dir", str(self._dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise PowerDnsError(f"pdnsutil {' '.join(args)} failed: {result.stderr.strip()}")

    def _launch(self) -> None:
        assert self._dir is not None
        with open(self._dir / "pdns.log", "wb") as log:
            self._proc = subprocess.Popen(
                [PDNS_SERVER, f"--config-dir={self._dir}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(self._ready, self._start_timeout, "PowerDNS answering DNS and its API")
        except TimeoutError as exc:
            raise PowerDnsError(f"{exc}\n--- pdns log ---\n{self.log}") from exc

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise PowerDnsError(
                f"pdns_server exited with {self._proc.returncode}\n--- pdns log ---\n{self.log}"
            )
        return self._answers_soa() and self._api_answers()

    def _answers_soa(self) -> bool:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        query = dns.message.make_query(self.zones[0], "SOA")
        try:
            response = dns.query.udp(query, self.address, port=self.port, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def _api_answers(self) -> bool:
        try:
            response = requests.get(
                f"{self.api_url}/api/v1/servers/{self.server_id}",
                headers={"X-API-Key": self.api_key},
                timeout=1,
            )
        except requests.RequestException:
            return False
        return response.status_code == 200
