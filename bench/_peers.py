"""The peers bench/compare_peers times: Debian's `lego` (rfc2136 provider) and `certbot` with
`certbot-dns-rfc2136`, each one whole process issuing example.test + *.example.test from a local
Pebble through BIND (RFC 2136 updates signed with TSIG).

Both keep their defaults except what a loopback-only set-up needs: the CA's directory and the
root of its TLS listener, lego's resolver, and `--dns.disable-cp` (lego's check of every
authoritative nameserver resolves their names through the system resolver and queries port 53
beyond this machine). Every run gets a fresh directory, so each registers its ACME account: one
more request to Pebble. A run counts only if it exits 0 and leaves a certificate for both names.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from bench._loopback import destinations, traced

PACKAGES = ("lego", "certbot", "python3-certbot-dns-rfc2136")
NAMES = ("example.test", "*.example.test")
_EMAIL = "bench@example.test"


class PeerFailed(RuntimeError):
    """A peer's run exited non-zero or left no certificate for NAMES."""

    def __init__(self, tool: str, reason: str, log: Path) -> None:
        self.tool = tool
        self.reason = reason
        self.log = log
        lines = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
        super().__init__(f"{tool}: {reason} (log {log})\n" + "\n".join(lines))


@dataclass(frozen=True)
class Target:
    """Where the peers issue from: Pebble's directory and TLS root, BIND and its TSIG key."""

    directory_url: str
    ca_bundle: Path
    dns: str  # "127.0.0.1:PORT", authoritative for example.test, taking updates
    tsig_name: str
    tsig_secret: str  # base64, hmac-sha256


@dataclass(frozen=True)
class Run:
    seconds: float
    contacted: frozenset[str]  # "address:port" the process tried (empty without strace)


def missing_packages() -> list[str]:
    return [p for p in PACKAGES if not _installed(p)]


def install_missing() -> None:
    """Installs PACKAGES that are missing with apt-get, as `make debs` does; SystemExit naming
    the command to run when that is not possible (not root, no package source)."""
    missing = missing_packages()
    if not missing:
        return
    command = f"apt-get install -y {' '.join(missing)}"
    if os.geteuid() != 0:
        raise SystemExit(f"compare_peers needs {', '.join(missing)}: run `sudo {command}`")
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        if subprocess.run(argv, env=env, check=False).returncode != 0:
            raise SystemExit(f"`{' '.join(argv)}` failed; install by hand: `{command}`")


def lego(target: Target, workdir: Path) -> Run:
    host, _, port = target.dns.rpartition(":")
    argv = [
        "lego",
        f"--server={target.directory_url}",
        f"--email={_EMAIL}",
        "--accept-tos",
        "--dns=rfc2136",
        f"--dns.resolvers={host}:{port}",
        "--dns.disable-cp",
        *(f"--domains={name}" for name in NAMES),
        f"--path={workdir}",
        "run",
    ]
    env = {
        "LEGO_CA_CERTIFICATES": str(target.ca_bundle),
        "RFC2136_NAMESERVER": target.dns,
        "RFC2136_TSIG_KEY": target.tsig_name,
        "RFC2136_TSIG_SECRET": target.tsig_secret,
        "RFC2136_TSIG_ALGORITHM": "hmac-sha256.",
    }
    return _timed("lego", argv, env, workdir, workdir / "certificates" / f"{NAMES[0]}.crt")


def certbot(target: Target, workdir: Path) -> Run:
    host, _, port = target.dns.rpartition(":")
    credentials = workdir / "rfc2136.ini"
    workdir.mkdir(parents=True)
    # certbot warns about credentials others can read; create the file owner-only.
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as ini:
        ini.write(
            f"dns_rfc2136_server = {host}\n"
            f"dns_rfc2136_port = {port}\n"
            f"dns_rfc2136_name = {target.tsig_name}\n"
            f"dns_rfc2136_secret = {target.tsig_secret}\n"
            "dns_rfc2136_algorithm = HMAC-SHA256\n"
        )
    argv = [
        "certbot",
        "certonly",
        "--non-interactive",
        "--agree-tos",
        f"--email={_EMAIL}",
        "--no-eff-email",  # the default already subscribes no one; said so nothing is sent to EFF
        f"--server={target.directory_url}",
        "--dns-rfc2136",
        f"--dns-rfc2136-credentials={credentials}",
        *(f"--domain={name}" for name in NAMES),
        f"--config-dir={workdir / 'config'}",
        f"--work-dir={workdir / 'work'}",
        f"--logs-dir={workdir / 'logs'}",
    ]
    env = {"REQUESTS_CA_BUNDLE": str(target.ca_bundle)}
    live = workdir / "config" / "live" / NAMES[0] / "cert.pem"
    return _timed("certbot", argv, env, workdir, live)


def certificate_names(pem: Path) -> tuple[str, ...]:
    """The DNS names of the first certificate in `pem`, sorted."""
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return tuple(sorted(san.get_values_for_type(x509.DNSName)))


def _timed(tool: str, argv: list[str], extra_env: dict[str, str], workdir: Path, cert: Path) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    log, trace = workdir.with_suffix(".log"), workdir.with_suffix(".trace")
    # Proxy variables must not send loopback requests anywhere else.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra_env)
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.run(
            traced(argv, trace), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
        seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise PeerFailed(tool, f"exit status {process.returncode}", log)
    if not cert.exists():
        raise PeerFailed(tool, f"no certificate at {cert}", log)
    if certificate_names(cert) != tuple(sorted(NAMES)):
        raise PeerFailed(tool, f"certificate names {certificate_names(cert)}", log)
    return Run(seconds, frozenset(destinations(trace)))


def _installed(package: str) -> bool:
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return status.stdout.strip() == "install ok installed"
