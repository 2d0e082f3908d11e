"""The file:// source: a mounted share that may be missing, unmounted, or hold odd files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nas_agent.sources import Fetched, open_source
from nas_agent.sources.errors import SourceError, SourceNotFound, SourceUnavailable

AGENT = "nas-01"


def published(root: Path) -> Path:
    agent_dir = root / "agents" / AGENT
    agent_dir.mkdir(parents=True)
    (agent_dir / "index.json").write_bytes(b"{}")
    return agent_dir


def test_a_missing_root_is_transient_as_a_share_not_mounted(tmp_path: Path) -> None:
    source = open_source((tmp_path / "gone").as_uri(), AGENT)
    with source, pytest.raises(SourceUnavailable) as caught:
        source.fetch("index.json")
    assert caught.value.transient and caught.value.backend_code == "NoRoot"
    assert "mounted" in str(caught.value)


def test_an_empty_mount_point_reads_as_nothing_published_and_hints_at_the_mount(
    tmp_path: Path,
) -> None:
    with open_source(tmp_path.as_uri(), AGENT) as source:
        with pytest.raises(SourceNotFound) as caught:
            source.fetch("index.json")
        written = source.put_status(b"{}")
    assert "mounted" in str(caught.value)
    assert written is False
    assert list(tmp_path.iterdir()) == []  # nothing written into a bare mount point


def test_status_creates_the_agents_folder_in_a_published_store(tmp_path: Path) -> None:
    (tmp_path / "agents" / "nas-02").mkdir(parents=True)
    with open_source(tmp_path.as_uri(), AGENT) as source:
        assert source.put_status(b'{"a": 1}') is True
    assert (tmp_path / "agents" / AGENT / "status.json").read_bytes() == b'{"a": 1}'


def test_status_replaces_the_old_one_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    agent_dir = published(tmp_path)
    with open_source(tmp_path.as_uri(), AGENT) as source:
        source.put_status(b"first, and longer than the second")
        source.put_status(b"second")
    status = agent_dir / "status.json"
    assert status.read_bytes() == b"second"
    assert stat.S_IMODE(status.stat().st_mode) == 0o644
    assert sorted(p.name for p in agent_dir.iterdir()) == ["index.json", "status.json"]


def test_a_directory_where_an_object_should_be_is_terminal(tmp_path: Path) -> None:
    (published(tmp_path) / "bundles" / "site" / "1.sealed").mkdir(parents=True)
    with open_source(tmp_path.as_uri(), AGENT) as source, pytest.raises(SourceError) as caught:
        source.fetch("bundles/site/1.sealed")
    assert type(caught.value) is SourceError and not caught.value.transient


def test_a_fifo_where_an_object_should_be_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(published(tmp_path) / "status.json")
    with open_source(tmp_path.as_uri(), AGENT) as source, pytest.raises(SourceError) as caught:
        source.fetch("status.json")
    assert caught.value.backend_code == "NotAFile"


def test_a_percent_encoded_root_is_decoded(tmp_path: Path) -> None:
    root = tmp_path / "share with space"
    published(root)
    with open_source(root.as_uri(), AGENT) as source:
        assert "%20" in root.as_uri()
        fetched = source.fetch("index.json")
    assert isinstance(fetched, Fetched) and fetched.body == b"{}"
