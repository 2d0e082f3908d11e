"""The agent's whole cycle against a directory source and the DSM emulator."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import timedelta

import pytest

from lab.agent_lab import SITE, AgentLab, fingerprint, now
from nas_agent import cycle
from nas_agent.bundle.sealed import MAX_SEALED_BYTES
from nas_agent.status import verify_status


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def test_a_published_bundle_is_installed_served_and_recorded(lab):
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert result.installed == (SITE,)
    assert lab.served() == fingerprint(plaintext)
    installed = lab.state.installed(SITE)
    assert installed.version == 1
    assert installed.fingerprint == fingerprint(plaintext)
    assert lab.state.last_error is None


def test_an_unchanged_index_costs_one_request_and_imports_nothing(lab):
    lab.publish(lab.plaintext(version=1))
    lab.run()
    imports = lab.imports()

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK
    assert result.index_unchanged
    assert result.requests == 1
    assert result.body_bytes == 0
    assert lab.imports() == imports


def test_a_new_version_replaces_the_certificate_in_place(lab):
    lab.publish(lab.plaintext(version=1))
    lab.run()
    first_id = lab.state.installed(SITE).dsm_certificate_id
    second = lab.plaintext(version=2)
    lab.publish(second)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert lab.served() == fingerprint(second)
    assert lab.state.installed(SITE).dsm_certificate_id == first_id
    assert lab.state.installed(SITE).version == 2


def test_the_status_report_is_signed_by_the_agent(lab):
    lab.publish(lab.plaintext(version=1))
    lab.run()

    body = (lab.store / "agents" / "nas-a" / "status.json").read_bytes()
    report = verify_status(
        body, agent_id="nas-a", public_key=lab.world.agents["nas-a"].signing_key.public_key()
    )

    assert report["sites"][SITE]["version"] == 1
    assert report["failing"] is False
    assert "PRIVATE KEY" not in body.decode()


# --- refused bundles never reach DSM ---------------------------------------------------------


def _tamper(lab):
    entry = lab.publish(lab.plaintext(version=1))
    path = lab.sealed_path(entry)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))


def _for_another_agent(lab):
    lab.publish(lab.plaintext(version=1), for_agent="nas-b")


def _expired(lab):
    lab.publish(
        lab.plaintext(
            version=1, not_before=now() - timedelta(days=90), not_after=now() - timedelta(days=1)
        )
    )


def _wrong_names(lab):
    lab.publish(lab.plaintext(version=1, names=("other.test", "*.other.test")))


@pytest.mark.parametrize(
    ("make_bad", "error_code", "whole_index"),
    [
        (_tamper, "bundle.sealed_hash_mismatch", False),
        # Another agent's index copied here: refused as a whole, before any site.
        (_for_another_agent, "bundle.wrong_agent", True),
        (_expired, "bundle.certificate_expired", False),
        (_wrong_names, "bundle.names_not_covered", False),
    ],
)
def test_a_refused_bundle_never_reaches_dsm(lab, make_bad, error_code, whole_index):
    served = lab.served()
    make_bad(lab)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED
    assert lab.imports() == 0
    assert lab.served() == served
    assert lab.state.last_error.code == error_code
    assert lab.state.last_error.site == (None if whole_index else SITE)
    assert lab.state.installed(SITE) is None


def test_a_replayed_older_version_is_refused(lab):
    old = lab.plaintext(version=1)
    lab.publish(old)
    lab.publish(lab.plaintext(version=2))
    lab.run()
    imports = lab.imports()
    lab.publish(old)  # an attacker with write access puts the old signed entry back

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED
    assert lab.imports() == imports
    assert lab.state.last_error.code == "bundle.version_stale"
    assert lab.state.installed(SITE).version == 2


def test_a_huge_sealed_object_is_refused_without_reading_past_the_sealed_cap(lab):
    """From an independent review, failing before the fix: a sealed object was read up to the
    source's 1 MiB, not the ~256 KiB docs/threat-model.md promises whatever the server claims."""
    entry = lab.publish(lab.plaintext(version=1))
    index_size = (lab.store / "agents" / lab.agent_id / "index.json").stat().st_size
    lab.sealed_path(entry).write_bytes(b"\0" * (900 * 1024))

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED
    assert result.body_bytes <= index_size + MAX_SEALED_BYTES + 1, result.body_bytes
    assert lab.state.last_error.code == "bundle.sealed_object_malformed"
    assert lab.imports() == 0


def test_a_huge_index_is_refused_like_a_malformed_one_not_blamed_on_the_source(lab):
    """From an independent review, failing before the fix: an index past the source's 1 MiB cap
    was refused unread, but as "source unreachable" (exit 5), telling the operator to look at
    the network rather than at what the store serves."""
    lab.publish(lab.plaintext(version=1))
    (lab.store / "agents" / lab.agent_id / "index.json").write_bytes(b" " * (2 * 1024 * 1024))

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED
    assert lab.state.last_error.code == "bundle.index_malformed"
    assert lab.imports() == 0


def test_the_status_report_carries_a_refusal_by_its_code_for_the_site(lab):
    _wrong_names(lab)
    lab.run()

    body = (lab.store / "agents" / "nas-a" / "status.json").read_bytes()
    report = verify_status(
        body, agent_id="nas-a", public_key=lab.world.agents["nas-a"].signing_key.public_key()
    )

    assert report["failing"] is True
    assert report["last_error"]["code"] == "bundle.names_not_covered"
    assert report["site_errors"][SITE]["code"] == "bundle.names_not_covered"
    assert "other.test" in report["site_errors"][SITE]["message"]
    assert "kind" not in report["last_error"]


