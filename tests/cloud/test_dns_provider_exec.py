"""exec: how a script's failures, hangs and secrets come back to the operator."""

from __future__ import annotations

import secrets
import shlex

import pytest

from cloud.config import parse_provider
from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import build_provider
from cloud.errors import DnsProviderError
from cloud.secrets import SecretRef
from tests.cloud.conftest import ZONE


def record() -> TxtRecord:
    return TxtRecord(ZONE, f"_acme-challenge.t{secrets.token_hex(5)}.{ZONE}", "value")


def test_a_failing_command_reports_its_status_and_last_stderr_lines(exec_script):
    provider = build_provider(
        "exec", {"command": exec_script.command, "env": {"EXEC_TEST_FAIL": "3"}}
    )

    with pytest.raises(DnsProviderError) as caught:
        provider.add_txt(record())

    assert "add command exited with status 3: line one | the API said no" in str(caught.value)
    assert caught.value.transient is False


def test_exit_status_75_is_a_transient_failure(exec_script):
    provider = build_provider(
        "exec", {"command": exec_script.command, "env": {"EXEC_TEST_FAIL": "75"}}
    )
    with pytest.raises(DnsProviderError, match="status 75") as caught:
        provider.remove_txt(record())
    assert caught.value.transient is True


def test_a_hanging_command_is_killed_at_the_timeout_as_a_transient_failure(exec_script):
    provider = build_provider(
        "exec", {"command": exec_script.command, "timeout": 0.5, "env": {"EXEC_TEST_HANG": "1"}}
    )
    with pytest.raises(DnsProviderError, match=r"still running after 0\.5 s") as caught:
        provider.add_txt(record())
    assert caught.value.transient is True


def test_secret_env_reaches_the_command_but_never_the_error(exec_script, monkeypatch):
    token = secrets.token_urlsafe(20)
    monkeypatch.setenv("CERTDROP_TEST_DNS_TOKEN", token)
    provider = build_provider(
        "exec",
        {
            "command": exec_script.command,
            "env": {"EXEC_TEST_ECHO": "DNS_TOKEN", "EXEC_TEST_FAIL": "1"},
            "secret_env": {"DNS_TOKEN": SecretRef("env", "CERTDROP_TEST_DNS_TOKEN")},
        },
    )

    with pytest.raises(DnsProviderError) as caught:
        provider.add_txt(record())

    assert "echo: ***" in str(caught.value)  # the script saw the secret, the error hides it
    assert token not in str(caught.value)


def test_the_command_may_be_one_string_split_like_a_shell(exec_script):
    table = {"type": "exec", "command": shlex.join(exec_script.command)}
    provider = build_provider("exec", parse_provider("hook", table).values)
    mine = record()

    provider.add_txt(mine)

    assert exec_script.held(mine.fqdn) == [mine.value]


def test_a_missing_executable_is_a_terminal_error():
    provider = build_provider("exec", {"command": ["/nonexistent/dns-hook"]})
    with pytest.raises(DnsProviderError, match="cannot run /nonexistent/dns-hook") as caught:
        provider.add_txt(record())
    assert caught.value.transient is False
