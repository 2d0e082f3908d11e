"""Temp-admin mode (reference §8.1, case 36) against fake `syno*` tools and the DSM emulator."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lab.agent_lab import AgentLab, fingerprint
from lab.dsm_emulator import serve
from nas_agent import cycle
from nas_agent.config import parse_config
from nas_agent.config.errors import AgentConfigError
from nas_agent.errors import TempAdminError
from nas_agent.temp_admin import (
    OTP_JOURNAL_FILE,
    TEMP_ADMIN_USER,
    TempAdmin,
    new_password,
    otp_enforcement_lifted,
    temporary_admin,
)

PASSWORD = "Tmp0nlyForTests1"
OTP = "/etc/synoinfo.conf:otp_enforce_option"
FAKE = Path(__file__).with_name("fake_syno.py")
TOOLS = ("synouser", "synogroup", "synogetkeyvalue", "synosetkeyvalue")


class FakeSyno:
    """DSM's tools first on PATH, their state and call log in one directory."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.dir = root
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        for tool in TOOLS:
            script = bin_dir / tool
            script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {tool} "$@"\n')
            script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("FAKE_SYNO_DIR", str(root))
        self.members = ["admin", "alice"]
        self.otp = "admin"

    def switch(self, **switches: object) -> None:
        (self.dir / "switches.json").write_text(json.dumps(switches))

    def _json(self, name: str, default: object) -> object:
        path = self.dir / name
        return json.loads(path.read_text()) if path.exists() else default

    @property
    def members(self) -> list:
        return self._json("members.json", [])

    @members.setter
    def members(self, names: list) -> None:
        (self.dir / "members.json").write_text(json.dumps(names))

    @property
    def otp(self) -> str | None:
        return self._json("keyvalues.json", {}).get(OTP)

    @otp.setter
    def otp(self, value: str) -> None:
        (self.dir / "keyvalues.json").write_text(json.dumps({OTP: value}))

    def users(self) -> dict:
        return self._json("users.json", {})

    def calls(self) -> list:
        log = self.dir / "calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def syno(tmp_path, monkeypatch):
    return FakeSyno(tmp_path / "syno", monkeypatch)


def fixed_password() -> str:
    return PASSWORD


def refusal(host: str = "127.0.0.1") -> TempAdminError:
    """What `temporary_admin` raises before its block could run."""
    admin = temporary_admin(host, password_factory=fixed_password)
    with pytest.raises(TempAdminError) as caught, admin:
        pytest.fail("the block must not run")
    return caught.value


# --- the account ------------------------------------------------------------------------------


def test_a_new_user_is_made_administrator_with_memberadd_and_deleted_after(syno):
    with temporary_admin("127.0.0.1", password_factory=fixed_password) as admin:
        assert admin.username == TEMP_ADMIN_USER
        assert syno.users() == {TEMP_ADMIN_USER: PASSWORD}
        assert syno.members == ["admin", "alice", TEMP_ADMIN_USER]

    assert syno.users() == {}
    assert syno.members == ["admin", "alice"]
    calls = syno.calls()
    assert ["synouser", "--add", TEMP_ADMIN_USER, PASSWORD, "", "0", "", "0"] in calls
    assert ["synogroup", "--memberadd", "administrators", TEMP_ADMIN_USER] in calls
    assert not [c for c in calls if c[:2] == ["synogroup", "--member"]]
    assert calls[-1] == ["synouser", "--del", TEMP_ADMIN_USER]


def test_a_leftover_user_is_deleted_before_the_new_one_is_added(syno):
    with temporary_admin("localhost", password_factory=fixed_password):
        calls = syno.calls()
    delete = calls.index(["synouser", "--del", TEMP_ADMIN_USER])
    add = next(i for i, c in enumerate(calls) if c[:2] == ["synouser", "--add"])
    assert delete < add


def test_dsm6_member_gets_the_full_previous_list_plus_the_user(syno):
    syno.switch(groups="member")
    syno.members = ["admin", "bob", "carol"]

    with temporary_admin("::1", password_factory=fixed_password):
        assert syno.members == ["admin", "bob", "carol", TEMP_ADMIN_USER]

    assert [
        "synogroup",
        "--member",
        "administrators",
        "admin",
        "bob",
        "carol",
        TEMP_ADMIN_USER,
    ] in syno.calls()
    assert syno.members == ["admin", "bob", "carol"]
    assert syno.users() == {}


