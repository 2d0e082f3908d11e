"""Store fixtures for the store tests. A test module uses one by naming it at module level:

    from tests.cloud import store_fixtures

    moto = store_fixtures.moto
    s3_store = store_fixtures.s3_store

(`moto` is module-scoped: each module that uses it gets its own server.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.store import Store
from cloud.store.local import LocalStore
from cloud.store.s3 import S3Store
from lab.moto import REGION, MotoServer, fake_aws_env

S3_PREFIX = "some/prefix"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with fake_aws_env(), MotoServer() as server:
        yield server


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def s3_store(moto: MotoServer) -> S3Store:
    """A store under `S3_PREFIX` in a bucket of its own."""
    return S3Store(moto.create_bucket(), S3_PREFIX, endpoint_url=moto.endpoint_url, region=REGION)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each backend in turn; moto starts only when the S3 one is asked for."""
    return request.getfixturevalue(f"{request.param}_store")
