"""The .spk's lifecycle as DSM 7 runs it (tests/spk/package_center.py): its scripts with DSM's
SYNOPKG_* environment and the wizard's answers, as the package's own user (not root), with a
bare CPython 3.8 standing in for DSM's /usr/bin/python3 (no site-packages; the launcher runs it
with -I -S). The operator's side is `certdrop` with Pebble, BIND and a directory store; the NAS's
DSM is the emulator.

The emulated NAS lives in a folder every user may enter (pytest's own temporary folders are
root's alone), and so does the store, which stands for a bucket both sides write: on one disk,
the agent's user must own what the issuer (root, here) created in it, so each `certdrop` command
is followed by a chown. The package's user, `certdrop-agent`, is made if missing and removed
again afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lab.dsm_emulator import EmulatorHandle, serve
from lab.issuer_config import bind_config
from lab.ports import wait_until
from tests.spk.conftest import world_folder
from tests.spk.package_center import (
    STATUS_RUNNING,
    STATUS_STOPPED,
    PackageCenter,
    PackageUser,
    ScriptFailed,
)
from tests.spk.spk_file import Spk

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "certdrop", "s3cret for the emulator"
AGENT_ID, SITE, DOMAIN = "nas-1", "example", "example.test"
INVITE_PREFIX = "certdrop-invite-v1:"


@pytest.fixture
def dsm(tmp_path) -> Iterator[EmulatorHandle]:
    with serve(str(tmp_path / "dsm"), 0, 0, USER, PASSWORD) as handle:
        yield handle


class Operator:
    """`certdrop` run by the operator (root here) against a directory store."""

    def __init__(self, folder: Path, pebble, bind, user: PackageUser):
        self.config = bind_config(folder, pebble, bind)
        self.store = folder / "store"
        self.user = user

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cloud.cli", "--config", str(self.config.source), *args],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        assert done.returncode == 0, f"certdrop {' '.join(args)}: {done.stdout}{done.stderr}"
        subprocess.run(["chown", "-R", f"{self.user.uid}:{self.user.gid}", str(self.store)])
        return done.stdout

    def invite(self) -> str:
        said = self.run("agent", "invite", AGENT_ID, "--site", SITE, "--source", self.source)
        return [line for line in said.splitlines() if line.startswith(INVITE_PREFIX)][-1]

    @property
    def source(self) -> str:
        return self.config.storage.store_url


@pytest.fixture
def operator(pebble, bind_auth, the_package_user) -> Iterator[Operator]:
    folder = world_folder("certdrop-operator-")
    try:
        operator = Operator(folder, pebble, bind_auth, the_package_user)
        operator.run("init")
        yield operator
    finally:
        shutil.rmtree(folder)


def _wizard(line: str, dsm: EmulatorHandle) -> dict[str, str]:
    """The install wizard's answers (WIZARD_UIFILES/install_uifile), as DSM exports them."""
    return {
        "wizard_invite_line": line,
        "wizard_dsm_user": USER,
        "wizard_dsm_password": PASSWORD,
        "wizard_otp": "",
        "wizard_dsm_url": dsm.https_url,
    }


def _accepted_by_the_wizard(spk: Spk, wizard: dict[str, str]) -> bool:
    """Every answer matches its field's validator in install_uifile (a JavaScript /regex/; these
    patterns mean the same in Python)."""
    for step in spk.json("WIZARD_UIFILES/install_uifile"):
        for item in step["items"]:
            for field in item["subitems"]:
                pattern = field.get("validator", {}).get("regex", {}).get("expr")
                if pattern and not re.fullmatch(pattern.strip("/"), wizard[field["key"]]):
                    return False
    return True


def _runs(nas: PackageCenter) -> int:
    """Cycles the service finished so far (the log and its rotated generation)."""
    logs = [nas.log, nas.log.with_name(nas.log.name + ".1")]
    return sum(p.read_text().count(" service: run exited ") for p in logs if p.exists())


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _wait_for_runs(nas: PackageCenter, count: int, timeout: float = 120) -> None:
    try:
        wait_until(lambda: _runs(nas) >= count, timeout, f"cycle {count} of the service")
    except TimeoutError as exc:
        pytest.fail(f"{exc}:\n" + (nas.log.read_text() if nas.log.exists() else "(no log)"))


