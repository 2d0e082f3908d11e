"""`make demo`: a small fleet on one machine, with the commands a user would type.

Starts BIND (the DNS server of example.test, shop.test and vault.test, taking RFC 2136 updates),
Pebble (the ACME CA) and three DSM emulators (three NAS units, one of them with a 2FA account), all
on 127.0.0.1. Then, through the real `certdrop` and `certdrop-agent` commands: init the issuer,
add a second site, add a third one by DNS-PERSIST-01 (no DNS credentials: its owner creates the
record `certdrop site persist-record` prints, once, by an RFC 2136 update as `nsupdate` would,
and `certdrop doctor` checks it and the store's conditional writes) in agent custody (its key
is made on nas-office, which sends a CSR), onboard the three NAS units by invite → join →
approve (the 2FA unit's join remembers it as a device with a one-time code), issue the two
issuer-custody sites, run each agent once (nas-office posts its CSR), issue vault with it, show
what each emulated DSM serves, scan every object of the store (escrow copies opened), and
everything the issuer printed, for vault's key, rotate the issuer's signing key and watch the
agents follow it, and end with the operator's status table and how to open the dashboard.
Everything it started is stopped at the end; its files are under .demo/ (or $CERTDROP_DEMO_DIR)
and are replaced by the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from demo.key_scan import key_scan  # noqa: E402
from lab.bind import BindServer, TsigKey, Zone  # noqa: E402
from lab.pebble import Pebble  # noqa: E402
from lab.ports import free_port, wait_until  # noqa: E402
from nas_agent import totp  # noqa: E402 (after the path is set)

BIN = Path(sys.executable).parent
ZONES = ("example.test", "shop.test", "vault.test")
DSM_USER, DSM_PASSWORD = "certdrop", "demo-password-not-a-secret"
OTP_SECRET = "JBSWY3DPEHPK3PXP"  # the 2FA unit's authenticator secret (a demo value)


@dataclass(frozen=True)
class Nas:
    agent_id: str
    sites: tuple[tuple[str, str], ...]  # (site, a host name it must cover); the first is default
    two_factor: bool = False

    @property
    def hostname(self) -> str:
        """The SNI of the handshake that shows what DSM serves: its default certificate's."""
        return self.sites[0][1]


FLEET = (  # vault is in agent custody: nas-office makes its key, which never leaves it
    Nas("nas-office", (("vault", "files.vault.test"),)),
    Nas("nas-shop", (("shop", "files.shop.test"),)),
    Nas("nas-home", (("example", "home.example.test"), ("shop", "home.shop.test")), True),
)


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


ISSUER_OUTPUT: list[str] = []  # everything the issuer's commands printed, logs included


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
    if command[0] == "certdrop":
        ISSUER_OUTPUT.append(done.stdout)
    if done.stdout.strip():
        print(textwrap.indent(done.stdout.rstrip(), "    "), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"demo failed: {command[0]} {command[1:3]} exited {done.returncode}")
    return done.stdout


def word_starting(output: str, prefix: str) -> str:
    return next(w for w in output.split() if w.startswith(prefix))


