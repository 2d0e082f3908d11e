"""The agent's cycle with index v2: frozen on an expired index (also when the source answers
"not modified"), the upgrade window for v1, and following issuer key rotations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lab.agent_lab import SITE, AgentLab, now
from nas_agent.bundle import build_index, sign_entry
from nas_agent.cycle import EXIT_FROZEN, EXIT_OK, EXIT_REFUSED
from nas_agent.state import load_state


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    try:
        yield lab
    finally:
        lab.dsm.stop()


def _state(lab: AgentLab):
    return load_state(str(lab.root / "agent" / "state.json"))


def test_an_index_held_past_its_expiry_freezes_the_agent_even_when_unchanged(lab):
    lab.publish(lab.plaintext(version=1))
    assert lab.run().exit_code == EXIT_OK
    expires = _state(lab).index.expires_at

    unchanged_before = lab.run(now=lambda: expires - timedelta(seconds=1))
    unchanged_after = lab.run(now=lambda: expires)

    assert unchanged_before.exit_code == EXIT_OK and unchanged_before.index_unchanged
    assert unchanged_after.exit_code == EXIT_FROZEN
    assert "expired" in unchanged_after.failures[0]
    assert _state(lab).frozen


def test_a_fresh_index_thaws_a_frozen_agent(lab):
    lab.publish(lab.plaintext(version=1))
    assert lab.run().exit_code == EXIT_OK
    later = now() + timedelta(days=8)
    assert lab.run(now=lambda: later).exit_code == EXIT_FROZEN

    lab.write_index(lab.entries(), issued_at=later)  # the issuer signs it again
    thawed = lab.run(now=lambda: later + timedelta(minutes=1))

    assert thawed.exit_code == EXIT_OK, thawed.failures
    assert not _state(lab).frozen


def _v1_index(lab: AgentLab, version: int) -> None:
    plaintext = lab.plaintext(version=version)
    published = lab.world.publish(plaintext, lab.agent_id)
    prefix = lab.store / "agents" / lab.agent_id
    (prefix / published.entry.object_key).parent.mkdir(parents=True, exist_ok=True)
    (prefix / published.entry.object_key).write_bytes(published.sealed)
    entry = sign_entry(
        plaintext, published.sealed, agent_id=lab.agent_id, signing_key=lab.signing_key
    )
    (prefix / "index.json").write_bytes(build_index([entry]))


def test_upgrade_opens_a_30_day_window_for_v1_and_v2_closes_it(lab):
    _v1_index(lab, 1)
    refused = lab.run()
    upgraded = lab.run_process("upgrade")
    again = lab.run_process("upgrade")
    in_window = lab.run()

    assert refused.exit_code == EXIT_REFUSED
    assert upgraded.returncode == 0, upgraded.stderr
    assert "accept_index_v1_until" in lab.config_path.read_text()
    assert "already set" in again.stdout
    assert in_window.exit_code == EXIT_OK, in_window.failures
    assert in_window.installed == (SITE,)
    assert lab.run(now=lambda: now() + timedelta(days=31)).exit_code == EXIT_REFUSED

    lab.publish(lab.plaintext(version=2))
    assert lab.run().exit_code == EXIT_OK
    _v1_index(lab, 3)
    assert lab.run().exit_code == EXIT_REFUSED
    assert _state(lab).last_error.code == "bundle.index_downgrade"


def test_the_agent_follows_two_rotations_and_installs_under_the_newest_key(lab):
    lab.publish(lab.plaintext(version=1))
    assert lab.run().exit_code == EXIT_OK
    lab.rotate()
    lab.rotate()
    lab.publish(lab.plaintext(version=2))

    result = lab.run()

    assert result.exit_code == EXIT_OK, result.failures
    assert result.installed == (SITE,)
    trust = _state(lab).index.trust
    assert trust.sequence == 2
    assert _state(lab).installed(SITE).signed_by == trust.key_id


def test_a_rotation_resets_what_the_retired_key_signed(lab):
    """TUF's fast-forward: a version the retired key signed does not hold back the new key."""
    lab.versions = {}
    lab.publish(lab.plaintext(version=9))
    assert lab.run().exit_code == EXIT_OK
    lab.rotate()
    lab.publish(lab.plaintext(version=3))

    result = lab.run()

    assert result.exit_code == EXIT_OK, result.failures
    assert result.installed == (SITE,)


def test_upgrade_edits_an_agent_conf_saved_with_a_byte_order_mark(lab):
    """The agent reads an agent.conf that begins with a UTF-8 byte order mark (Windows
    Notepad); `upgrade` did not find its `[agent]` line behind the mark and stopped with a
    traceback (ValueError "has no [agent] line")."""
    _v1_index(lab, 1)
    lab.config_path.write_bytes(b"\xef\xbb\xbf" + lab.config_path.read_text().lstrip().encode())

    upgraded = lab.run_process("upgrade")

    assert upgraded.returncode == 0, upgraded.stderr
    assert lab.run().exit_code == EXIT_OK
