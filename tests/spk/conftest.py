"""The packages under test, built for real by tools/build_spk.py once per session: build 1 for
x86_64 and aarch64, and build 2 for x86_64 (the upgrade), from one snapshot of the sources; and
the emulated NAS they are installed on (`nas`: Package Center, the package's own user, DSM's
Python 3.8 in a folder that user may enter).

Building downloads wheels from the package index, so these fixtures skip, saying so, when the
index cannot be reached or no CPython 3.8 is here; as for the agent's bundle
(tests/agent/test_agent_bundle.py, whose helpers these reuse).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.test_agent_bundle import _index_unreachable, _python38, _snapshot
from tests.spk.package_center import PackageCenter, PackageUser, package_user
from tests.spk.spk_file import Spk

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "build_spk.py"
ARCHES = ("x86_64", "aarch64")
PACKAGE = "certdrop-agent"


@pytest.fixture(scope="session")
def python38() -> str:
    python = _python38()
    if python is None:
        pytest.skip("no CPython 3.8 here (pyenv 3.8.18 or python3.8) to build for DSM's")
    return python


@pytest.fixture(scope="session")
def spk_source(python38: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _index_unreachable(python38, tmp_path_factory.mktemp("probe"))
    if reason is not None:
        pytest.skip(f"the package index is unreachable, and building downloads wheels: {reason}")
    return _snapshot(tmp_path_factory.mktemp("source"))


def build_spks(python: str, source: Path, out: Path, build: int, *arches: str) -> dict[str, Spk]:
    command = [sys.executable, str(BUILD_SCRIPT), "--python", python, "--build", str(build)]
    for arch in arches:
        command += ["--arch", arch]
    done = subprocess.run(
        [*command, "--source", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {arch: Spk(next(out.glob(f"certdrop-agent-*-{arch}.spk"))) for arch in arches}


@pytest.fixture(scope="session")
def first_build(
    python38: str, spk_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Spk]:
    return build_spks(python38, spk_source, tmp_path_factory.mktemp("build-1"), 1, *ARCHES)


@pytest.fixture(scope="session")
def second_build(
    python38: str, spk_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Spk]:
    return build_spks(python38, spk_source, tmp_path_factory.mktemp("build-2"), 2, "x86_64")


def world_folder(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def the_package_user() -> Iterator[PackageUser]:
    if os.geteuid() != 0:
        pytest.skip("running scripts as the package's own user needs root, as DSM has")
    made = False
    try:
        pwd.getpwnam(PACKAGE)
    except KeyError:
        command = ["useradd", "--system", "--user-group", "--no-create-home"]
        command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PACKAGE]
        subprocess.run(command, check=True, capture_output=True)
        made = True
    yield package_user(PACKAGE)
    if made:
        subprocess.run(["userdel", PACKAGE], check=False, capture_output=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@pytest.fixture(scope="session")
def dsm_python(python38: str) -> Iterator[str]:
    """DSM's /usr/bin/python3 as far as the package can tell: CPython 3.8 with nothing installed,
    where the package's user may run it. pyenv's lives under /root, which no other user may
    enter: its files are linked (or copied) into a folder anyone may, without site-packages,
    behind a script that finds its libpython."""
    prefix = Path(python38).resolve().parents[1]
    folder = world_folder("certdrop-dsm-python-")
    python = folder / "python3.8"

    def leave_out(directory: str, names: list[str]) -> list[str]:
        if Path(directory) == prefix / "lib" / "python3.8":
            return [n for n in names if n in {"site-packages", "test", "idlelib", "tkinter"}]
        return [n for n in names if n == "include"] if Path(directory) == prefix else []

    shutil.copytree(prefix, python, symlinks=True, copy_function=_link_or_copy, ignore=leave_out)
    (python / "lib" / "python3.8" / "site-packages").mkdir()
    stand_in = folder / "python3"
    stand_in.write_text(
        f'#!/bin/sh\nLD_LIBRARY_PATH="{python}/lib" exec "{python}/bin/python3.8" "$@"\n'
    )
    stand_in.chmod(0o755)
    yield str(stand_in)
    shutil.rmtree(folder)


@pytest.fixture
def nas(the_package_user, dsm_python) -> Iterator[PackageCenter]:
    root = world_folder("certdrop-nas-")
    center = PackageCenter(root, PACKAGE, the_package_user, dsm_python)
    try:
        yield center
    finally:
        center.close()
        shutil.rmtree(root)
