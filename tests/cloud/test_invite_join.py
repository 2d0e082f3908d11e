"""Onboarding in three steps (issue 15): `certdrop agent invite` → `certdrop-agent join LINE` →
`certdrop agent approve`, through both command lines, with Pebble, BIND, a directory store and
the DSM emulator; and the AWS identity an invitation carries, against moto with IAM enforced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import moto.settings
import pytest
from botocore.exceptions import ClientError

from cloud.aws.agent_identity import create_agent_identity, delete_agent_identity
from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_OK
from cloud.config import StorageConfig
from cloud.pipeline import parts
from lab.dsm_emulator import serve
from lab.issuer_config import bind_config
from lab.moto import REGION, MotoServer, fake_aws_env
from nas_agent import cycle, store_layout
from nas_agent._encoding import b64url_encode
from nas_agent.bundle.key_requests import parse_key_requests
from nas_agent.enrollment import enrollment_of
from nas_agent.invite import parse_invitation
from nas_agent.keys import generate_agent_keys
from nas_agent.sources import open_source
from tests.cloud.test_cli_issue import _run

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "certdrop", "s3cret-for-the-emulator"


def _agent(*args: str, days_later: float = 0) -> subprocess.CompletedProcess[str]:
    prefix = ["faketime", "-f", f"+{days_later}d"] if days_later else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "nas_agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "CERTDROP_DSM_PASSWORD": PASSWORD},
        check=False,
    )


class Onboarding:
    def __init__(self, tmp_path: Path, config, dsm):
        self.tmp = tmp_path
        self.config = config
        self.dsm = dsm

    def certdrop(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run("--config", self.config.source, *args)

    def invite(self, agent: str = "nas-1", *extra: str) -> str:
        done = self.certdrop("agent", "invite", agent, "--site", "example", *extra)
        assert done.returncode == EXIT_OK, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def join(self, line: str, agent_dir: str = "nas", days_later: float = 0):
        return _agent(
            "join", line, "--dir", str(self.tmp / agent_dir), "--dsm-user", USER,
            "--dsm-url", self.dsm.https_url, days_later=days_later,
        )  # fmt: skip

    def run_agent(self, agent_dir: str = "nas"):
        return _agent("-c", str(self.tmp / agent_dir / "agent.conf"), "run", "--once")

    @property
    def store(self):
        return parts.store(self.config)


@pytest.fixture
def onboarding(tmp_path, pebble, bind_auth):
    (tmp_path / "cloud").mkdir()
    config = bind_config(tmp_path / "cloud", pebble, bind_auth)
    assert _run("--config", config.source, "init").returncode == EXIT_OK
    issued = _run("--config", config.source, "issue", "example")
    assert issued.returncode == EXIT_OK, issued.stderr
    dsm = serve(str(tmp_path / "dsm"), 0, 0, USER, PASSWORD)
    try:
        yield Onboarding(tmp_path, config, dsm)
    finally:
        dsm.stop()


def test_invite_join_approve_and_the_nas_serves_its_certificate(onboarding):
    line = onboarding.invite()
    joined = onboarding.join(line)
    pending = onboarding.certdrop("agent", "pending")
    approved = onboarding.certdrop("agent", "approve", "nas-1")
    installed = onboarding.run_agent()

    assert joined.returncode == 0, joined.stderr
    assert "certdrop agent approve nas-1" in joined.stdout
    assert "nas-1" in pending.stdout and "yes" in pending.stdout
    assert approved.returncode == EXIT_OK, approved.stderr
    assert "delivered current certificates of: example" in approved.stdout
    assert installed.returncode == cycle.EXIT_OK, installed.stderr
    assert "installed: example" in installed.stdout
    nas = onboarding.tmp / "nas"
    for private in ("agent.conf", "dsm-password", "keys"):
        assert (nas / private).stat().st_mode & 0o077 == 0, private
    # Nothing private left the NAS: the store holds its public keys only.
    posted = json.loads(onboarding.store.get(store_layout.agent_enrollment("nas-1")).body)
    assert set(posted) == {"format", "agent", "token", "mac"}
    assert "PRIVATE" not in json.dumps(posted)
    assert "no open invitations" in onboarding.certdrop("agent", "pending").stdout
    # Its key requests exist, empty (no site in agent custody): the agent never reads a missing
    # object, which S3 answers with 403 to a reader that may not list the bucket.
    requests = parse_key_requests(
        onboarding.store.get(store_layout.agent_key_requests("nas-1")).body
    )
    assert requests.agent_id == "nas-1" and requests.sites == ()


def test_an_invitation_is_used_once(onboarding):
    assert onboarding.join(onboarding.invite()).returncode == 0
    assert onboarding.certdrop("agent", "approve", "nas-1").returncode == EXIT_OK

    again = onboarding.certdrop("agent", "approve", "nas-1")

    assert again.returncode == EXIT_CONFIG
    assert "invite.unknown" in again.stderr or "no open invitation" in again.stderr


def test_expiry_is_the_issuers_clock_not_the_nas_clock(onboarding):
    line = onboarding.invite("nas-1", "--valid-for", "1")
    # A NAS whose clock is a month ahead still joins; the issuer decides.
    joined = onboarding.join(line, days_later=30)
    approved = onboarding.certdrop("agent", "approve", "nas-1")
    assert joined.returncode == 0, joined.stderr
    assert approved.returncode == EXIT_OK, approved.stderr

    late = onboarding.invite("nas-2", "--valid-for", "1")
    assert onboarding.join(late, "nas2").returncode == 0
    expired = subprocess.run(
        ["faketime", "-f", "+2d", sys.executable, "-m", "cloud.cli", "--config",
         str(onboarding.config.source), "agent", "approve", "nas-2"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert expired.returncode == EXIT_CONFIG
    assert "expired" in expired.stderr


def test_a_tampered_line_is_refused_at_join(onboarding):
    line = onboarding.invite()
    position = len(line) // 2
    swapped = "A" if line[position] != "A" else "B"
    tampered = line[:position] + swapped + line[position + 1 :]

    refused = onboarding.join(tampered)

    assert refused.returncode != 0
    assert "checksum" in refused.stderr or "base64url" in refused.stderr
    assert not (onboarding.tmp / "nas" / "agent.conf").exists()


def test_keys_swapped_into_a_posted_enrollment_are_refused(onboarding):
    assert onboarding.join(onboarding.invite()).returncode == 0
    key = store_layout.agent_enrollment("nas-1")
    posted = json.loads(onboarding.store.get(key).body)
    posted["token"] = enrollment_of(generate_agent_keys("nas-1")).token()  # the attacker's keys
    onboarding.store.put(key, json.dumps(posted).encode())

    refused = onboarding.certdrop("agent", "approve", "nas-1")

    assert refused.returncode == EXIT_CONFIG
    assert "invite.enrollment_refused" in refused.stderr or "MAC" in refused.stderr
    assert "nas-1" not in onboarding.certdrop("agent", "list").stdout


def test_an_enrollment_for_another_agent_is_refused(onboarding):
    onboarding.invite("nas-1")
    assert onboarding.join(onboarding.invite("nas-2"), "nas2").returncode == 0
    # nas-2's enrollment copied into nas-1's prefix.
    theirs = onboarding.store.get(store_layout.agent_enrollment("nas-2")).body
    onboarding.store.put(store_layout.agent_enrollment("nas-1"), theirs)

    refused = onboarding.certdrop("agent", "approve", "nas-1")

    assert refused.returncode == EXIT_CONFIG
    assert "is for agent nas-2" in refused.stderr


def test_an_approval_before_the_join_waits_for_it_and_a_second_join_changes_nothing(onboarding):
    line = onboarding.invite()
    early = onboarding.certdrop("agent", "approve", "nas-1")
    assert early.returncode == EXIT_CONFIG
    assert "has not joined yet" in early.stderr

    assert onboarding.join(line).returncode == 0
    assert onboarding.certdrop("agent", "approve", "nas-1").returncode == EXIT_OK
    rejoined = onboarding.join(line)  # the package's wizard run twice, say

    assert rejoined.returncode == 0, rejoined.stderr
    assert onboarding.run_agent().returncode == cycle.EXIT_OK  # the same keys, still approved


def test_the_line_carries_what_the_agent_needs_and_the_store_keeps_no_secret(onboarding):
    line = onboarding.invite()
    invitation = parse_invitation(line)

    assert invitation.agent_id == "nas-1"
    assert invitation.sites == {"example": "example.test"}
    assert invitation.source["url"] == onboarding.config.storage.store_url
    stored = onboarding.store.get(store_layout.invite("nas-1")).body
    assert invitation.secret.hex() not in stored.decode()
    assert b64url_encode(invitation.secret) not in stored.decode()


# --- AWS: the invitation's own IAM identity --------------------------------------------------


@pytest.fixture
def aws_store(monkeypatch):
    with fake_aws_env(), MotoServer() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        bucket = server.create_bucket()
        s3 = server.client("s3")
        for key in ("agents/nas-1/index.json", "agents/nas-2/index.json", "state/sites/x.json"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
        yield server, bucket


def test_the_credentials_of_an_invitation_reach_only_their_own_prefix(aws_store, monkeypatch):
    server, bucket = aws_store
    storage = StorageConfig(
        store_url=f"s3://{bucket}/", keys_dir=Path("/nonexistent"), region=REGION
    )
    credentials = create_agent_identity("nas-1", storage)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # IAM enforced now
    agent = boto3.session.Session(
        aws_access_key_id=credentials["access_key_id"],
        aws_secret_access_key=credentials["secret_access_key"],
    ).client("s3", endpoint_url=server.endpoint_url, region_name=REGION)

    def allowed(call, **kwargs) -> bool:
        try:
            call(Bucket=bucket, **kwargs)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied", exc
            return False
        return True

    assert allowed(agent.get_object, Key="agents/nas-1/index.json")
    assert allowed(agent.put_object, Key="agents/nas-1/status.json", Body=b"{}")
    assert allowed(agent.put_object, Key="agents/nas-1/enrollment.json", Body=b"{}")
    assert allowed(agent.put_object, Key="agents/nas-1/csr/example.json", Body=b"{}")
    assert not allowed(agent.put_object, Key="agents/nas-2/csr/example.json", Body=b"{}")
    assert not allowed(agent.put_object, Key="agents/nas-1/key-requests.json", Body=b"{}")
    assert not allowed(agent.get_object, Key="agents/nas-2/index.json")
    assert not allowed(agent.get_object, Key="state/sites/x.json")
    assert not allowed(agent.put_object, Key="agents/nas-1/index.json", Body=b"{}")
    assert not allowed(agent.put_object, Key="agents/nas-2/status.json", Body=b"{}")
    assert not allowed(agent.delete_object, Key="agents/nas-1/index.json")
    # The agent's own source reads with them as it will on the NAS.
    creds = Path(os.environ.get("TMPDIR", "/tmp")) / f"creds-{os.getpid()}"
    creds.write_text(
        "[default]\n"
        f"aws_access_key_id = {credentials['access_key_id']}\n"
        f"aws_secret_access_key = {credentials['secret_access_key']}\n"
    )
    os.chmod(creds, 0o600)
    try:
        with open_source(
            f"s3://{bucket}/", "nas-1", endpoint_url=server.endpoint_url, region=REGION,
            credentials_file=str(creds),
        ) as source:  # fmt: skip
            assert source.fetch("index.json").body == b"{}"
            assert source.put_enrollment(b"{}") is True
    finally:
        creds.unlink()
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert delete_agent_identity("nas-1", storage) is True
    assert delete_agent_identity("nas-1", storage) is False


def test_join_takes_the_line_from_its_environment_or_stdin_not_only_its_command_line(
    onboarding,
):
    line = onboarding.invite()
    by_env = subprocess.run(
        [sys.executable, "-m", "nas_agent.cli", "join", "--dir", str(onboarding.tmp / "nas"),
         "--dsm-user", USER, "--dsm-url", onboarding.dsm.https_url],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "CERTDROP_DSM_PASSWORD": PASSWORD,
             "CERTDROP_INVITE_LINE": line},
    )  # fmt: skip
    by_stdin = subprocess.run(
        [sys.executable, "-m", "nas_agent.cli", "join", "-", "--dir", str(onboarding.tmp / "nas"),
         "--dsm-user", USER, "--dsm-url", onboarding.dsm.https_url],
        input=line + "\n", capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "CERTDROP_DSM_PASSWORD": PASSWORD},
    )  # fmt: skip

    assert by_env.returncode == 0, by_env.stderr
    assert by_stdin.returncode == 0, by_stdin.stderr
    assert onboarding.certdrop("agent", "approve", "nas-1").returncode == EXIT_OK
