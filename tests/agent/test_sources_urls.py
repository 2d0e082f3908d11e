"""Source URLs and options: each form opens its kind; every mistake is reported with its key."""

from __future__ import annotations

import pytest

from nas_agent.config.errors import AgentConfigError
from nas_agent.sources import check_source_url, open_source
from nas_agent.sources.file import FileSource
from nas_agent.sources.https import HttpsSource
from nas_agent.sources.s3 import S3Source

AGENT = "nas-01"


@pytest.mark.parametrize(
    ("url", "kind", "location"),
    [
        ("s3://certdrop/prod", S3Source, "s3://certdrop/prod/agents/nas-01/"),
        ("s3://certdrop", S3Source, "s3://certdrop/agents/nas-01/"),
        (
            "https://certs.example.com/drop/",
            HttpsSource,
            "https://certs.example.com/drop/agents/nas-01/",
        ),
        ("https://127.0.0.1:8443", HttpsSource, "https://127.0.0.1:8443/agents/nas-01/"),
        ("file:///mnt/share/certdrop", FileSource, "file:///mnt/share/certdrop/agents/nas-01/"),
        ("file://localhost/mnt/share/", FileSource, "file://localhost/mnt/share/agents/nas-01/"),
    ],
)
def test_each_url_form_opens_its_kind_of_source(url: str, kind: type, location: str) -> None:
    with open_source(url, AGENT) as source:
        assert isinstance(source, kind)
        assert source.location == location
        assert source.agent_id == AGENT


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("http://certs.example.com/", "plain http:// is refused"),
        ("ftp://certs.example.com/", "is not an s3://, https:// or file:// URL"),
        ("/mnt/share/certdrop", "is not an s3://, https:// or file:// URL"),
        ("s3:///prefix", "is not a bucket name"),
        ("s3://bucket:9000/prefix", "is not a bucket name"),
        ("s3://bucket/a/../b", "odd segment"),
        ("https:///path", "has no host"),
        ("https://certs.example.com/?token=1", "has a query or fragment"),
        ("file://fileserver/share", "names the host"),
        ("file:///", "needs an absolute directory"),
    ],
)
def test_a_bad_url_is_a_problem_of_source_url(url: str, cause: str) -> None:
    with pytest.raises(AgentConfigError) as caught:
        check_source_url(url)
    (problem,) = caught.value.problems
    assert problem.key == "source.url"
    assert cause in problem.cause
    assert problem.fix


def test_credentials_in_a_url_are_refused_without_being_repeated() -> None:
    with pytest.raises(AgentConfigError) as caught:
        open_source("https://agent:hunter2@certs.example.com/", AGENT)
    assert "holds credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "cause"),
    [
        # From an independent review, failing before the fix: the first two passed the check,
        # and the first request ended in a traceback (exit 1), not a configuration problem.
        ("https://minio.lan:9000x", "is not a URL"),
        ("http://[::1", "is not a URL"),
        ("minio.lan:9000", "is not an https:// or http:// URL"),
        ("https://:9000", "with a host"),
        ("https://minio.lan:9000/?versionId=1", "has a query or fragment"),
    ],
)
def test_a_bad_endpoint_url_is_a_problem_of_source_endpoint_url(endpoint: str, cause: str) -> None:
    with pytest.raises(AgentConfigError) as caught:
        check_source_url("s3://bucket/p", endpoint_url=endpoint)
    (problem,) = caught.value.problems
    assert problem.key == "source.endpoint_url"
    assert cause in problem.cause
    assert problem.fix


def test_credentials_in_an_endpoint_url_are_refused_without_being_repeated() -> None:
    with pytest.raises(AgentConfigError) as caught:
        check_source_url("s3://bucket/p", endpoint_url="https://minio:hunter2@minio.lan:9000")
    assert "holds credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_virtual_addressing_at_an_ip_address_is_refused() -> None:
    """The bucket would go in the host name (certs.192.168.1.10), which no resolver knows."""
    with pytest.raises(AgentConfigError) as caught:
        check_source_url(
            "s3://certs/p", endpoint_url="http://192.168.1.10:9000", addressing_style="virtual"
        )
    (problem,) = caught.value.problems
    assert problem.key == "source.addressing_style"
    assert "path" in problem.fix


def test_an_option_the_kind_does_not_take_names_the_kinds_that_do() -> None:
    with pytest.raises(AgentConfigError) as caught:
        open_source("https://certs.example.com/", AGENT, endpoint_url="https://minio:9000")
    (problem,) = caught.value.problems
    assert problem.key == "source.endpoint_url"
    assert "only s3:// takes it" in problem.cause


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(AgentConfigError) as caught:
        open_source(
            "s3://bucket/p",
            "NAS_01",
            endpoint_url="minio:9000",
            addressing_style="sideways",
            timeout=0,
            ca_file="",
        )
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == [
        "agent.id",
        "source.addressing_style",
        "source.ca_file",
        "source.endpoint_url",
        "source.timeout",
    ]


def test_a_bad_url_and_a_bad_agent_id_are_reported_together() -> None:
    with pytest.raises(AgentConfigError) as caught:
        open_source("http://x/", "Bad Id")
    assert sorted(p.key for p in caught.value.problems) == ["agent.id", "source.url"]


def test_options_given_as_none_are_left_out() -> None:
    with open_source("file:///mnt/share", AGENT, endpoint_url=None, ca_file=None) as source:
        assert isinstance(source, FileSource)