def test_dsm6_member_is_never_called_when_the_member_list_does_not_parse(syno):
    syno.switch(groups="member", members_text="(nothing readable here)\n")

    assert "would replace them" in str(refusal())

    assert not [c for c in syno.calls() if c[:2] == ["synogroup", "--member"]]
    assert syno.members == ["admin", "alice"]
    assert syno.users() == {}


def test_an_error_inside_the_block_still_deletes_the_user(syno):
    admin = temporary_admin("127.0.0.1", password_factory=fixed_password)
    with pytest.raises(RuntimeError, match="boom"), admin:
        raise RuntimeError("boom")

    assert syno.users() == {}
    assert syno.calls()[-1] == ["synouser", "--del", TEMP_ADMIN_USER]


def test_a_failing_add_is_a_clear_error_that_never_shows_the_password(syno):
    syno.switch(fail_add=True)

    error = refusal()

    assert "synouser failed with exit code 1" in str(error)
    assert PASSWORD not in str(error)
    assert "***" in error.command
    assert syno.users() == {}


@pytest.mark.parametrize("host", ["nas.example.com", "192.168.1.10", "127.0.0.2"])
def test_a_dsm_on_another_host_is_refused_before_any_tool_runs(syno, host):
    assert "not local" in str(refusal(host))

    assert syno.calls() == []


def test_not_being_root_is_refused_with_a_clear_message(syno):
    syno.switch(denied=True)

    assert "run the agent as root" in str(refusal())

    assert syno.calls() == [["synouser", "--help"]]


def test_missing_tools_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    assert "synouser not found" in str(refusal())


def test_passwords_are_16_random_letters_and_digits():
    passwords = {new_password() for _ in range(20)}

    assert len(passwords) == 20
    assert all(len(p) == 16 and p.isalnum() and p.isascii() for p in passwords)


# --- the 2FA policy ---------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path) -> Path:
    return tmp_path / "state" / OTP_JOURNAL_FILE


@pytest.fixture
def state_dir(journal) -> Path:
    journal.parent.mkdir()
    return journal.parent


def test_enforced_2fa_is_lifted_for_the_block_and_restored_even_when_it_raises(
    syno, journal, state_dir
):
    syno.otp = "user"

    with pytest.raises(RuntimeError), otp_enforcement_lifted(str(journal)):
        assert syno.otp == "none"
        raise RuntimeError("login failed")

    assert syno.otp == "user"
    assert not journal.exists()


def test_the_enforced_value_is_journaled_privately_before_it_is_lifted(syno, journal, state_dir):
    syno.otp = "admin"
    seen = []

    def run(argv, **options):
        if argv[0] == "synosetkeyvalue":
            seen.append((argv[-1], journal.exists() and json.loads(journal.read_text())["value"]))
        return subprocess.run(argv, **options)

    with otp_enforcement_lifted(str(journal), run=run):
        assert stat.S_IMODE(journal.stat().st_mode) == 0o600

    assert seen == [("none", "admin"), ("admin", "admin")]
    assert not journal.exists()


def test_a_killed_runs_journal_is_the_baseline_not_the_lifted_value_it_left(
    syno, journal, state_dir
):
    syno.otp = "admin"
    with otp_enforcement_lifted(str(journal)):
        pass
    syno.otp = "none"  # what a run killed inside its window leaves behind, with its journal:
    journal.write_text(json.dumps({"value": "admin"}))

    with otp_enforcement_lifted(str(journal)):
        assert syno.otp == "none"

    assert syno.otp == "admin"
    assert not journal.exists()


def test_recover_puts_back_a_journaled_value_and_runs_no_tool_without_one(syno, journal, state_dir):
    TempAdmin().recover(str(journal))
    assert syno.calls() == []

    syno.otp = "none"
    journal.write_text(json.dumps({"value": "user"}))
    TempAdmin().recover(str(journal))

    assert syno.otp == "user"
    assert not journal.exists()


def test_an_unreadable_journal_is_kept_and_named(syno, journal, state_dir):
    journal.write_text("{not json")

    with pytest.raises(TempAdminError) as caught, otp_enforcement_lifted(str(journal)):
        pytest.fail("2FA must not be lifted over a journal that cannot be read")

    assert str(journal) in str(caught.value) and "otp_enforce_option" in str(caught.value)
    assert journal.exists()
    assert syno.otp == "admin"