def _served(dsm: EmulatorHandle) -> x509.Certificate:
    pem = ssl.get_server_certificate((dsm.host, dsm.https_port))
    return x509.load_pem_x509_certificate(pem.encode())


def _names(certificate: x509.Certificate) -> list[str]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return extension.value.get_values_for_type(x509.DNSName)


def _digests(folder: Path, *names: str) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_dsm_installs_the_package_which_joins_serves_once_approved_and_survives_an_upgrade(
    nas, operator, dsm, second_build, first_build
):
    line = operator.invite()
    before = _served(dsm)
    wizard = _wizard(line, dsm)
    assert _accepted_by_the_wizard(first_build["x86_64"], wizard)

    # Install: the wizard's answers reach postinst, which joins; the service starts.
    nas.install(first_build["x86_64"], wizard)
    data = nas.var / "agent"

    assert f"certdrop agent approve {AGENT_ID}" in "".join(nas.messages)
    assert nas.status() == STATUS_RUNNING
    assert _mode(data) == 0o700
    assert {_mode(p) for p in data.rglob("*") if p.is_file()} == {0o600}
    assert {p.stat().st_uid for p in nas.var.rglob("*")} == {nas.user.uid}
    assert not list(nas.var.glob(".dsm-password*"))  # the wizard's copy went with the join
    assert PASSWORD not in nas.log.read_text() and line not in nas.log.read_text()
    _wait_for_runs(nas, 1)  # not approved yet: the run finds nothing, the loop sleeps
    assert not [c for c in nas.processes().values() if "python" in c], nas.processes()

    # The operator approves and issues; Package Center's Stop and Run start a cycle at once
    # (otherwise the next poll, an hour on, installs it).
    operator.run("agent", "approve", AGENT_ID)
    operator.run("issue", SITE)
    nas.stop()
    assert nas.status() == STATUS_STOPPED and not nas.processes()
    nas.start()
    _wait_for_runs(nas, 2)

    first = _served(dsm)
    state = json.loads((data / "state.json").read_text())
    assert first.fingerprint(hashes.SHA256()) != before.fingerprint(hashes.SHA256())
    assert DOMAIN in _names(first)
    assert state["sites"][SITE]["version"] == 1
    assert state["sites"][SITE]["fingerprint"] == first.fingerprint(hashes.SHA256()).hex()
    assert f"installed: {SITE}" in nas.log.read_text()
    assert not [c for c in nas.processes().values() if "python" in c]

    # Upgrade to build 2 while version 2 of the certificate waits: the new version's first
    # cycle installs it, as the same agent with the setup it kept.
    kept = _digests(data, "agent.conf", "dsm-password")
    keys = {p.name: p.read_bytes() for p in (data / "keys").iterdir()}
    operator.run("issue", SITE)
    nas.upgrade(second_build["x86_64"])
    _wait_for_runs(nas, 3)

    second = _served(dsm)
    state = json.loads((data / "state.json").read_text())
    assert nas.version.endswith("-0002")
    assert second.fingerprint(hashes.SHA256()) != first.fingerprint(hashes.SHA256())
    assert state["sites"][SITE]["version"] == 2
    assert state["sites"][SITE]["fingerprint"] == second.fingerprint(hashes.SHA256()).hex()
    assert _digests(data, "agent.conf", "dsm-password") == kept
    assert {p.name: p.read_bytes() for p in (data / "keys").iterdir()} == keys
    assert nas.status() == STATUS_RUNNING

    # Uninstall, keeping the data: the service is gone, its data stays where DSM keeps it.
    nas.uninstall({"wizard_keep_data": "true"})

    assert not nas.processes()
    assert not nas.folders["target"].exists()
    assert {"agent.conf", "state.json", "keys", "dsm-password"} <= {
        p.name for p in (nas.folders["var"] / "agent").iterdir()
    }
    assert {p.name: p.read_bytes() for p in (nas.folders["var"] / "agent" / "keys").iterdir()} == (
        keys
    )


