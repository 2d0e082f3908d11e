"""The agent checks once a day, and after a change of its configuration or credential files,
that DSM still accepts its login, even with nothing new to install; a refusal shows in the
status report and the exit code, and is not retried at every poll."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from lab.agent_lab import AgentLab, now
from nas_agent import cycle, totp
from nas_agent.status import verify_status
from tests.agent.dsm_fixtures import OTP_SECRET


def nothing_published(lab: AgentLab) -> AgentLab:
    """The cloud has published no certificate for this agent yet: an index without entries."""
    lab.write_index([])
    return lab


@pytest.fixture
def lab(tmp_path):
    lab = nothing_published(AgentLab(tmp_path))
    yield lab
    lab.close()


def logins(lab: AgentLab) -> list:
    return [r for r in lab.dsm.requests if r.api_method == "login"]


def methods(lab: AgentLab) -> list:
    return [r.api_method for r in lab.dsm.requests if r.api == "SYNO.API.Auth"]


def report(lab: AgentLab) -> dict:
    body = (lab.store / "agents" / "nas-a" / "status.json").read_bytes()
    agent = lab.world.agents["nas-a"]
    return verify_status(body, agent_id="nas-a", public_key=agent.signing_key.public_key())


def run_at(lab: AgentLab, moment):
    return lab.run(now=lambda: moment)


def test_with_nothing_published_dsm_is_checked_once_a_day_by_a_login_and_a_logout(lab):
    start = now()

    first = run_at(lab, start)
    later = run_at(lab, start + timedelta(hours=23))
    next_day = run_at(lab, start + timedelta(hours=24))

    assert [r.exit_code for r in (first, later, next_day)] == [cycle.EXIT_OK] * 3
    assert methods(lab) == ["login", "logout", "login", "logout"]
    check = lab.state.dsm_check
    assert check is not None and check.error is None
    assert check.at == start + timedelta(hours=24)
    assert report(lab)["dsm_check"] == {
        "at": check.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "error": None,
    }


def test_a_password_changed_on_dsm_is_reported_within_a_day_with_nothing_new(lab):
    start = now()
    lab.publish(lab.plaintext(version=1))
    assert run_at(lab, start).installed  # the install's login counts as the day's check
    lab.dsm.emulator.password = "changed by someone on DSM"

    quiet = run_at(lab, start + timedelta(hours=1))
    checked = run_at(lab, start + timedelta(days=1, minutes=1))

    assert quiet.exit_code == cycle.EXIT_OK
    assert checked.exit_code == cycle.EXIT_DSM
    assert "DSM login check" in checked.failures[0]
    assert len(logins(lab)) == 2
    state = lab.state
    assert state.dsm_check.error.code == "dsm.login_wrong_password"
    assert state.last_error.code == "dsm.login_wrong_password"
    sent = report(lab)
    assert sent["dsm_check"]["error"]["code"] == "dsm.login_wrong_password"
    assert sent["failing"] is True


def test_a_refused_login_is_not_retried_at_every_poll_and_stays_reported(lab):
    start = now()
    lab.dsm.emulator.password = "not what the agent has"
    assert run_at(lab, start).exit_code == cycle.EXIT_DSM

    for hours in (1, 2, 12):
        assert run_at(lab, start + timedelta(hours=hours)).exit_code == cycle.EXIT_OK

    assert len(logins(lab)) == 1  # each refusal counts towards DSM's auto-block
    assert report(lab)["failing"] is True
    assert report(lab)["dsm_check"]["error"]["code"] == "dsm.login_wrong_password"


def test_a_wrong_password_file_exits_with_the_dsm_code_at_the_next_run_and_a_fix_clears_it(lab):
    lab.publish(lab.plaintext(version=1))
    assert lab.run_process("run", "--once").returncode == cycle.EXIT_OK
    password = lab.root / "agent" / "dsm-password"
    correct = password.read_text()
    password.write_text("wrong")

    wrong = lab.run_process("run", "--once")

    assert wrong.returncode == cycle.EXIT_DSM, wrong.stderr
    assert "certdrop-agent: DSM login check" in wrong.stderr
    assert report(lab)["dsm_check"]["error"]["code"] == "dsm.login_wrong_password"
    assert report(lab)["failing"] is True

    password.write_text(correct)
    fixed = run_at(lab, now() + timedelta(minutes=15))  # the next scheduled run

    assert fixed.exit_code == cycle.EXIT_OK, fixed.failures
    assert report(lab)["dsm_check"]["error"] is None
    assert report(lab)["failing"] is False
    assert len(logins(lab)) == 3


def test_a_change_to_agent_conf_checks_dsm_at_the_next_run(lab):
    start = now()
    run_at(lab, start)
    run_at(lab, start + timedelta(minutes=15))
    assert len(logins(lab)) == 1

    lab.config_path.write_text(lab.config_path.read_text().replace("timeout = 10", "timeout = 20"))
    run_at(lab, start + timedelta(minutes=30))

    assert len(logins(lab)) == 2


def test_an_unreachable_dsm_is_checked_again_at_the_next_run(lab):
    start = now()
    lab.write_config(dsm_url="https://127.0.0.1:9")
    down = run_at(lab, start)
    assert down.exit_code == cycle.EXIT_DSM
    assert lab.state.dsm_check.error.code == "dsm.unreachable"
    lab.write_config()  # the same file as at first: DSM is back, and the next run sees it

    back = run_at(lab, start + timedelta(minutes=15))

    assert back.exit_code == cycle.EXIT_OK
    assert lab.state.dsm_check.error is None
    assert len(logins(lab)) == 1


def test_a_2fa_account_is_checked_with_its_remembered_device_and_a_revoked_one_reported(tmp_path):
    lab = nothing_published(AgentLab(tmp_path, otp_secret=OTP_SECRET))
    try:
        code = totp.totp(OTP_SECRET, time.time())
        assert lab.run_process("dsm-login", "--otp", code).returncode == cycle.EXIT_OK
        start = now()

        remembered = run_at(lab, start)

        assert remembered.exit_code == cycle.EXIT_OK, remembered.failures
        check = logins(lab)[-1]
        assert "device_id" in check.form and "otp_code" not in check.form
        lab.dsm.emulator.devices.revoke_all()

        revoked = run_at(lab, start + timedelta(days=1))
        after = run_at(lab, start + timedelta(days=1, hours=1))

        assert revoked.exit_code == cycle.EXIT_DSM
        assert "dsm-login" in revoked.failures[0]
        assert lab.state.dsm_check.error.code == "dsm.login_device_revoked"
        assert not (lab.root / "agent" / "dsm-device-id").exists()
        # Clearing the device file is the check's own doing: no second login right after.
        assert after.exit_code == cycle.EXIT_OK
        assert len(logins(lab)) == 3  # dsm-login's, the day's check, the next day's
    finally:
        lab.close()
