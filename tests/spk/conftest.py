"""The packages under test, built for real by tools/build_spk.py once per session: build 1 for
x86_64 and aarch64, and build 2 for x86_64 (the upgrade), from one snapshot of the sources.

Building downloads wheels from the package index, so these fixtures skip, saying so, when the
index cannot be reached or no CPython 3.8 is here; as for the agent's bundle
(tests/agent/test_agent_bundle.py, whose helpers these reuse).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.test_agent_bundle import _index_unreachable, _python38, _snapshot
from tests.spk.spk_file import Spk

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "build_spk.py"
ARCHES = ("x86_64", "aarch64")


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
