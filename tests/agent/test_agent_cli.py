"""`certdrop-agent enroll`, `dsm-login` and `run` as a NAS admin runs them, and what they say
about mistakes in agent.conf."""

from __future__ import annotations

import subprocess
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


def _set(lab: AgentLab, section: str, line: str) -> None:
    """agent.conf with `line` added at the top of `[section]`, replacing the lab's own value."""
    text = lab.config_path.read_text()
    key = line.split("=", 1)[0].strip()
    kept = [row for row in text.splitlines() if not row.startswith(f"{key} =")]
    text = "\n".join(kept) + "\n"
    lab.config_path.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))


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


@pytest.mark.parametrize("bad", ["5", "10s", "fortnight", "169h", "9" * 400])
def test_run_every_refuses_intervals_below_a_minute_above_a_week_or_unreadable(lab, bad):
    """Above a week (as for poll_interval): before, `--every 99999999999999h` was taken, and
    time.sleep raised OverflowError after the first cycle (a traceback, exit 1)."""
    done = lab.run_process("run", "--every", bad)

    assert done.returncode == 2
    assert "argument --every" in done.stderr


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("agent", "poll_interval = " + "9" * 400, "agent.poll_interval"),
        ("dsm", "timeout = 9999999999", "dsm.timeout"),
        ("dsm", "confirm_timeout = " + "9" * 400, "dsm.confirm_timeout"),
    ],
    ids=["poll_interval-400-digits", "dsm-timeout-10-digits", "confirm_timeout-400-digits"],
)
def test_a_duration_too_large_to_use_is_a_configuration_error_not_a_crash(lab, section, line, key):
    """README: `poll_interval` "3600, 3600s, 60m or 1h"; `timeout = 90  #
    seconds per DSM request`; `confirm_timeout = 60`; exit "2 | configuration ... problem", "1 |
    a bug (the traceback is printed)". The duration grammar had a minimum and no maximum, and a
    long digit string is float('inf'): the file was accepted, then `run --once` crashed after
    logging in to DSM — ValueError "Out of range float values are not JSON compliant" (the
    config digest) or OverflowError "timestamp too large to convert to C _PyTime_t" (the DSM
    socket, already for timeout = 9999999999): a traceback, exit 1. Now a poll interval is at
    most a week and a timeout at most an hour."""
    lab.publish(lab.plaintext(version=1))
    _set(lab, section, line)

    done = lab.run_process("run", "--once")

    assert "Traceback" not in done.stderr, done.stderr[-800:]
    assert done.returncode == 2
    assert key in done.stderr


def test_run_every_with_a_poll_interval_too_long_to_sleep_does_not_crash(lab):
    """README: `poll_interval = 1h  # how often the agent runs: run --every's pause`;
    `certdrop-agent -c agent.conf run --every 15m  # or a loop`. Before, `poll_interval =
    99999999999999h` passed the config check and `run --once` (exit 0), but `run --every`
    crashed once its first cycle was done: time.sleep raised OverflowError ("sleep length is
    too large"), a traceback, exit 1 — a loop the Task Scheduler or the package's service
    thought was running had died. Expected: refused as configuration (exit 2) or slept."""
    _set(lab, "agent", "poll_interval = 99999999999999h")

    process = lab.spawn("run", "--every")
    try:
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            return  # still looping: sleeping as told
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Traceback" not in stderr, stderr[-800:]
    assert process.returncode == 2


@pytest.mark.parametrize("endpoint", ["https://minio.lan:9000x", "http://[::1"])
def test_a_mistyped_endpoint_url_is_a_configuration_problem_not_a_traceback(lab, endpoint):
    """From an independent review, failing before the fix: the check took any http(s):// prefix,
    and the first request ended in a traceback (exit 1, "a bug")."""
    text = lab.config_path.read_text()
    credentials = lab.root / "agent" / "aws"
    credentials.write_text(
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s\n"
    )
    credentials.chmod(0o600)
    source = (
        f"[source]\nurl = s3://bucket/p\nendpoint_url = {endpoint}\n"
        f"credentials_file = {credentials}\ntimeout = 2\n\n"
    )
    lab.config_path.write_text(
        text[: text.index("[source]")] + source + text[text.index("[dsm]") :]
    )

    done = lab.run_process("run", "--once")

    assert "Traceback" not in done.stderr, done.stderr[-800:]
    assert done.returncode == cycle.EXIT_CONFIG, done.stderr
    assert "source.endpoint_url" in done.stderr


def test_dsm_login_remembers_the_device_so_runs_need_no_code(tmp_path, monkeypatch):
    lab = AgentLab(tmp_path, otp_secret=OTP_SECRET)
    try:
        lab.publish(lab.plaintext(version=1))
        code = totp.totp(OTP_SECRET, time.time())

        # The code from the environment, as the package's installer gives it (off argv).
        monkeypatch.setenv("CERTDROP_DSM_OTP", code)
        login = lab.run_process("dsm-login")
        monkeypatch.delenv("CERTDROP_DSM_OTP")
        device_file = lab.root / "agent" / "dsm-device-id"
        run = lab.run_process("run", "--once")

        assert login.returncode == 0, login.stderr
        assert device_file.stat().st_mode & 0o777 == 0o600
        assert device_file.read_text().strip() not in login.stdout + login.stderr
        assert run.returncode == cycle.EXIT_OK, run.stderr
    finally:
        lab.close()