@pytest.mark.parametrize("value", ["none", None])
def test_nothing_is_changed_when_2fa_is_not_enforced(syno, journal, state_dir, value):
    if value is not None:
        syno.otp = value
    else:
        (syno.dir / "keyvalues.json").unlink()

    with otp_enforcement_lifted(str(journal)):
        pass

    assert [c[0] for c in syno.calls()] == ["synogetkeyvalue"]
    assert not journal.exists()


# --- a whole cycle against the DSM emulator ----------------------------------------------------


class TempAdminLab(AgentLab):
    """An AgentLab whose DSM knows the temporary account and whose config sets temp_admin."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.dsm.stop()
        self.dsm = serve(str(root / "dsm-temp"), 0, 0, TEMP_ADMIN_USER, PASSWORD)
        self.write_config()

    def write_config(self, *, dsm_url: str | None = None, extra_site: str = "") -> None:
        super().write_config(dsm_url=dsm_url, extra_site=extra_site)
        text = self.config_path.read_text()
        text = text.replace("username = certdrop\npassword_file = dsm-password\n", "")
        self.config_path.write_text(text.replace("[dsm]\n", "[dsm]\ntemp_admin = true\n"))


@pytest.fixture
def lab(tmp_path, syno):
    lab = TempAdminLab(tmp_path / "lab")
    yield lab
    lab.close()


def recording(lab: TempAdminLab, events: list):
    """Runs the tools, noting for each how many requests DSM had received by then."""

    def run(argv, **options):
        events.append((argv, len(lab.dsm.requests)))
        return subprocess.run(argv, **options)

    return run


def test_a_temp_admin_cycle_installs_and_leaves_no_user_behind(lab, syno):
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    syno.otp = "admin"
    events: list = []

    result = lab.run(temp_admin=TempAdmin(recording(lab, events), fixed_password))

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert lab.served() == fingerprint(plaintext)
    assert syno.users() == {}
    assert syno.members == ["admin", "alice"]
    assert syno.otp == "admin"
    requests = lab.dsm.requests
    logins = [i for i, r in enumerate(requests) if r.api_method == "login"]
    assert len(logins) == 1
    assert [r.api_method for r in requests].count("logout") == 1
    lifted = [seen for argv, seen in events if argv[0] == "synosetkeyvalue" and argv[-1] == "none"]
    restored = [
        seen for argv, seen in events if argv[0] == "synosetkeyvalue" and argv[-1] != "none"
    ]
    # Lifted right before the login request (no other request in between), restored right
    # after it: before any other request.
    assert lifted == [logins[0]]
    assert restored == [logins[0] + 1]
    deleted = [seen for argv, seen in events if argv[:2] == ["synouser", "--del"]][-1]
    assert deleted == len(requests)  # after the logout, the last request


def test_a_refused_login_deletes_the_user_and_restores_2fa(lab, syno):
    lab.publish(lab.plaintext(version=1))
    syno.otp = "user"

    result = lab.run(temp_admin=TempAdmin(password_factory=lambda: "not-" + PASSWORD))

    assert result.exit_code == cycle.EXIT_DSM
    assert syno.users() == {}
    assert syno.otp == "user"
    assert lab.imports() == 0


def test_a_refused_import_deletes_the_user_after_the_logout(lab, syno):
    lab.publish(lab.plaintext(version=1))
    lab.faults(fail_next_import=5512)
    events: list = []

    result = lab.run(temp_admin=TempAdmin(recording(lab, events), fixed_password))

    assert result.exit_code == cycle.EXIT_ROLLED_BACK, result.failures
    assert syno.users() == {}
    assert [r.api_method for r in lab.dsm.requests][-1] == "logout"
    assert events[-1] == (["synouser", "--del", TEMP_ADMIN_USER], len(lab.dsm.requests))


def test_2fa_left_lifted_by_an_agent_killed_in_the_login_window_is_restored_by_the_next_run(
    lab, syno, monkeypatch
):
    syno.otp = "admin"
    lab.account(otp_enforced=True)  # DSM's policy as synoinfo.conf says
    monkeypatch.setenv("FAKE_SYNO_DSM", lab.dsm.http_url)  # the tools change DSM's policy
    lab.publish(lab.plaintext(version=1))
    syno.switch(kill_on_lift=True)

    killed = lab.run_process("run", "--once")

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert syno.otp == "none"  # it died with 2FA lifted: no `finally` ran
    assert not lab.dsm.emulator.controls.account.otp_enforced
    syno.switch()

    result = lab.run(temp_admin=TempAdmin(password_factory=fixed_password))

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert syno.otp == "admin"
    assert lab.dsm.emulator.controls.account.otp_enforced
    lowered = [c for c in syno.calls() if c[0] == "synosetkeyvalue" and c[-1] == "none"]
    assert len(lowered) == 2  # the killed run's, and this run's around its own login
    assert syno.users() == {}


def test_not_being_root_fails_the_cycle_as_a_dsm_problem_naming_the_cause(lab, syno):
    lab.publish(lab.plaintext(version=1))
    syno.switch(denied=True)

    result = lab.run(temp_admin=TempAdmin(password_factory=fixed_password))

    assert result.exit_code == cycle.EXIT_DSM
    assert "run the agent as root" in result.failures[0]
    assert lab.dsm.requests == ()
    assert lab.state.last_error is not None


def test_the_daily_dsm_check_logs_in_as_a_fresh_temporary_admin_and_deletes_it(lab, syno):
    lab.write_index([])  # nothing new
    syno.otp = "admin"

    result = lab.run(temp_admin=TempAdmin(password_factory=fixed_password))

    assert result.exit_code == cycle.EXIT_OK, result.failures
    logins = [r for r in lab.dsm.requests if r.api_method == "login"]
    assert [r.form["account"] for r in logins] == [TEMP_ADMIN_USER]
    assert [r.api_method for r in lab.dsm.requests][-1] == "logout"
    assert syno.users() == {}
    assert syno.otp == "admin"
    assert lab.state.dsm_check is not None and lab.state.dsm_check.error is None


def test_the_daily_dsm_check_finds_that_temp_admin_cannot_work_here(lab, syno):
    lab.write_index([])
    syno.switch(denied=True)

    result = lab.run(temp_admin=TempAdmin(password_factory=fixed_password))

    assert result.exit_code == cycle.EXIT_DSM
    assert "run the agent as root" in result.failures[0]
    assert lab.state.dsm_check.error.code == "temp_admin.failed"


# --- configuration ----------------------------------------------------------------------------

_CONFIG = """
[agent]
id = nas-a
[source]
url = file:///srv/certdrop
[dsm]
{dsm}
[site:example.com]
hostnames = nas.example.com
"""


def test_temp_admin_needs_no_credentials_and_logs_in_as_the_temporary_user(tmp_path):
    config = parse_config(
        _CONFIG.format(dsm="url = https://localhost:5001\ntemp_admin = true"),
        str(tmp_path / "agent.conf"),
    )

    assert config.dsm.temp_admin
    assert config.dsm.username == TEMP_ADMIN_USER
    assert config.dsm.password_file is None and config.dsm.password_env is None


def test_temp_admin_refuses_configured_credentials_naming_each_key(tmp_path):
    dsm = "temp_admin = true\nusername = certdrop\npassword_env = DSM_PASSWORD"

    with pytest.raises(AgentConfigError) as caught:
        parse_config(_CONFIG.format(dsm=dsm), str(tmp_path / "agent.conf"))

    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"dsm.username", "dsm.password_env"}
    assert "temp_admin" in str(caught.value)


def test_temp_admin_refuses_a_dsm_on_another_host(tmp_path):
    dsm = "temp_admin = true\nurl = https://nas.example.com:5001"

    with pytest.raises(AgentConfigError) as caught:
        parse_config(_CONFIG.format(dsm=dsm), str(tmp_path / "agent.conf"))

    assert [p.key for p in caught.value.problems] == ["dsm.temp_admin"]
    assert "nas.example.com" in str(caught.value)


def test_without_temp_admin_the_credentials_are_still_required(tmp_path):
    with pytest.raises(AgentConfigError) as caught:
        parse_config(_CONFIG.format(dsm="url = https://localhost:5001"), str(tmp_path / "a.conf"))

    assert {p.key for p in caught.value.problems} == {"dsm.username", "dsm.password_file"}
