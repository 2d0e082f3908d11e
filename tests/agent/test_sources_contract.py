"""What every kind of source does the same: file:// over a directory, https:// over a local TLS
server serving that directory, s3:// over moto's server (skipped where moto is not installed)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from nas_agent.sources import Fetched, NotModified, Source, open_source
from nas_agent.sources.errors import SourceNotFound, SourceTooLarge
from tests.agent.source_servers import Backend, DirectoryBackend, S3Backend, StoreServer

AGENT = "nas-01"
INDEX = f"agents/{AGENT}/index.json"
_buckets = itertools.count(1)


@pytest.fixture(params=["file", "https", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        yield DirectoryBackend(tmp_path / "store")
    elif request.param == "https":
        with StoreServer(tmp_path / "store", tmp_path / "tls") as server:
            yield DirectoryBackend(
                tmp_path / "store", url=server.url, writable=False, ca_file=str(server.ca_file)
            )
    else:
        moto = request.getfixturevalue("moto")
        admin = request.getfixturevalue("s3_admin")
        from lab.moto import REGION

        bucket = f"agent-sources-{next(_buckets)}"
        admin.create_bucket(Bucket=bucket)
        yield S3Backend(
            admin,
            bucket,
            "certdrop/prod",
            endpoint_url=moto.endpoint_url,
            region=REGION,
        )


def open_for(backend: Backend, agent_id: str = AGENT, **options: Any) -> Source:
    return open_source(backend.url, agent_id, **{**backend.options, **options})


def test_fetch_returns_the_body_and_an_etag(backend: Backend) -> None:
    backend.put(INDEX, b'{"entries": []}')
    with open_for(backend) as source:
        fetched = source.fetch("index.json")
    assert isinstance(fetched, Fetched)
    assert (fetched.name, fetched.body) == ("index.json", b'{"entries": []}')
    assert fetched.etag


def test_fetch_with_the_current_etag_is_not_modified_and_moves_no_body(backend: Backend) -> None:
    backend.put(INDEX, b"x" * 1000)
    with open_for(backend) as source:
        first = source.fetch("index.json")
        assert isinstance(first, Fetched)
        before = source.counters
        again = source.fetch("index.json", etag=first.etag)
        after = source.counters
    assert again == NotModified("index.json", first.etag)
    assert after.requests == before.requests + 1
    assert after.body_bytes == before.body_bytes


def test_a_changed_object_is_fetched_again_under_a_new_etag(backend: Backend) -> None:
    backend.put(INDEX, b"version 1")
    with open_for(backend) as source:
        first = source.fetch("index.json")
        backend.put(INDEX, b"version 2")
        second = source.fetch("index.json", etag=first.etag)
    assert isinstance(second, Fetched)
    assert second.body == b"version 2"
    assert second.etag != first.etag


def test_bundles_are_read_below_the_agents_prefix(backend: Backend) -> None:
    sealed = hashlib.sha256(b"sealed").digest() * 8
    backend.put(f"agents/{AGENT}/bundles/example.com/7.sealed", sealed)
    with open_for(backend) as source:
        fetched = source.fetch("bundles/example.com/7.sealed")
    assert isinstance(fetched, Fetched) and fetched.body == sealed


def test_an_absent_object_raises_source_not_found(backend: Backend) -> None:
    backend.put(INDEX, b"{}")
    with open_for(backend) as source, pytest.raises(SourceNotFound) as caught:
        source.fetch("bundles/example.com/1.sealed")
    assert caught.value.name == "bundles/example.com/1.sealed"
    assert not caught.value.transient


def test_the_agent_never_reads_another_agents_objects(backend: Backend) -> None:
    backend.put("agents/nas-02/index.json", b"for nas-02")
    with open_for(backend, "nas-01") as source, pytest.raises(SourceNotFound):
        source.fetch("index.json")


@pytest.mark.parametrize("name", ["../nas-02/index.json", "/index.json", "a//b", "", "./x", "a/.."])
def test_names_that_could_leave_the_prefix_are_refused(backend: Backend, name: str) -> None:
    with open_for(backend) as source, pytest.raises(ValueError, match="not a plain relative"):
        source.fetch(name)
    assert source.counters.requests == 0


def test_a_body_over_the_limit_is_refused(backend: Backend) -> None:
    backend.put(INDEX, b"y" * 101)
    with open_for(backend, max_bytes=100) as source:
        with pytest.raises(SourceTooLarge) as caught:
            source.fetch("index.json")
        backend.put(INDEX, b"y" * 100)
        fetched = source.fetch("index.json")
    assert caught.value.limit == 100 and not caught.value.transient
    assert isinstance(fetched, Fetched) and len(fetched.body) == 100


def test_a_limit_given_to_one_fetch_lowers_the_sources_but_never_raises_it(
    backend: Backend,
) -> None:
    """The sealed-object cap (about 256 KiB) below the source's 1 MiB: added with the fix of a
    defect an independent review found (sealed objects were read up to the source's limit)."""
    backend.put(INDEX, b"y" * 101)
    with open_for(backend, max_bytes=200) as source:
        with pytest.raises(SourceTooLarge) as lowered:
            source.fetch("index.json", max_bytes=100)
        fetched = source.fetch("index.json", max_bytes=101)
    with open_for(backend, max_bytes=100) as small, pytest.raises(SourceTooLarge) as kept:
        small.fetch("index.json", max_bytes=1000)
    assert lowered.value.limit == 100 and kept.value.limit == 100
    assert isinstance(fetched, Fetched) and len(fetched.body) == 101
    assert source.counters.body_bytes == 101


def test_counters_add_up_requests_and_body_bytes(backend: Backend) -> None:
    backend.put(INDEX, b"12345")
    backend.put(f"agents/{AGENT}/bundles/s/1.sealed", b"abc")
    with open_for(backend) as source:
        assert (source.counters.requests, source.counters.body_bytes) == (0, 0)
        source.fetch("index.json")
        source.fetch("bundles/s/1.sealed")
        counters = source.counters
    assert (counters.requests, counters.body_bytes) == (2, 8)


def test_status_is_written_where_the_source_can_be_written(backend: Backend) -> None:
    backend.put(INDEX, b"{}")
    body = json.dumps({"agent": AGENT, "installed": {}}).encode()
    with open_for(backend) as source:
        written = source.put_status(body)
    assert written is backend.writable
    assert backend.read(f"agents/{AGENT}/status.json") == (body if backend.writable else None)
