"""`make demo`'s script, run as CI runs it: it must end with DSM serving the new wildcard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "demo" / "run.py"


def test_the_demo_ends_with_dsm_serving_the_new_wildcard_certificate(tmp_path):
    for _ in range(2):  # re-running it works
        done = subprocess.run(
            [sys.executable, str(DEMO)],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "CERTDROP_DEMO_DIR": str(tmp_path / "demo")},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "names    example.test, *.example.test" in done.stdout
        assert done.stdout.rstrip().endswith("everything it started is stopped")
    assert "DSM serves the new wildcard certificate." in done.stdout
