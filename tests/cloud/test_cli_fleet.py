"""`certdrop init` and `certdrop agent add|invite|list|remove`, run as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_OK
from cloud.keys.issuer import ESCROW_KEY, SIGNING_KEY
from lab.issuer_config import bind_config
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys
from tests.cloud.test_cli_issue import _run


def _config(tmp_path, pebble, bind_auth):
    return bind_config(tmp_path, pebble, bind_auth)


def test_init_creates_owner_only_issuer_keys_once_and_prints_the_line_agents_pin(
    tmp_path, pebble, bind_auth
):
    config = _config(tmp_path, pebble, bind_auth)

    first = _run("--config", config.source, "init")
    again = _run("--config", config.source, "init")

    assert first.returncode == EXIT_OK, first.stderr
    assert "certdrop-issuer-v1:" in first.stdout
    for name in (SIGNING_KEY, ESCROW_KEY):
        assert (tmp_path / "keys" / name).stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in first.stdout
    assert again.returncode == EXIT_CONFIG
    assert "already exists; refusing to overwrite it" in again.stderr


def test_an_agent_added_after_issuance_is_delivered_the_current_certificate(
    tmp_path, pebble, bind_auth
):
    config = _config(tmp_path, pebble, bind_auth)
    token = enrollment_of(generate_agent_keys("nas-1")).token()
    assert _run("--config", config.source, "init").returncode == EXIT_OK
    issued = _run("--config", config.source, "issue", "example")
    assert issued.returncode == EXIT_OK, issued.stderr
    assert "published    version 1" in issued.stdout

    added = _run("--config", config.source, "agent", "add", token, "--site", "example")
    listed = _run("--config", config.source, "agent", "list")

    assert added.returncode == EXIT_OK, added.stderr
    assert "delivered current certificates of: example" in added.stdout
    assert (tmp_path / "store" / "agents" / "nas-1" / "index.json").is_file()
    assert (tmp_path / "store" / "agents" / "nas-1" / "bundles" / "example" / "1.sealed").is_file()
    assert "nas-1" in listed.stdout and "example" in listed.stdout


def test_an_agent_added_after_a_switch_to_agent_custody_gets_no_issuer_made_key(
    tmp_path, pebble, bind_auth
):
    config = _config(tmp_path, pebble, bind_auth)
    token = enrollment_of(generate_agent_keys("nas-1")).token()
    assert _run("--config", config.source, "init").returncode == EXIT_OK
    assert _run("--config", config.source, "issue", "example").returncode == EXIT_OK
    source = config.source.read_text()
    config.source.write_text(
        source.replace("[sites.example]\n", '[sites.example]\nkey_custody = "agent"\n')
    )

    added = _run("--config", config.source, "agent", "add", token, "--site", "example")

    assert added.returncode == EXIT_OK, added.stderr
    assert "delivered current certificates" not in added.stdout
    assert not (tmp_path / "store" / "agents" / "nas-1" / "bundles").exists()


def test_agent_add_refuses_a_mistyped_token_and_an_unknown_site(tmp_path, pebble, bind_auth):
    config = _config(tmp_path, pebble, bind_auth)
    token = enrollment_of(generate_agent_keys("nas-1")).token()
    assert _run("--config", config.source, "init").returncode == EXIT_OK
    typo = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]

    bad_token = _run("--config", config.source, "agent", "add", typo, "--site", "example")
    bad_site = _run("--config", config.source, "agent", "add", token, "--site", "nope")

    assert bad_token.returncode == EXIT_CONFIG
    assert "enrollment token" in bad_token.stderr
    assert bad_site.returncode == EXIT_CONFIG
    assert "sites.nope: no such site" in bad_site.stderr
    assert not (tmp_path / "store" / "state" / "agents").exists()


def test_agent_remove_deletes_the_agents_objects(tmp_path, pebble, bind_auth):
    config = _config(tmp_path, pebble, bind_auth)
    token = enrollment_of(generate_agent_keys("nas-1")).token()
    assert _run("--config", config.source, "init").returncode == EXIT_OK
    assert (
        _run("--config", config.source, "agent", "add", token, "--site", "example").returncode == 0
    )
    assert _run("--config", config.source, "issue", "example").returncode == EXIT_OK

    removed = _run("--config", config.source, "agent", "remove", "nas-1")
    again = _run("--config", config.source, "agent", "remove", "nas-1")

    assert removed.returncode == EXIT_OK, removed.stderr
    assert not any((tmp_path / "store" / "agents").rglob("*.*"))
    assert again.returncode == EXIT_CONFIG
    assert "no agent nas-1 is registered" in again.stderr


def test_issue_before_init_still_issues_and_says_it_did_not_publish(tmp_path, pebble, bind_auth):
    config = _config(tmp_path, pebble, bind_auth)

    result = _run("--config", config.source, "issue", "example")

    assert result.returncode == EXIT_OK, result.stderr
    assert "not published: run `certdrop init`" in result.stdout


@pytest.fixture
def initialized(tmp_path) -> Path:
    """A configuration after `certdrop init`, with a directory store: no CA is contacted."""
    config = tmp_path / "certdrop.toml"
    config.write_text(
        '[ca]\ndirectory = "https://127.0.0.1:9/dir"\nterms_agreed = true\n\n'
        '[sites.example]\ndomain = "example.com"\nchallenge = "dns-persist-01"\n'
    )
    done = _run("--config", config, "init")
    assert done.returncode == EXIT_OK, done.stderr
    return config


@pytest.mark.parametrize("days", ["nan", "1e9", "inf", "31"])
def test_agent_invite_valid_for_out_of_range_is_bad_usage_not_a_crash(initialized, days):
    """README: "a one-time enrollment secret and an expiry (7 days; `--valid-for DAYS`, at most
    30)"; exit 2 is "bad usage". Before, `--valid-for nan`, `1e9` or `inf` passed argparse's
    `type=float` and then crashed in `timedelta(days=...)`: ValueError/OverflowError, a
    traceback, exit 1 (and any finite length, however long, was taken)."""
    result = _run(
        "--config", initialized, "agent", "invite", "nas-01", "--site", "example",
        "--valid-for", days,
    )  # fmt: skip

    assert "Traceback" not in result.stderr, result.stderr[-600:]
    assert result.returncode == EXIT_CONFIG
    assert "argument --valid-for" in result.stderr


@pytest.mark.parametrize("days", ["-1", "0"])
def test_agent_invite_refuses_a_validity_that_has_already_ended(initialized, days):
    """README: `agent invite ID --site S` prints a line with "an expiry (7 days;
    `--valid-for DAYS`)" that the NAS then joins with. Before, `--valid-for -1` (or 0) printed,
    with exit 0, an invitation that expired before it was made; `agent approve` could only
    refuse it later (invite.expired). Expected: bad usage, exit 2, nothing printed to hand
    over."""
    result = _run(
        "--config", initialized, "agent", "invite", "nas-01", "--site", "example",
        "--valid-for", days,
    )  # fmt: skip

    assert result.returncode == EXIT_CONFIG, result.stdout
    assert "certdrop-invite-v1:" not in result.stdout


def test_agent_invite_valid_for_takes_up_to_thirty_days(initialized):
    result = _run(
        "--config", initialized, "agent", "invite", "nas-01", "--site", "example",
        "--valid-for", "30",
    )  # fmt: skip

    assert result.returncode == EXIT_OK, result.stderr
    assert "certdrop-invite-v1:" in result.stdout
