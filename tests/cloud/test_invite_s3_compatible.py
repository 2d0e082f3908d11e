"""Invitations for an S3-compatible store (MinIO): an s3:// URL plus `storage.endpoint_url`; the
NAS needs both, and the MinIO user's keys, in the line (from an independent review: the first
two tests failed before the fix)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cloud.cli import fleet_commands
from cloud.cli.main import _parser
from cloud.errors import ConfigError

MINIO = "http://minio.lan:9000"


def _config() -> SimpleNamespace:
    storage = SimpleNamespace(
        store_url="s3://certdrop/prod", region="us-east-1", endpoint_url=MINIO, key_secrets=None
    )
    return SimpleNamespace(storage=storage)


def _credentials(tmp_path) -> str:
    path = tmp_path / "minio-user.ini"
    path.write_text("[default]\naws_access_key_id = MINIOUSER\naws_secret_access_key = s3cr3t\n")
    return str(path)


def test_a_minio_user_invited_with_source_and_credentials_gets_the_endpoint(tmp_path):
    args = _parser().parse_args(
        ["agent", "invite", "nas-01", "--site", "example", "--source", "s3://certdrop/prod",
         "--source-credentials", _credentials(tmp_path)]
    )  # fmt: skip

    source = fleet_commands._invite_source(_config(), args)

    assert source["access_key_id"] == "MINIOUSER"
    # Without it the NAS signs for and polls s3.us-east-1.amazonaws.com, not the MinIO store.
    assert source.get("endpoint_url") == MINIO, source


def test_source_credentials_for_this_store_are_not_silently_dropped(tmp_path):
    args = _parser().parse_args(
        ["agent", "invite", "nas-01", "--site", "example",
         "--source-credentials", _credentials(tmp_path)]
    )  # fmt: skip

    source = fleet_commands._invite_source(_config(), args)

    assert source.get("endpoint_url") == MINIO
    assert source.get("access_key_id") == "MINIOUSER", source


def test_credentials_for_a_source_that_is_not_s3_are_refused(tmp_path):
    args = _parser().parse_args(
        ["agent", "invite", "nas-01", "--site", "example", "--source", "https://mirror.lan/certs",
         "--source-credentials", _credentials(tmp_path)]
    )  # fmt: skip

    with pytest.raises(ConfigError, match="only an s3:// source takes S3 credentials"):
        fleet_commands._invite_source(_config(), args)


def test_an_https_mirror_carries_no_endpoint_of_the_store():
    args = _parser().parse_args(
        ["agent", "invite", "nas-01", "--site", "example", "--source", "https://mirror.lan/certs"]
    )

    assert fleet_commands._invite_source(_config(), args) == {"url": "https://mirror.lan/certs"}
