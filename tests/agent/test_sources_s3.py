"""The s3:// source against moto's server, with moto's IAM checks on for least privilege."""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from nas_agent.config.errors import SecretFileError
from nas_agent.sources import Fetched, open_source
from nas_agent.sources.errors import SourceDenied, SourceError, SourceUnavailable
from nas_agent.sources.s3 import S3Source

AGENT = "nas-01"
PREFIX = "certdrop"
REPO = Path(__file__).resolve().parents[2]
_buckets = itertools.count(1)


@pytest.fixture
def bucket(moto: Any, s3_admin: Any) -> str:
    name = f"agent-source-{next(_buckets)}"
    s3_admin.create_bucket(Bucket=name)
    for agent in (AGENT, "nas-02"):
        key = f"{PREFIX}/agents/{agent}/index.json"
        s3_admin.put_object(Bucket=name, Key=key, Body=f"index of {agent}".encode())
    return name


def write_credentials(path: Path, key_id: str, secret: str, mode: int = 0o600) -> str:
    path.write_text(
        f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n",
        encoding="utf-8",
    )
    path.chmod(mode)
    return str(path)


@pytest.fixture
def agent_credentials(moto: Any, bucket: str, tmp_path: Path) -> Iterator[Any]:
    """Makes an IAM user for the agent with `grant(statements)`, writes its 0600 credentials file,
    then turns moto's IAM checks on (off again at teardown: they are process-wide)."""
    import requests

    iam = moto.client("iam")
    enabled = []

    def grant(*statements: dict) -> str:
        user = f"agent-{bucket}"[:64]
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": list(statements)}
        iam.put_user_policy(UserName=user, PolicyName="agent", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        path = write_credentials(tmp_path / "aws", key["AccessKeyId"], key["SecretAccessKey"])
        requests.post(f"{moto.endpoint_url}/moto-api/reset-auth", data=b"0", timeout=10)
        enabled.append(True)
        return path

    def role(*statements: dict) -> dict:
        """Temporary credentials of a role allowed `statements` (made before the checks start)."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
        name = f"agent-role-{bucket}"[:64]
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        policy = {"Version": "2012-10-17", "Statement": list(statements)}
        iam.put_role_policy(RoleName=name, PolicyName="agent", PolicyDocument=json.dumps(policy))
        return moto.client("sts").assume_role(RoleArn=arn, RoleSessionName="nas")["Credentials"]

    grant.role = role  # type: ignore[attr-defined]
    yield grant
    if enabled:
        requests.post(f"{moto.endpoint_url}/moto-api/reset-auth", data=b"inf", timeout=10)


def read_statements(bucket: str) -> list:
    return [
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}/agents/{AGENT}/*",
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": f"{PREFIX}/agents/{AGENT}/*"}},
        },
    ]


def source_for(moto: Any, bucket: str, agent: str = AGENT, **options: Any) -> Any:
    from lab.moto import REGION

    url = f"s3://{bucket}/{PREFIX}"
    return open_source(url, agent, endpoint_url=moto.endpoint_url, region=REGION, **options)


def test_least_privilege_reads_its_own_prefix_and_nothing_else(
    moto: Any, bucket: str, agent_credentials: Any
) -> None:
    credentials = agent_credentials(*read_statements(bucket))
    with source_for(moto, bucket, credentials_file=credentials) as own:
        fetched = own.fetch("index.json")
    other = source_for(moto, bucket, "nas-02", credentials_file=credentials)
    with other, pytest.raises(SourceDenied) as caught:
        other.fetch("index.json")
    assert isinstance(fetched, Fetched) and fetched.body == b"index of nas-01"
    assert caught.value.backend_code == "AccessDenied" and not caught.value.transient


def test_a_denied_status_write_is_a_warning_not_a_failure(
    moto: Any, bucket: str, agent_credentials: Any, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = agent_credentials(*read_statements(bucket))
    source = source_for(moto, bucket, credentials_file=credentials)
    with caplog.at_level(logging.WARNING, logger="nas_agent.sources.s3"), source:
        written = source.put_status(b'{"ok": true}')
    assert written is False
    assert any("status not written" in r.getMessage() for r in caplog.records)


def test_a_status_write_the_policy_allows_lands(
    moto: Any, bucket: str, agent_credentials: Any
) -> None:
    put = {
        "Effect": "Allow",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/{PREFIX}/agents/{AGENT}/status.json",
    }
    credentials = agent_credentials(*read_statements(bucket), put)
    with source_for(moto, bucket, credentials_file=credentials) as source:
        written = source.put_status(b'{"ok": true}')
        stored = source.fetch("status.json")  # the agent may read its whole prefix
    assert written is True
    assert isinstance(stored, Fetched) and stored.body == b'{"ok": true}'


def test_a_credentials_file_others_can_read_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "aws", "AKIDEXAMPLE", "secret-value", mode=0o644)
    with pytest.raises(SecretFileError) as caught:
        open_source("s3://bucket/prefix", AGENT, credentials_file=path)
    assert caught.value.path == path
    assert f"chmod 600 {path}" in str(caught.value)
    assert "secret-value" not in str(caught.value)


def test_a_credentials_file_without_the_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "aws"
    path.write_text("[default]\naws_access_key_id = AKIDEXAMPLE\n", encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="aws_secret_access_key"):
        open_source("s3://bucket/prefix", AGENT, credentials_file=str(path))


def test_a_missing_bucket_is_terminal(moto: Any) -> None:
    with source_for(moto, "no-such-bucket-here") as source, pytest.raises(SourceError) as caught:
        source.fetch("index.json")
    assert caught.value.backend_code == "NoSuchBucket" and not caught.value.transient


def test_an_unreachable_endpoint_is_transient_and_every_attempt_counts(moto: Any) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
        source = open_source("s3://bucket/p", AGENT, endpoint_url=endpoint, timeout=2)
        with source, pytest.raises(SourceUnavailable) as caught:
            source.fetch("index.json")
    assert caught.value.transient
    assert source.counters.requests == 3  # three attempts, as botocore's standard mode makes


def test_the_s3_source_imports_neither_boto3_nor_requests_even_when_used() -> None:
    script = textwrap.dedent(
        """
        import socket, sys
        from nas_agent.sources import open_source
        from nas_agent.sources.errors import SourceUnavailable
        heavy = ("boto3", "botocore", "requests")
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        endpoint = "http://127.0.0.1:%d" % probe.getsockname()[1]
        source = open_source("s3://bucket/prefix", "nas-01", endpoint_url=endpoint)
        print(*(name in sys.modules for name in heavy))
        source._sleep = lambda seconds: None
        try:
            source.fetch("index.json")
        except SourceUnavailable:
            pass
        print(*(name in sys.modules for name in heavy))
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}
    environment["AWS_SECRET_ACCESS_KEY"] = "secret-value"
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=True,
    )
    opened, used = done.stdout.splitlines()
    assert opened.split() == ["False", "False", "False"]
    assert used.split() == ["False", "False", "False"]  # http.client: no boto3, no requests


