"""`make demo`: the whole pipeline on one machine, with the commands a user would type.

Starts BIND (the DNS server of example.test, taking RFC 2136 updates), Pebble (the ACME CA) and
the DSM emulator (the NAS), all on 127.0.0.1; then, through the real `certdrop` and
`certdrop-agent` commands: init the issuer, enroll an agent, register it for one site, issue
example.test + *.example.test, run the agent once, and show what the emulated DSM now serves.
Everything it started is stopped at the end; its files are under .demo/ (or $CERTDROP_DEMO_DIR)
and are replaced by the next run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.services.bind import BindServer, TsigKey, Zone  # noqa: E402 (after the path is set)
from tests.services.pebble import Pebble  # noqa: E402
from tests.services.ports import free_port, wait_until  # noqa: E402

BIN = Path(sys.executable).parent
DSM_USER, DSM_PASSWORD = "certdrop", "demo-password-not-a-secret"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(*command: str | Path) -> str:
    """Runs a certdrop command, echoing it and its output (progress and result in the order
    they were written); stops the demo if it fails."""
    shown = " ".join(str(c) if " " not in str(c) else f"'{c}'" for c in command)
    print(f"$ {shown.replace(str(REPO) + '/', '')}", flush=True)
    done = subprocess.run(
        [str(BIN / str(command[0])), *map(str, command[1:])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.stdout.strip():
        print(textwrap.indent(done.stdout.rstrip(), "    "), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"demo failed: {command[0]} {command[1:3]} exited {done.returncode}")
    return done.stdout


def line_starting(output: str, prefix: str) -> str:
    return next(w for w in output.split() if w.startswith(prefix))


def main() -> None:
    work = Path(os.environ.get("CERTDROP_DEMO_DIR", REPO / ".demo"))
    shutil.rmtree(work, ignore_errors=True)
    (work / "nas" / "keys").mkdir(parents=True)
    started = time.monotonic()

    step("starting BIND (example.test), Pebble (ACME CA) and the DSM emulator on 127.0.0.1")
    tsig = TsigKey.generate("certdrop-demo")
    (work / "tsig.secret").write_text(tsig.secret)
    zone = Zone("example.test.", nameservers=("ns1", "ns2"))
    dsm_http, dsm_https = free_port(), free_port()
    with (
        BindServer(work / "bind", [zone], tsig) as bind,
        Pebble(work / "pebble", bind.address) as pebble,
        _dsm_emulator(work, dsm_http, dsm_https),
    ):
        print(
            f"    BIND {bind.address}, Pebble {pebble.directory_url}, DSM https://127.0.0.1:{dsm_https}"
        )
        _write_cloud_config(work, bind, pebble)

        step("the issuer: create its signing and escrow keys (once)")
        issuer_line = line_starting(
            run("certdrop", "-c", work / "certdrop.toml", "init"), "certdrop-issuer-v1:"
        )

        step("the NAS: enroll the agent (its keys never leave the NAS)")
        _write_agent_config(work, issuer_line, dsm_https)
        token = line_starting(
            run("certdrop-agent", "-c", work / "nas" / "agent.conf", "enroll"), "certdrop-agent-v1:"
        )

        step("the operator: register the agent for the site")
        run("certdrop", "-c", work / "certdrop.toml", "agent", "add", token, "--site", "example")

        step("issue example.test + *.example.test by DNS-01 and publish it, sealed, for the agent")
        run("certdrop", "-c", work / "certdrop.toml", "issue", "example")

        step("the agent polls, verifies, opens and imports the bundle into DSM")
        run("certdrop-agent", "-c", work / "nas" / "agent.conf", "run", "--once")

        step("what the emulated DSM serves now (TLS handshake on its HTTPS port)")
        _show_served(dsm_https)
    print(f"\ndemo done in {time.monotonic() - started:.1f} s; everything it started is stopped")


class _dsm_emulator:
    """The emulator as a user would run it: `certdrop-agent dsm-emulator` in the background."""

    def __init__(self, work: Path, http_port: int, https_port: int):
        self.command = [
            str(BIN / "certdrop-agent"), "dsm-emulator", "--data", str(work / "dsm"),
            "--http-port", str(http_port), "--https-port", str(https_port),
            "--user", DSM_USER, "--password", DSM_PASSWORD,
        ]  # fmt: skip
        self.https_port = https_port
        self.work = work
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> _dsm_emulator:
        self.log = open(self.work / "dsm-emulator.log", "w")
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._listening, 20, "the DSM emulator listening")
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.https_port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def _write_cloud_config(work: Path, bind: BindServer, pebble: Pebble) -> None:
    (work / "certdrop.toml").write_text(
        textwrap.dedent(
            f"""\
            [ca]
            directory = "{pebble.directory_url}"
            ca_bundle = "{pebble.ca_bundle}"
            terms_agreed = true
            contact = "demo@example.test"

            [storage]
            url = "store"
            keys_dir = "keys"

            [dns]
            resolvers = ["{bind.address}"]

            [dns.nameservers]   # ask these for the zone's NS, never the system's resolver
            "ns1.example.test" = "{bind.address}"
            "ns2.example.test" = "{bind.address}"

            [providers.bind]
            type = "rfc2136"
            server = "{bind.address}"
            tsig_name = "{bind.tsig.name}"
            tsig_secret = "file:{work / "tsig.secret"}"

            [sites.example]
            domain = "example.test"
            provider = "bind"
            """
        )
    )


def _write_agent_config(work: Path, issuer_line: str, dsm_https: int) -> None:
    nas = work / "nas"
    (nas / "dsm-password").write_text(DSM_PASSWORD)
    os.chmod(nas / "dsm-password", 0o600)
    (nas / "agent.conf").write_text(
        textwrap.dedent(
            f"""\
            [agent]
            id = demo-nas
            issuer_key = {issuer_line}

            [source]
            url = {(work / "store").as_uri()}

            [dsm]
            url = https://127.0.0.1:{dsm_https}
            username = {DSM_USER}
            password_file = dsm-password
            # the emulator's own self-signed certificate until the first import
            insecure = true

            [site:example]
            hostnames = nas.example.test
            make_default = true
            """
        )
    )


def _show_served(port: int) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="nas.example.test") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    leaf = x509.load_der_x509_certificate(der)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    days = (leaf.not_valid_after_utc - datetime.now(UTC)).days
    print(f"    sha256   {hashlib.sha256(der).hexdigest()}")
    print(f"    names    {', '.join(san.get_values_for_type(x509.DNSName))}")
    print(f"    issuer   {leaf.issuer.rfc4514_string()}")
    print(f"    expires  {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({days} days)")
    if "*.example.test" not in san.get_values_for_type(x509.DNSName):
        raise SystemExit("demo failed: DSM does not serve the wildcard certificate")
    print("    DSM serves the new wildcard certificate.")


if __name__ == "__main__":
    main()
