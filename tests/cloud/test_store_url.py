"""open_store: which backend a URL names, and what it says about a URL it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.errors import ConfigError
from cloud.store.local import LocalStore
from cloud.store.s3 import S3Store
from cloud.store.url import open_store


def test_an_s3_url_names_the_bucket_and_the_key_prefix():
    store = open_store(
        "s3://certdrop-prod/fleet/eu/", endpoint_url="http://127.0.0.1:9", region="eu-west-1"
    )

    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("certdrop-prod", "fleet/eu/")
    assert (store.endpoint_url, store.region) == ("http://127.0.0.1:9", "eu-west-1")


def test_an_s3_url_without_a_prefix_uses_the_bucket_root():
    store = open_store("s3://certdrop-prod")

    assert (store.bucket, store.prefix) == ("certdrop-prod", "")


def test_a_file_url_names_a_directory_and_may_be_percent_encoded(tmp_path):
    directory = tmp_path / "my store"

    store = open_store(directory.as_uri())

    assert isinstance(store, LocalStore)
    assert store.root == str(directory)
    assert directory.is_dir()


def test_a_plain_path_is_a_directory_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    store = open_store("data/store", dir_mode=0o700)

    assert store.root == str(tmp_path / "data" / "store")
    assert Path(store.root).stat().st_mode & 0o777 == 0o700


def test_options_given_as_none_are_ignored(tmp_path):
    store = open_store(str(tmp_path), endpoint_url=None, region=None)

    assert isinstance(store, LocalStore)


@pytest.mark.parametrize(
    "url, complaint",
    [
        ("gs://bucket/prefix", "scheme 'gs' is not supported"),
        ("s3://", "names a bucket"),
        ("s3://bucket/prefix?region=eu-west-1", "names a bucket"),
        ("s3://bucket/a/../b", "'..' segment"),
        ("file://otherhost/srv/store", "local directory"),
        ("", "no directory"),
    ],
)
def test_a_url_that_cannot_be_used_is_a_config_error_naming_the_setting(url, complaint):
    with pytest.raises(ConfigError) as caught:
        open_store(url)

    (problem,) = caught.value.problems
    assert problem.key == "storage.url"
    assert complaint in problem.cause
    assert "s3://bucket/prefix" in problem.fix


def test_an_option_the_backend_does_not_take_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="endpoint_url"):
        open_store(str(tmp_path), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="dir_mode"):
        open_store("s3://bucket", dir_mode=0o700)