def test_a_reinstall_carries_on_with_kept_data_and_an_uninstall_keeping_nothing_empties_it(
    nas, operator, dsm, first_build
):
    spk = first_build["x86_64"]
    nas.install(spk, _wizard(operator.invite(), dsm))
    _wait_for_runs(nas, 1)
    data = nas.var / "agent"
    keys = {p.name: p.read_bytes() for p in (data / "keys").iterdir()}
    nas.uninstall({"wizard_keep_data": "true"})

    # Installed again, the wizard's line left empty: the kept setup is the same agent.
    nas.install(spk, {**_wizard("", dsm), "wizard_dsm_password": ""})

    assert "earlier setup was kept" in nas.messages[-1]
    assert {p.name: p.read_bytes() for p in (data / "keys").iterdir()} == keys
    _wait_for_runs(nas, 2)

    # Its log, past 1 MiB, is rotated before the next cycle: one older generation is kept.
    nas.stop()
    with nas.log.open("a") as log:
        log.writelines("x" * 80 + "\n" for _ in range(14_000))
    nas.start()
    rotated = nas.log.with_name(nas.log.name + ".1")
    # Not _wait_for_runs: read across the rotation, the old log counts twice (once under each
    # name). Once LOG.1 is there, LOG is the fresh one.
    wait_until(
        lambda: rotated.exists() and " service: run exited " in _text(nas.log),
        120,
        "a cycle written to the fresh log",
    )

    assert rotated.stat().st_size > 2**20
    assert nas.log.stat().st_size < 10_000
    assert " service: run exited " in nas.log.read_text()
    # The service's own output follows the rotation, rather than growing the rotated file.
    service = [
        pid for pid, command in nas.processes().items() if "certdrop-agent-service" in command
    ]
    assert service and all(
        os.readlink(f"/proc/{pid}/fd/{fd}") == str(nas.log.resolve())
        for pid in service
        for fd in (1, 2)
    )

    # Uninstalled with the box unticked: nothing of the agent is left.
    nas.uninstall({"wizard_keep_data": "false"})

    assert list(nas.folders["var"].iterdir()) == []
    assert not nas.processes()


def test_the_install_stops_before_unpacking_anything_when_the_line_is_not_an_invitation(
    nas, dsm, first_build
):
    wizard = _wizard("certdrop-agent-v1:nas-1:not-an-invitation", dsm)

    with pytest.raises(ScriptFailed) as refused:
        nas.install(first_build["x86_64"], wizard)

    assert "not an invitation line" in refused.value.messages
    assert not nas.folders["target"].exists() and not nas.home.exists()


def test_an_install_without_a_line_or_kept_data_fails_saying_what_to_paste(nas, dsm, first_build):
    with pytest.raises(ScriptFailed) as refused:
        nas.install(first_build["x86_64"], _wizard("", dsm))

    assert "Paste the invitation line" in refused.value.messages


def test_a_configuration_problem_stops_the_service_which_says_why_in_its_log(
    nas, operator, dsm, first_build
):
    nas.install(first_build["x86_64"], _wizard(operator.invite(), dsm))
    _wait_for_runs(nas, 1)
    nas.stop()
    conf = nas.var / "agent" / "agent.conf"
    conf.write_text(conf.read_text().replace("[dsm]", "[dsm]\ntimeout = soon"))

    nas.start()
    try:
        wait_until(lambda: nas.status() != STATUS_RUNNING, 60, "the service to stop")
    except TimeoutError as exc:
        pytest.fail(f"{exc}:\n{nas.log.read_text()}")

    log = nas.log.read_text()
    assert "timeout" in log and "run exited 2" in log and "stopping" in log
    assert not nas.processes()
