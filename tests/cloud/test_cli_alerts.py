"""`certdrop alerts [--dry-run]` and the alerts at the end of `certdrop run`, as a user runs them,
against a fleet in a known state and a webhook receiver on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.cli.exit_codes import EXIT_ALERTS, EXIT_CONFIG, EXIT_OK
from cloud.pipeline.schedule import write_marker
from lab.sample_fleet import SITES, make_fleet
from lab.webhook_receiver import WebhookReceiver
from tests.cloud.test_cli_issue import _run


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def _fleet_config(tmp_path, alerts: str = "") -> str:
    """The fleet in tmp_path/store, with no site due (so `run` orders nothing)."""
    fleet = make_fleet(tmp_path, datetime.now(UTC))
    for site in fleet.config.sites.values():
        write_marker(fleet.store, site, fleet.now + timedelta(days=1), None)
    sites = "".join(f'[sites.{s}]\ndomain = "{s}.example.test"\nprovider = "dns"\n' for s in SITES)
    text = (
        '[ca]\ndirectory = "https://acme.example/directory"\nterms_agreed = true\n'
        '[storage]\nurl = "store"\nkeys_dir = "keys"\n'
        '[providers.dns]\ntype = "exec"\ncommand = ["/bin/true"]\n'
        f"{alerts}{sites}"
    )
    path = tmp_path / "certdrop.toml"
    path.write_text(text)
    return str(path)


def test_a_dry_run_lists_what_would_be_sent_and_sends_nothing(tmp_path, hook):
    config = _fleet_config(tmp_path, f'[alerts]\nwebhook_url = "{hook.url}"\n')

    dry = _run("--config", config, "alerts", "--dry-run")
    again = _run("--config", config, "alerts", "--dry-run")

    assert dry.returncode == EXIT_OK, dry.stderr
    assert dry.stdout.startswith("alerts would send: 4\n")
    assert "  new       critical  The certificate of expired expired 5 days ago" in dry.stdout
    assert again.stdout == dry.stdout
    assert hook.requests == []


def test_alerts_sends_once_then_nothing_until_something_changes(tmp_path, hook):
    config = _fleet_config(tmp_path, f'[alerts]\nwebhook_url = "{hook.url}"\n')

    first = _run("--config", config, "alerts")
    second = _run("--config", config, "alerts")

    assert first.returncode == EXIT_OK, first.stderr
    assert first.stdout.startswith("alerts sent: 4\n")
    assert second.stdout == "alerts sent: none (nothing new, changed or due a reminder)\n"
    assert len(hook.requests) == 1 and len(hook.requests[0].json()["alerts"]) == 4


def test_alerts_without_an_alerts_table_says_what_to_add(tmp_path):
    config = _fleet_config(tmp_path)

    sent = _run("--config", config, "alerts")

    assert sent.returncode == EXIT_CONFIG
    assert (
        "alerts: missing — add an [alerts] table with webhook_url or sns_topic_arn" in sent.stderr
    )


def test_run_with_nothing_due_still_sends_the_fleets_alerts(tmp_path, hook):
    config = _fleet_config(tmp_path, f'[alerts]\nwebhook_url = "{hook.url}"\n')

    ran = _run("--config", config, "run")

    assert ran.returncode == EXIT_OK, ran.stderr
    assert ran.stdout.startswith("no site is due\nalerts sent: 4\n")
    assert len(hook.requests) == 1


def test_an_undelivered_alert_is_its_own_exit_code(tmp_path, hook):
    config = _fleet_config(tmp_path, f'[alerts]\nwebhook_url = "{hook.url}"\n')
    hook.answers = [410]

    ran = _run("--config", config, "run")

    assert ran.returncode == EXIT_ALERTS
    assert "certdrop: error: alerts not delivered by webhook to http://127.0.0.1:" in ran.stderr
    assert "HTTP 410 Gone" in ran.stderr
