"""`certdrop -v` and the Lambda functions log none of the secrets they handle (issue 13, item 1),
in any encoding: not `init` and `agent add` in AWS mode (the issuer's keys in Secrets Manager), not
a webhook alert (a token in the URL's path and query, the signing secret), not the issue and tick
functions (the issuer's keys, the TSIG secret from the DNS credentials secret), and not a later
line that logs one of them carelessly, in its args or in an exception.

Moto's server runs in this process, so what it logs is searched too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from cloud import log as log_setup
from cloud.aws import handlers
from cloud.cli.exit_codes import EXIT_OK
from cloud.cli.main import main
from lab.moto import MotoServer, fake_aws_env
from lab.webhook_receiver import WebhookReceiver
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys, private_key_pem
from tests.agent.log_leaks import RecordCapture, assert_nothing_leaked, capture_after
from tests.cloud import test_cli_alerts, test_handlers

# The deployed stack on moto, with Pebble and BIND behind it, as the handlers' tests use it.
aws = test_handlers.aws


@pytest.fixture
def capture(monkeypatch) -> RecordCapture:
    return capture_after(monkeypatch, log_setup, "setup")


@pytest.fixture
def moto(monkeypatch) -> Iterator[MotoServer]:
    with fake_aws_env(), MotoServer() as server:
        server.reset()  # moto's backends are process-wide: start from an empty account
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield server


def test_init_and_agent_add_in_aws_mode_log_no_issuer_key(moto, tmp_path, capture, capsys):
    manager = moto.client("secretsmanager")
    ids = {name: manager.create_secret(Name=f"certdrop/{name}")["ARN"] for name in ("a", "s", "e")}
    config = tmp_path / "certdrop.toml"
    config.write_text(
        '[ca]\ndirectory = "https://acme.example/directory"\nterms_agreed = true\n'
        f'[storage]\nurl = "s3://{moto.create_bucket()}"\n'
        f'acme_secret = "{ids["a"]}"\nsigning_secret = "{ids["s"]}"\n'
        f'escrow_secret = "{ids["e"]}"\n'
        '[providers.dns]\ntype = "exec"\ncommand = ["/bin/true"]\n'
        '[sites.example]\ndomain = "example.test"\nprovider = "dns"\n'
    )
    token = enrollment_of(generate_agent_keys("nas-1")).token()

    init = main(["-v", "-c", str(config), "init"])
    added = main(["-v", "-c", str(config), "agent", "add", token, "--site", "example"])

    assert init == added == EXIT_OK
    keys = {
        name: manager.get_secret_value(SecretId=ids[short])["SecretString"]
        for name, short in (("issuer signing key", "s"), ("escrow key", "e"))
    }
    assert_nothing_leaked(capture, capsys, keys)


def test_a_webhook_alert_logs_neither_its_url_tokens_nor_its_secret(
    tmp_path, monkeypatch, capture, capsys
):
    hook_secrets = {
        "webhook URL path": f"/hooks/{secrets.token_urlsafe(24)}",
        "webhook URL token": secrets.token_urlsafe(24),
        "webhook secret": secrets.token_urlsafe(24),
    }
    monkeypatch.setenv("CERTDROP_TEST_HOOK_SECRET", hook_secrets["webhook secret"])
    path = f"{hook_secrets['webhook URL path']}?token={hook_secrets['webhook URL token']}"
    with WebhookReceiver(path) as hook:
        alerts = (
            f'[alerts]\nwebhook_url = "{hook.url}"\n'
            'webhook_secret = "env:CERTDROP_TEST_HOOK_SECRET"\n'
        )
        config = test_cli_alerts._fleet_config(tmp_path, alerts)

        sent = main(["-v", "--config", config, "alerts"])

    assert sent == EXIT_OK
    assert [r.path for r in hook.requests] == [path]
    assert_nothing_leaked(capture, capsys, hook_secrets)


def test_the_issue_and_tick_functions_log_no_key_nor_dns_credential(
    aws, tsig_key, monkeypatch, capture, capsys
):
    issuer = aws[2]
    monkeypatch.setattr(handlers, "_logging_done", False)  # a fresh container sets logging up
    message = test_handlers._sqs_event([json.dumps({"site": "never-run"})])

    issued = handlers.issue(message, None)
    ticked = handlers.tick(test_handlers._scheduler_event(), None)

    assert issued == {"batchItemFailures": []}
    assert "never-run" not in ticked["due"]
    assert_nothing_leaked(
        capture,
        capsys,
        {
            "issuer signing key": private_key_pem(issuer.signing_key).decode(),
            "escrow key": private_key_pem(issuer.escrow_key).decode(),
            "TSIG secret": tsig_key.secret,
        },
    )
