"""Rollback without state: an agent that lost state.json never installs a certificate older than
the one DSM serves for the site, and re-adopts the one DSM already serves without importing it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lab.agent_lab import SITE, AgentLab, fingerprint, now
from nas_agent import cycle
from nas_agent.status import verify_status


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def _index(lab: AgentLab):
    return lab.store / "agents" / lab.agent_id / "index.json"


def _lose_state(lab: AgentLab) -> None:
    (lab.root / "agent" / "state.json").unlink()


def _report(lab: AgentLab) -> dict:
    body = (lab.store / "agents" / lab.agent_id / "status.json").read_bytes()
    public_key = lab.world.agents[lab.agent_id].signing_key.public_key()
    return verify_status(body, agent_id=lab.agent_id, public_key=public_key)


def _v1_then_v2(lab: AgentLab):
    """v1 (issued two days ago) installed, then v2 (today) installed; returns v1's index bytes."""
    first = lab.plaintext(version=1, not_before=now() - timedelta(days=2))
    lab.publish(first)
    assert lab.run().installed == (SITE,)
    yesterdays_index = _index(lab).read_bytes()
    second = lab.plaintext(version=2)
    lab.publish(second)
    assert lab.run().installed == (SITE,)
    assert lab.served() == fingerprint(second)
    return first, second, yesterdays_index


def test_agent_without_state_refuses_an_older_signed_index_restored_into_the_store(lab):
    _, second, yesterdays_index = _v1_then_v2(lab)
    imports = lab.imports()
    _lose_state(lab)
    # Someone with write access to the store restores yesterday's objects.
    _index(lab).write_bytes(yesterdays_index)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED, result.failures
    assert result.installed == ()
    assert lab.served() == fingerprint(second)
    assert lab.imports() == imports
    assert lab.state.installed(SITE) is None
    assert lab.state.site_errors[SITE].code == "bundle.older_than_installed"
    report = _report(lab)
    assert report["site_errors"][SITE]["code"] == "bundle.older_than_installed"
    assert report["failing"] is True


def test_agent_process_without_state_exits_with_the_refusal_code_on_a_rollback(lab):
    _, second, yesterdays_index = _v1_then_v2(lab)
    _lose_state(lab)
    _index(lab).write_bytes(yesterdays_index)

    done = lab.run_process("run", "--once")

    assert done.returncode == cycle.EXIT_REFUSED, done.stderr
    assert lab.state.site_errors[SITE].code == "bundle.older_than_installed"
    assert _report(lab)["site_errors"][SITE]["code"] == "bundle.older_than_installed"
    assert lab.served() == fingerprint(second)


def test_agent_without_state_adopts_what_dsm_serves_without_importing_it(lab):
    _, second, _ = _v1_then_v2(lab)
    before = lab.state.installed(SITE)
    imports = lab.imports()
    _lose_state(lab)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert result.installed == ()
    assert result.up_to_date == (SITE,)
    assert lab.imports() == imports
    assert lab.served() == fingerprint(second)
    rebuilt = lab.state.installed(SITE)
    assert rebuilt.version == 2
    assert rebuilt.fingerprint == fingerprint(second)
    assert rebuilt.dsm_certificate_id == before.dsm_certificate_id
    assert lab.state.site_errors == {}


def test_agent_without_state_still_installs_a_newer_certificate(lab):
    lab.publish(lab.plaintext(version=1, not_before=now() - timedelta(days=2)))
    lab.run()
    _lose_state(lab)
    second = lab.plaintext(version=2)
    lab.publish(second)

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert result.installed == (SITE,)
    assert lab.served() == fingerprint(second)
    assert lab.state.installed(SITE).version == 2


def test_agent_with_state_refuses_a_newer_version_holding_an_older_certificate(lab):
    # Defence in depth: even a higher signed version is not installed over a newer certificate.
    lab.publish(lab.plaintext(version=1))
    lab.run()
    served = lab.served()
    imports = lab.imports()
    lab.publish(lab.plaintext(version=2, not_before=now() - timedelta(days=2)))

    result = lab.run()

    assert result.exit_code == cycle.EXIT_REFUSED, result.failures
    assert lab.served() == served
    assert lab.imports() == imports
    assert lab.state.installed(SITE).version == 1
    assert lab.state.site_errors[SITE].code == "bundle.older_than_installed"
