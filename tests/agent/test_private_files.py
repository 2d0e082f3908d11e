"""The agent's own files and directories: temporary files with names nobody can plant in advance,
and directories only the agent's user can enter, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from lab.agent_lab import SITE, AgentLab
from nas_agent import cycle
from nas_agent.cli import main
from nas_agent.dsm.device import DeviceIdFile


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saving_the_device_id_never_writes_through_a_planted_temporary_file(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "dsm-device-id"
    os.symlink(victim, f"{path}.tmp")  # the name the file used to be written under

    DeviceIdFile(str(path)).save("device-1")

    assert victim.read_text() == "precious\n"
    assert not path.is_symlink() and mode(path) == 0o600
    assert DeviceIdFile(str(path)).load() == "device-1"


def test_saving_the_device_id_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "dsm-device-id"

    DeviceIdFile(str(path)).save("device-1")
    DeviceIdFile(str(path)).save("device-2")

    assert [p.name for p in tmp_path.iterdir()] == ["dsm-device-id"]
    assert DeviceIdFile(str(path)).load() == "device-2"


def test_the_directory_of_installed_copies_is_the_agents_alone(tmp_path, usual_umask):
    lab = AgentLab(tmp_path)
    try:
        lab.publish(lab.plaintext(version=1))
        result = lab.run()
    finally:
        lab.close()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    installed = tmp_path / "agent" / "installed"
    assert mode(installed) == 0o700
    assert mode(installed / SITE) == 0o700


def test_enroll_makes_the_keys_directory_and_its_parents_the_agents_alone(tmp_path, usual_umask):
    config = tmp_path / "agent.conf"
    config.write_text(
        "[agent]\nid = nas-a\nkeys_dir = private/keys\n[source]\nurl = file:///srv/certdrop\n"
        "[dsm]\nusername = certdrop\npassword_file = dsm-password\n"
        "[site:example.test]\nhostnames = nas.example.test\n"
    )

    assert main(["-c", str(config), "enroll"]) == cycle.EXIT_OK

    assert mode(tmp_path / "private") == 0o700
    assert mode(tmp_path / "private" / "keys") == 0o700
