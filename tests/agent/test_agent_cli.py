"""`certdrop-agent enroll`, `dsm-login` and `run` as a NAS admin runs them."""

from __future__ import annotations

import time

import pytest

from lab.agent_lab import AgentLab
from nas_agent import cycle, totp
from nas_agent.enrollment import parse_enrollment_token
from tests.agent.dsm_fixtures import OTP_SECRET


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def test_enroll_writes_owner_only_keys_and_prints_a_token_that_parses(lab):
    keys = lab.root / "agent" / "keys"
    for path in keys.iterdir():
        path.unlink()  # the lab enrolled already; start from a NAS without keys

    done = lab.run_process("enroll")

    assert done.returncode == 0, done.stderr
    token = next(w for w in done.stdout.split() if w.startswith("certdrop-agent-v1:"))
    assert parse_enrollment_token(token).agent_id == "nas-a"
    modes = {p.name: p.stat().st_mode & 0o777 for p in keys.iterdir()}
    assert modes and set(modes.values()) == {0o600}
    assert "PRIVATE KEY" not in done.stdout + done.stderr


def test_enroll_refuses_to_replace_existing_keys(lab):
    before = {p.name: p.read_bytes() for p in (lab.root / "agent" / "keys").iterdir()}

    done = lab.run_process("enroll")

    assert done.returncode == cycle.EXIT_CONFIG
    assert "refusing to overwrite a key" in done.stderr
    assert {p.name: p.read_bytes() for p in (lab.root / "agent" / "keys").iterdir()} == before


def test_run_refuses_a_password_file_others_can_read_naming_it(lab):
    (lab.root / "agent" / "dsm-password").chmod(0o644)

    done = lab.run_process("run", "--once")

    assert done.returncode == cycle.EXIT_CONFIG
    assert "dsm-password" in done.stderr
    assert "chmod 600" in done.stderr


@pytest.mark.parametrize("bad", ["5", "10s", "fortnight"])
def test_run_every_refuses_intervals_below_a_minute_or_unreadable(lab, bad):
    done = lab.run_process("run", "--every", bad)

    assert done.returncode == 2
    assert "duration" in done.stderr or "once a minute" in done.stderr


def test_dsm_login_remembers_the_device_so_runs_need_no_code(tmp_path):
    lab = AgentLab(tmp_path, otp_secret=OTP_SECRET)
    try:
        lab.publish(lab.plaintext(version=1))
        code = totp.totp(OTP_SECRET, time.time())

        login = lab.run_process("dsm-login", "--otp", code)
        device_file = lab.root / "agent" / "dsm-device-id"
        run = lab.run_process("run", "--once")

        assert login.returncode == 0, login.stderr
        assert device_file.stat().st_mode & 0o777 == 0o600
        assert device_file.read_text().strip() not in login.stdout + login.stderr
        assert run.returncode == cycle.EXIT_OK, run.stderr
    finally:
        lab.close()