def main() -> None:
    work = Path(os.environ.get("CERTDROP_DEMO_DIR", REPO / ".demo"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    operator = ("certdrop", "-c", work / "certdrop.toml")

    step("starting BIND (example.test, shop.test, vault.test), Pebble and 3 DSM emulators")
    tsig = TsigKey.generate("certdrop-demo")
    (work / "tsig.secret").write_text(tsig.secret)
    zones = [Zone(f"{z}.", nameservers=("ns1", "ns2")) for z in ZONES]
    with contextlib.ExitStack() as stack:
        bind = stack.enter_context(BindServer(work / "bind", zones, tsig))
        pebble = stack.enter_context(Pebble(work / "pebble", bind.address))
        ports = {nas.agent_id: stack.enter_context(_Emulator(work, nas)) for nas in FLEET}
        print(f"    BIND {bind.address}, Pebble {pebble.directory_url}")
        for nas in FLEET:
            two = " (2FA account)" if nas.two_factor else ""
            print(
                f"    {nas.agent_id}: DSM https://127.0.0.1:{ports[nas.agent_id].https_port}{two}"
            )
        _write_cloud_config(work, bind, pebble)

        step("the issuer: create its signing and escrow keys (once), add a second site")
        run(*operator, "init")
        run(*operator, "site", "add", "shop", "--domain", "shop.test", "--provider", "bind")

        step(
            "a site by DNS-PERSIST-01 (the issuer holds no DNS credentials for vault.test) and in"
            " agent custody (its key is made on the NAS, the issuer sees only a CSR)"
        )
        run(*operator, "site", "add", "vault", "--domain", "vault.test",
            "--challenge", "dns-persist-01", "--key-custody", "agent")  # fmt: skip
        printed = run(*operator, "site", "persist-record", "vault")
        print("    its owner creates that record once at the DNS host of vault.test:")
        record = next(line for line in printed.splitlines() if line.startswith("_"))
        print(f"$ printf 'update add {record.replace(' IN ', ' ')}\\nsend\\n' | nsupdate -y ...")
        bind.update_add("vault.test.", record)
        run(*operator, "doctor")

        step("each NAS joins in three steps: invite, join (keys made on the NAS), approve")
        for nas in FLEET:
            sites = [arg for site, _ in nas.sites for arg in ("--site", site)]
            line = word_starting(
                run(*operator, "agent", "invite", nas.agent_id, *sites), "certdrop-invite-v1:"
            )
            otp = ["--otp", totp.totp(OTP_SECRET, time.time())] if nas.two_factor else []
            run("certdrop-agent", "join", line, "--dir", work / nas.agent_id,
                "--dsm-user", DSM_USER, "--dsm-password-file", _password_file(work, nas),
                "--dsm-url", f"https://127.0.0.1:{ports[nas.agent_id].https_port}",
                *otp)  # fmt: skip
            run(*operator, "agent", "approve", nas.agent_id)

        step("issue every due site (DNS-01, DNS-PERSIST-01), publish each, sealed, for its agents")
        run(*operator, "run")

        step(
            "each agent polls, verifies, opens and imports its bundles into its DSM; nas-office"
            " also makes vault's key and posts a signed CSR"
        )
        for nas in FLEET:
            run("certdrop-agent", "-c", work / nas.agent_id / "agent.conf", "run", "--once")

        step("the issuer orders vault's certificate with nas-office's CSR: leaf and chain only")
        run(*operator, "run")
        run("certdrop-agent", "-c", work / "nas-office" / "agent.conf", "run", "--once")

        step("what each emulated DSM serves now (a TLS handshake on its HTTPS port)")
        served = {nas.agent_id: _show_served(nas, ports[nas.agent_id].https_port) for nas in FLEET}

        step("vault's key is on nas-office only: every object, escrow opened, every issuer log")
        print(textwrap.indent(key_scan(work, served["nas-office"], ISSUER_OUTPUT), "    "))

        step("the issuer rotates its signing key: agents follow the signed chain, no NAS touched")
        confs = {nas.agent_id: work / nas.agent_id / "agent.conf" for nas in FLEET}
        before = {agent: conf.read_bytes() for agent, conf in confs.items()}
        run(*operator, "issuer", "rotate")
        run(*operator, "issue", "example")  # a new version, signed by the new key only
        for nas in FLEET:
            run("certdrop-agent", "-c", confs[nas.agent_id], "run", "--once")
        unchanged = all(confs[agent].read_bytes() == before[agent] for agent in confs)
        if not unchanged:
            raise SystemExit("demo: an agent.conf changed during the rotation")
        print("    every agent.conf is byte for byte what it was before the rotation")

        step("the operator's view")
        run(*operator, "status")
    print(
        f"\ndemo done in {time.monotonic() - started:.1f} s; everything it started is stopped.\n"
        f"The dashboard of this fleet: {BIN / 'certdrop'} -c {work / 'certdrop.toml'} "
        "dashboard --port 8080, then open http://127.0.0.1:8080/"
    )


class _Emulator:
    """An emulated NAS, in a process of its own: `python -m lab.dsm_emulator` in the background."""

    def __init__(self, work: Path, nas: Nas):
        self.https_port = free_port()
        self.log_path = work / f"{nas.agent_id}-dsm.log"
        data = work / f"{nas.agent_id}-dsm"
        self.command = [
            str(BIN / "python"), "-m", "lab.dsm_emulator", "--data", str(data),
            "--http-port", str(free_port()), "--https-port", str(self.https_port),
            "--user", DSM_USER, "--password", DSM_PASSWORD,
        ]  # fmt: skip
        if nas.two_factor:
            self.command += ["--otp-secret", OTP_SECRET]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> _Emulator:
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._listening, 20, f"the DSM emulator on port {self.https_port}")
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
    nameservers = "\n".join(f'"ns{i}.{zone}" = "{bind.address}"' for zone in ZONES for i in (1, 2))
    (work / "certdrop.toml").write_text(
        textwrap.dedent(
            f"""\
            # The demo's issuer: Pebble as the CA, BIND as the DNS, a directory as the store.
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

            [dns.nameservers]   # ask these for the zones' NS, never the system's resolver
            """
        )
        + nameservers
        + textwrap.dedent(
            f"""

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


def _password_file(work: Path, nas: Nas) -> Path:
    """What the NAS's administrator types into the package wizard, as a file for `join`."""
    path = work / f"{nas.agent_id}.dsm-password"
    path.write_text(DSM_PASSWORD)
    os.chmod(path, 0o600)
    return path


def _show_served(nas: Nas, port: int) -> x509.Certificate:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=nas.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    leaf = x509.load_der_x509_certificate(der)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns_names = names.get_values_for_type(x509.DNSName)
    days = (leaf.not_valid_after_utc - datetime.now(UTC)).days
    print(f"    {nas.agent_id}")
    print(f"      sha256   {hashlib.sha256(der).hexdigest()}")
    print(f"      names    {', '.join(dns_names)}")
    print(f"      expires  {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({days} days)")
    if (
        not any(n.startswith("*.") for n in dns_names)
        or "Pebble" not in leaf.issuer.rfc4514_string()
    ):
        raise SystemExit(f"demo failed: {nas.agent_id} does not serve a new wildcard certificate")
    return leaf


if __name__ == "__main__":
    main()
