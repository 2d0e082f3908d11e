"""The https:// source against a local TLS server: conditional GETs, statuses, TLS, bad servers
(stalling, trickling, oversized)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from nas_agent.sources import Fetched, NotModified, Source, open_source
from nas_agent.sources.errors import (
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceTooLarge,
    SourceUnavailable,
)
from tests.agent.source_servers import StoreServer, outcome_within

AGENT = "nas-01"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StoreServer]:
    root = tmp_path / "store"
    (root / "agents" / AGENT).mkdir(parents=True)
    (root / "agents" / AGENT / "index.json").write_bytes(b'{"entries": []}')
    with StoreServer(root, tmp_path / "tls") as running:
        yield running


def source_of(server: StoreServer, **options: object) -> Source:
    return open_source(server.url, AGENT, ca_file=str(server.ca_file), **options)


def test_the_etag_is_sent_as_if_none_match_and_304_is_not_modified(server: StoreServer) -> None:
    with source_of(server) as source:
        first = source.fetch("index.json")
        assert isinstance(first, Fetched) and first.etag
        again = source.fetch("index.json", etag=first.etag)
    assert again == NotModified("index.json", first.etag)
    (path, first_headers), (_, second_headers) = server.seen
    assert path == f"/store/agents/{AGENT}/index.json"
    assert "If-None-Match" not in first_headers
    assert second_headers["If-None-Match"] == first.etag


def test_a_server_without_etags_gives_none_and_full_bodies(server: StoreServer) -> None:
    server.omit_etag = True
    with source_of(server) as source:
        first = source.fetch("index.json")
        second = source.fetch("index.json", etag=None)
    assert isinstance(first, Fetched) and first.etag is None
    assert isinstance(second, Fetched) and second.body == first.body


@pytest.mark.parametrize("status", [401, 403])
def test_refused_access_is_source_denied(server: StoreServer, status: int) -> None:
    server.answer_status = status
    with source_of(server) as source, pytest.raises(SourceDenied) as caught:
        source.fetch("index.json")
    assert caught.value.backend_code == str(status) and not caught.value.transient


@pytest.mark.parametrize("status", [404, 410])
def test_gone_objects_are_not_found(server: StoreServer, status: int) -> None:
    server.answer_status = status
    with source_of(server) as source, pytest.raises(SourceNotFound):
        source.fetch("index.json")


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_trouble_is_transient(server: StoreServer, status: int) -> None:
    server.answer_status = status
    with source_of(server) as source, pytest.raises(SourceUnavailable) as caught:
        source.fetch("index.json")
    assert caught.value.transient and caught.value.backend_code == str(status)


def test_other_client_errors_are_terminal(server: StoreServer) -> None:
    server.answer_status = 400
    with source_of(server) as source, pytest.raises(SourceError) as caught:
        source.fetch("index.json")
    assert type(caught.value) is SourceError and not caught.value.transient


def test_a_redirect_is_refused_without_showing_the_query(server: StoreServer) -> None:
    server.answer_status = 302
    server.location = "https://127.0.0.1:1/elsewhere?X-Amz-Signature=do-not-show"
    with source_of(server) as source, pytest.raises(SourceError) as caught:
        source.fetch("index.json")
    assert "https://127.0.0.1:1/elsewhere" in str(caught.value)
    assert "do-not-show" not in str(caught.value)
    assert len(server.seen) == 1  # not followed


def test_an_untrusted_certificate_is_a_terminal_tls_error(server: StoreServer) -> None:
    with open_source(server.url, AGENT) as source, pytest.raises(SourceError) as caught:
        source.fetch("index.json")
    assert caught.value.backend_code == "TLS" and not caught.value.transient
    assert "ca_file" in str(caught.value)


def test_a_closed_port_is_transient(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        source = open_source(f"https://127.0.0.1:{port}/", AGENT, timeout=5)
        with source, pytest.raises(SourceUnavailable):
            source.fetch("index.json")


def test_a_body_that_stops_coming_times_out_as_transient(server: StoreServer) -> None:
    server.stall_after = 3
    with source_of(server, timeout=0.5) as source, pytest.raises(SourceUnavailable) as caught:
        source.fetch("index.json")
    assert "cut short" in caught.value.reason


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_server_that_trickles_is_given_up_when_the_request_timeout_is_spent(
    server: StoreServer, part: str
) -> None:
    """Added with the fix of a defect an independent review found (over http, for s3://), failing
    before it: each byte came within the socket timeout, so a server sending its headers or body
    a byte every 0.1 s held the agent until it had sent them all."""
    (server.root / "agents" / AGENT / "index.json").write_bytes(b"z" * 1000)
    server.trickle = part
    source = source_of(server, timeout=0.5)
    started = time.monotonic()

    outcome = outcome_within(10, lambda: source.fetch("index.json"))

    elapsed = time.monotonic() - started
    source.close()
    assert isinstance(outcome, SourceUnavailable), outcome
    assert elapsed < 2, f"gave up after {elapsed:.1f} s, not within the 0.5 s timeout"


def test_a_body_without_length_is_cut_off_at_the_limit(server: StoreServer) -> None:
    (server.root / "agents" / AGENT / "index.json").write_bytes(b"z" * 300_000)
    server.omit_length = True
    with source_of(server, max_bytes=200_000) as source, pytest.raises(SourceTooLarge) as caught:
        source.fetch("index.json")
    assert caught.value.size is None  # told by counting, not by a header


def test_a_declared_length_over_the_limit_is_refused_before_reading(server: StoreServer) -> None:
    (server.root / "agents" / AGENT / "index.json").write_bytes(b"z" * 300)
    with source_of(server, max_bytes=200) as source, pytest.raises(SourceTooLarge) as caught:
        source.fetch("index.json")
    assert caught.value.size == 300
    assert source.counters.body_bytes == 0


def test_status_is_not_sent_to_a_read_only_https_source(server: StoreServer) -> None:
    with source_of(server) as source:
        assert source.put_status(b"{}") is False
    assert server.seen == []
