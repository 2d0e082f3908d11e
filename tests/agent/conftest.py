"""Fixtures shared by the agent's tests (they also run on Python 3.8)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture(scope="module")
def moto() -> Iterator[Any]:
    """moto's S3 server on loopback, where moto is installed."""
    pytest.importorskip("moto", reason="moto (S3 server) is not installed for this Python")
    from lab.moto import MotoServer, fake_aws_env

    with fake_aws_env(), MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def s3_admin(moto: Any) -> Any:
    """The client that publishes into moto, made once: a boto3 client takes a while to make."""
    return moto.client("s3")