# --- DSM faults: DSM always ends serving a valid certificate ---------------------------------


def test_dsm_down_is_its_own_exit_code_and_changes_nothing(lab):
    lab.publish(lab.plaintext(version=1))
    lab.write_config(dsm_url="https://127.0.0.1:9")

    result = lab.run()

    assert result.exit_code == cycle.EXIT_DSM
    assert lab.state.installed(SITE) is None
    assert lab.state.last_error.code == "dsm.unreachable"


def test_a_wrong_password_is_reported_and_not_retried(lab):
    lab.publish(lab.plaintext(version=1))
    (lab.root / "agent" / "dsm-password").write_text("wrong")

    result = lab.run()

    assert result.exit_code == cycle.EXIT_DSM
    logins = [r for r in lab.dsm.requests if r.api_method == "login"]
    assert len(logins) == 1
    assert lab.state.last_error.code == "dsm.login_wrong_password"


def test_a_2fa_account_without_a_remembered_device_says_to_run_dsm_login(tmp_path):
    lab = AgentLab(tmp_path, otp_secret="JBSWY3DPEHPK3PXP")
    try:
        lab.publish(lab.plaintext(version=1))

        result = lab.run()

        assert result.exit_code == cycle.EXIT_DSM
        assert "dsm-login" in result.failures[0]
        assert lab.state.last_error.code == "dsm.login_otp_required"
    finally:
        lab.close()


def test_an_import_dsm_refuses_leaves_the_previous_certificate(lab):
    lab.publish(lab.plaintext(version=1))
    lab.run()
    served = lab.served()
    lab.publish(lab.plaintext(version=2))
    lab.faults(fail_next_import=5510)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_ROLLED_BACK
    assert lab.served() == served
    assert lab.state.installed(SITE).version == 1
    assert lab.state.last_error.code == "install.failed"


@pytest.mark.parametrize("when", ["before_apply", "after_apply"])
def test_a_connection_dropped_mid_import_ends_with_the_previous_certificate(lab, when):
    first = lab.plaintext(version=1)
    lab.publish(first)
    lab.run()
    lab.publish(lab.plaintext(version=2))
    lab.faults(drop_next_import=when)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_ROLLED_BACK
    assert lab.served() == fingerprint(first)
    assert lab.state.installed(SITE).version == 1
    assert "restored" in lab.state.last_error.message


def test_dsm_serving_the_old_certificate_after_import_is_rolled_back(lab):
    first = lab.plaintext(version=1)
    lab.publish(first)
    lab.run()
    lab.publish(lab.plaintext(version=2))
    lab.faults(keep_serving_old=True)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_ROLLED_BACK
    assert lab.served() == fingerprint(first)
    assert lab.state.installed(SITE).version == 1
    assert "does not serve the new certificate" in lab.state.last_error.message


def test_a_failed_install_is_retried_on_the_next_run(lab):
    lab.publish(lab.plaintext(version=1))
    lab.faults(fail_next_import=5510)
    assert lab.run().exit_code == cycle.EXIT_ROLLED_BACK
    assert lab.state.site_errors[SITE].code == "install.failed"

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert lab.state.installed(SITE).version == 1
    assert lab.state.site_errors == {}


def test_an_unreachable_source_is_its_own_exit_code(lab):
    lab.config_path.write_text(lab.config_path.read_text().replace(str(lab.store), "/nonexistent"))

    result = lab.run()

    assert result.exit_code == cycle.EXIT_SOURCE


def test_the_run_once_process_exits_with_the_cycle_code_and_one_line_per_failure(lab):
    lab.publish(lab.plaintext(version=1, names=("other.test",)))

    done = lab.run_process("run", "--once")

    assert done.returncode == cycle.EXIT_REFUSED
    assert "bundle refused" in done.stderr
    assert json.loads((lab.root / "agent" / "state.json").read_text())["last_error"]


def test_a_run_while_another_is_in_progress_does_nothing(lab):
    lab.publish(lab.plaintext(version=1))
    lock = os.open(str(lab.root / "agent" / "state.json.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other run

        result = lab.run()
    finally:
        os.close(lock)

    assert result.exit_code == cycle.EXIT_OK
    assert (result.requests, result.installed) == (0, ())
    assert lab.imports() == 0
    assert lab.run().installed == (SITE,)  # once it is gone


def test_the_status_report_names_the_dsm_generation(lab):
    lab.publish(lab.plaintext(version=1))

    lab.run()

    assert lab.state.dsm_version == "DSM 7 (Auth API v7)"


def test_one_dsm_login_serves_every_site_of_a_run(lab):
    lab.config_path.write_text(
        lab.config_path.read_text() + "\n[site:second.test]\nhostnames = www.second.test\n"
    )
    lab.publish(lab.plaintext(version=1))
    lab.publish(lab.plaintext(version=1, site="second.test", names=("*.second.test",)))

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert result.installed == (SITE, "second.test")
    assert [r.api_method for r in lab.dsm.requests].count("login") == 1
    assert [r.api_method for r in lab.dsm.requests].count("logout") == 1


def test_the_installed_version_named_with_another_certificate_is_refused_loudly(lab):
    first = lab.plaintext(version=1)
    lab.publish(first)
    lab.run()
    lab.publish(lab.plaintext(version=1))  # one version, a second certificate

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED
    assert lab.served() == fingerprint(first)  # DSM keeps what it had
    assert lab.state.last_error.code == "bundle.version_conflict"
    assert "version 1 is installed as certificate" in result.failures[0]
