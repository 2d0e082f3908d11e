"""An idle run of the agent (the index unchanged) imports none of what installing needs (issue 16):
no bundle opening, no DSM client, no requests, no X.509, no HPKE. On a NAS that is most runs, and
those imports were most of a run's time and memory on DSM's Python 3.8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from lab.agent_lab import REPO, AgentLab

_HEAVY = (
    "requests",
    "urllib3",
    "boto3",
    "botocore",
    "cryptography.x509",
    "cryptography.hazmat.primitives.hpke",
    "nas_agent.bundle.sealed",
    "nas_agent.bundle.checks",
    "nas_agent.dsm.client",
    "nas_agent.install",
)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[AgentLab]:
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def _idle_run_modules(lab: AgentLab) -> set[str]:
    report = "sys.__stderr__.write('MODULES' + json.dumps(sorted(sys.modules)))"
    code = (
        f"import atexit, json, sys, warnings\natexit.register(lambda: {report})\n"
        "warnings.filterwarnings('ignore', message='Python 3.8 is no longer supported')\n"
        "from nas_agent.cli import main\nsys.exit(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--config", str(lab.config_path), "run", "--once"],
        capture_output=True,
        text=True,
        cwd=str(lab.root),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "index unchanged" in done.stderr
    return set(json.loads(done.stderr.rsplit("MODULES", 1)[1]))


def test_an_idle_run_imports_nothing_that_installing_needs(lab: AgentLab) -> None:
    lab.publish(lab.plaintext(version=1))
    first = lab.run_process("run", "--once")
    assert first.returncode == 0, first.stderr

    loaded = _idle_run_modules(lab)

    assert not set(_HEAVY) & loaded