def test_session_credentials_are_signed_with_their_token_and_accepted(
    moto: Any, bucket: str, agent_credentials: Any, tmp_path: Path
) -> None:
    """Temporary credentials (an assumed role's key, secret and session token) read under moto's
    IAM checks: the token travels as X-Amz-Security-Token, inside the signature."""
    role = agent_credentials.role(*read_statements(bucket))
    agent_credentials(*read_statements(bucket))  # from here on moto checks every request
    path = tmp_path / "session-creds"
    path.write_text(
        f"[default]\naws_access_key_id = {role['AccessKeyId']}\n"
        f"aws_secret_access_key = {role['SecretAccessKey']}\n"
        f"aws_session_token = {role['SessionToken']}\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    with source_for(moto, bucket, credentials_file=str(path)) as source:
        fetched = source.fetch("index.json")
    other = source_for(moto, bucket, "nas-02", credentials_file=str(path))
    with other, pytest.raises(SourceDenied):
        other.fetch("index.json")
    assert role["AccessKeyId"].startswith("ASIA")
    assert isinstance(fetched, Fetched) and fetched.body == b"index of nas-01"


def test_without_a_credentials_file_the_environment_then_the_shared_file_is_used(
    moto: Any, bucket: str, agent_credentials: Any, tmp_path: Path
) -> None:
    from configparser import ConfigParser

    from lab.moto import REGION

    parser = ConfigParser()
    parser.read(agent_credentials(*read_statements(bucket)))
    key_id, secret = (
        parser["default"]["aws_access_key_id"],
        parser["default"]["aws_secret_access_key"],
    )
    shared = tmp_path / "shared-credentials"
    shared.write_text(
        f"[agent]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n",
        encoding="utf-8",
    )
    url = f"s3://{bucket}/{PREFIX}"
    options = {"endpoint_url": moto.endpoint_url, "region": REGION}
    from_environment = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    from_shared = {"AWS_SHARED_CREDENTIALS_FILE": str(shared), "AWS_PROFILE": "agent"}
    nowhere = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent")}
    bodies = []
    for environ in (from_environment, from_shared):
        with S3Source(
            url, AGENT, bucket=bucket, prefix=PREFIX, environ=environ, max_bytes=99, **options
        ) as source:
            fetched = source.fetch("index.json")
            assert isinstance(fetched, Fetched)
            bodies.append(fetched.body)
    with S3Source(
        url, AGENT, bucket=bucket, prefix=PREFIX, environ=nowhere, max_bytes=99, **options
    ) as source, pytest.raises(SourceDenied) as caught:
        source.fetch("index.json")
    assert bodies == [b"index of nas-01"] * 2
    assert caught.value.backend_code == "NoCredentialsError"
    assert "source.credentials_file" in str(caught.value)
    assert source.counters.requests == 0
