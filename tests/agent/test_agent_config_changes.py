"""A change to agent.conf takes effect at the next run, even when the index did not change; and
index entries for sites agent.conf does not name are reported, not silently ignored."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from lab.agent_lab import SITE, AgentLab, fingerprint
from nas_agent import cycle
from nas_agent.cli import main
from nas_agent.status import verify_status

SHOP = "shop.test"


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def add_site(lab: AgentLab, site: str, hostname: str = f"www.{SHOP}") -> None:
    lab.config_path.write_text(
        lab.config_path.read_text() + f"\n[site:{site}]\nhostnames = {hostname}\n"
    )


def publish_shop(lab: AgentLab):
    plaintext = lab.plaintext(version=1, site=SHOP, names=(f"*.{SHOP}",))
    lab.publish(plaintext)
    return plaintext


def report(lab: AgentLab) -> dict:
    body = (lab.store / "agents" / "nas-a" / "status.json").read_bytes()
    agent = lab.world.agents["nas-a"]
    return verify_status(body, agent_id="nas-a", public_key=agent.signing_key.public_key())


def test_a_site_added_to_agent_conf_is_installed_at_the_next_run_without_a_new_index(lab):
    lab.publish(lab.plaintext(version=1))
    shop = publish_shop(lab)
    assert lab.run().installed == (SITE,)
    index = lab.store / "agents" / "nas-a" / "index.json"
    unchanged = index.stat().st_mtime_ns

    add_site(lab, SHOP)
    result = lab.run()

    assert index.stat().st_mtime_ns == unchanged  # the cloud published nothing new
    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert not result.index_unchanged
    assert result.installed == (SHOP,)
    assert lab.state.installed(SHOP).fingerprint == fingerprint(shop)
    assert lab.run().index_unchanged  # and from then on one conditional request again


def test_a_corrected_site_id_is_installed_at_the_next_run_through_the_cli(lab, capsys):
    lab.publish(lab.plaintext(version=1))
    publish_shop(lab)
    add_site(lab, "shpo.test")  # mistyped: nothing is published for it
    argv = ["--config", str(lab.config_path), "run", "--once"]
    assert main(argv) == cycle.EXIT_OK
    assert capsys.readouterr().out == f"installed: {SITE}\n"

    lab.config_path.write_text(lab.config_path.read_text().replace("shpo.test", SHOP))
    code = main(argv)

    assert code == cycle.EXIT_OK
    assert capsys.readouterr().out == f"installed: {SHOP}\n"
    assert lab.state.installed_version(SHOP) == 1


def test_index_entries_for_sites_not_in_agent_conf_are_logged_and_reported(lab, caplog):
    lab.publish(lab.plaintext(version=1))
    publish_shop(lab)

    with caplog.at_level(logging.INFO, logger="nas_agent"):
        first = lab.run()
        second = lab.run()

    assert first.exit_code == second.exit_code == cycle.EXIT_OK
    assert second.index_unchanged
    mentions = [r for r in caplog.records if SHOP in r.getMessage()]
    assert len(mentions) == 2 and mentions[0].levelno == logging.WARNING
    assert "[site:<id>]" in mentions[0].getMessage()
    assert report(lab)["unconfigured_sites"] == [SHOP]
    assert json.loads((lab.root / "agent" / "state.json").read_text())["unconfigured_sites"] == [
        SHOP
    ]

    add_site(lab, SHOP)
    lab.run()

    assert report(lab)["unconfigured_sites"] == []


def test_an_unconfigured_sites_entry_the_agent_cannot_use_is_logged_not_reported(lab, caplog):
    lab.publish(lab.plaintext(version=1))
    publish_shop(lab)
    # Signed with the rest of the index, but of a custody this agent cannot open.
    entries = [replace(e, custody="agent") if e.site == SHOP else e for e in lab.entries()]
    lab.write_index(entries)

    with caplog.at_level(logging.WARNING, logger="nas_agent"):
        result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert report(lab).get("unconfigured_sites") == []
    assert any(SHOP in r.getMessage() and "agent/" in r.getMessage() for r in caplog.records)
