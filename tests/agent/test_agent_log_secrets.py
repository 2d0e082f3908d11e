"""`certdrop-agent -v` logs none of the secrets it handles (issue 13, item 1), in any encoding:
not while polling S3 with session credentials, not while logging in to DSM with 2FA, and not
when a later line logs one of them carelessly, in its args or in an exception.

The emulator and moto run in this process, so what they log is searched too.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest

from lab.agent_lab import PASSWORD, AgentLab
from nas_agent import cli, cycle, redaction, totp
from tests.agent.log_leaks import CARELESS, assert_nothing_leaked, capture_after

PREFIX = "certdrop"


@pytest.fixture
def capture(monkeypatch: Any) -> Any:
    return capture_after(monkeypatch, cli, "_setup_logging")


@pytest.fixture
def s3_lab(tmp_path: Path, moto: Any, s3_admin: Any) -> Iterator[tuple[AgentLab, str, dict]]:
    """A published bundle in moto's S3 and an agent reading it with session credentials."""
    from lab.moto import REGION

    lab = AgentLab(tmp_path)
    lab.publish(lab.plaintext(version=1))
    bucket = f"agent-log-secrets-{secrets.token_hex(4)}"
    s3_admin.create_bucket(Bucket=bucket)
    for path in lab.store.rglob("*"):
        if path.is_file():
            key = f"{PREFIX}/{path.relative_to(lab.store)}"
            s3_admin.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    credentials = {
        "S3 secret access key": secrets.token_urlsafe(30),
        "S3 session token": secrets.token_urlsafe(200),
    }
    credentials_file = tmp_path / "aws-credentials"
    credentials_file.write_text(
        "[default]\naws_access_key_id = ASIAEXAMPLEAGENT\n"
        f"aws_secret_access_key = {credentials['S3 secret access key']}\n"
        f"aws_session_token = {credentials['S3 session token']}\n"
    )
    credentials_file.chmod(0o600)
    text = lab.config_path.read_text().replace(
        f"url = file://{lab.store}",
        f"url = s3://{bucket}/{PREFIX}\nendpoint_url = {s3_admin.meta.endpoint_url}\n"
        f"region = {REGION}\ncredentials_file = {credentials_file}",
    )
    lab.config_path.write_text(text)
    yield lab, bucket, credentials
    lab.close()


def _logins(lab: AgentLab) -> list:
    return [r for r in lab.dsm.requests if r.api_method == "login"]


def test_a_run_from_s3_with_session_credentials_logs_no_secret(s3_lab, s3_admin, capture, capsys):
    lab, bucket, credentials = s3_lab

    cli.main(["-v", "-c", str(lab.config_path), "run", "--once"])

    # It read S3 and wrote its report there, and logged in to DSM.
    s3_admin.head_object(Bucket=bucket, Key=f"{PREFIX}/agents/{lab.agent_id}/status.json")
    assert _logins(lab)
    assert_nothing_leaked(capture, capsys, {"DSM password": PASSWORD, **credentials})


def test_a_dsm_login_with_2fa_logs_neither_password_nor_otp_secret_nor_device_id(
    tmp_path, capture, capsys
):
    otp_secret = base64.b32encode(os.urandom(20)).decode("ascii")
    lab = AgentLab(tmp_path, otp_secret=otp_secret)
    try:
        lab.publish(lab.plaintext(version=1))
        code = totp.totp(otp_secret, lab.dsm.emulator.clock())
        config = str(lab.config_path)

        logged_in = cli.main(["-v", "-c", config, "dsm-login", "--otp", code])
        cli.main(["-v", "-c", config, "run", "--once"])

        assert logged_in == cycle.EXIT_OK
        assert "device_id" in _logins(lab)[-1].form  # the run logged in as the remembered device
        device_id = (lab.root / "agent" / "dsm-device-id").read_text().strip()
        assert_nothing_leaked(
            capture,
            capsys,
            {"DSM password": PASSWORD, "OTP secret": otp_secret, "DSM device id": device_id},
        )
    finally:
        lab.close()


def test_a_short_dsm_password_is_masked_where_it_stands_as_a_word(tmp_path, capture, capsys):
    """A DSM password under 8 characters was never masked: it would garble ordinary words as a
    substring. It is masked where it stands alone (any line logging it), and words that merely
    contain it are left as they are."""
    password = "Qp7#x"
    lab = AgentLab(tmp_path, password=password)
    try:
        lab.publish(lab.plaintext(version=1))

        assert cli.main(["-v", "-c", str(lab.config_path), "run", "--once"]) == cycle.EXIT_OK

        assert _logins(lab)
        assert_nothing_leaked(capture, capsys, {"DSM password": password})
        CARELESS.warning("a word holding it: xQp7#xy")
        assert "a word holding it: xQp7#xy" in capture.text
    finally:
        lab.close()


def test_a_short_value_not_known_to_be_secret_masks_nothing() -> None:
    """From a review of the change above, failing before its fix: the issuer registers values
    that may be no secret (each query value of the alerts webhook URL, every field of the DNS
    credentials document), and a short one masked ordinary words in every line ("v=2" masked
    every "2"). Short values are masked only when registered as secrets (passwords)."""
    redaction.register("2")
    redaction.register("json")
    line = "site shop: version 2 installed on 2 agents; answer in json"

    assert redaction.redact(line) == line
