"""An empty webhook secret is a configuration mistake, not a key: an HMAC under an empty key proves
nothing to the receiver, so nothing is sent with one and the error names the setting to fix."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cloud.cli.exit_codes import EXIT_CONFIG
from cloud.config import AlertsConfig
from cloud.errors import ConfigError
from cloud.fleet.alerts.evaluate import evaluate_and_send
from cloud.fleet.alerts.webhook import WebhookChannel
from cloud.secrets import SecretRef
from lab.sample_fleet import make_fleet
from lab.webhook_receiver import WebhookReceiver
from tests.cloud.test_cli_alerts import _fleet_config
from tests.cloud.test_cli_issue import _run

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize("value", ["", "   \n"], ids=["empty", "blank"])
def test_an_empty_webhook_secret_is_refused_and_nothing_is_sent(tmp_path, hook, value):
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(value)
    fleet = make_fleet(tmp_path, NOW)
    config = replace(fleet.config, alerts=AlertsConfig(webhook_url=hook.url))
    ref = SecretRef("file", str(secret_file))

    with pytest.raises(ConfigError) as refused:
        evaluate_and_send(config, fleet.store, NOW, [WebhookChannel(hook.url, ref)])

    assert hook.requests == []
    (problem,) = refused.value.problems
    assert problem.key == "alerts.webhook_secret"
    assert f"file:{secret_file}" in problem.cause and "empty" in problem.cause


def test_certdrop_alerts_with_an_empty_secret_exits_as_a_configuration_error(
    tmp_path, hook, monkeypatch
):
    monkeypatch.setenv("CERTDROP_TEST_EMPTY_SECRET", "")
    alerts = (
        f'[alerts]\nwebhook_url = "{hook.url}"\nwebhook_secret = "env:CERTDROP_TEST_EMPTY_SECRET"\n'
    )
    config = _fleet_config(tmp_path, alerts)

    sent = _run("--config", config, "alerts")

    assert sent.returncode == EXIT_CONFIG, sent.stderr
    assert "alerts.webhook_secret: env:CERTDROP_TEST_EMPTY_SECRET is empty" in sent.stderr
    assert hook.requests == []
