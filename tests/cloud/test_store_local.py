"""What only the local directory store has to get right: processes, crashes, the file tree."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import threading
from pathlib import Path

import pytest

from cloud.errors import PreconditionFailed, StoreRefused
from cloud.store.local import LocalStore
from tests.cloud import store_fixtures

local_store = store_fixtures.local_store

_spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no lock state inherited


def _create_in_process(root: str, n: int, barrier, results) -> None:
    store = LocalStore(root)
    barrier.wait(timeout=60)
    try:
        store.put("state/locks/race", f"owner-{n}".encode(), if_absent=True)
    except PreconditionFailed:
        results.put(("lost", n))
    else:
        results.put(("won", n))


def _increment_in_process(root: str, rounds: int, barrier) -> None:
    store = LocalStore(root)
    barrier.wait(timeout=60)
    for _ in range(rounds):
        while True:
            current = store.get("counter")
            try:
                store.put("counter", b"%d" % (int(current.body) + 1), if_match=current.etag)
                break
            except PreconditionFailed:
                continue


def _die_at(root: str, call: str, key: str, body: bytes, if_absent: bool) -> None:
    """Writes `key`, but the process dies where `call` ("replace" or "link") would publish it."""
    setattr(os, call, lambda *args, **kwargs: os._exit(3))
    LocalStore(root).put(key, body, if_absent=if_absent)


def _run_processes(target, args_for) -> list:
    processes = [_spawn.Process(target=target, args=args) for args in args_for]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert all(p.exitcode is not None for p in processes), "a process never finished"
    return [p.exitcode for p in processes]


def test_of_many_processes_racing_to_create_one_key_exactly_one_wins(local_store):
    count = 6
    barrier, results = _spawn.Barrier(count), _spawn.Queue()

    codes = _run_processes(
        _create_in_process, [(local_store.root, n, barrier, results) for n in range(count)]
    )

    outcomes = [results.get(timeout=10) for _ in range(count)]
    winners = [n for outcome, n in outcomes if outcome == "won"]
    assert codes == [0] * count
    assert len(winners) == 1
    assert local_store.get("state/locks/race").body == f"owner-{winners[0]}".encode()


def test_compare_and_swap_increments_from_many_processes_lose_no_update(local_store):
    local_store.put("counter", b"0")
    count, rounds = 4, 25
    barrier = _spawn.Barrier(count)

    codes = _run_processes(_increment_in_process, [(local_store.root, rounds, barrier)] * count)

    assert codes == [0] * count
    assert int(local_store.get("counter").body) == count * rounds


def test_a_writer_dying_before_the_rename_leaves_the_old_object_whole(local_store):
    etag = local_store.put("state/sites/example.json", b"old state")

    codes = _run_processes(
        _die_at, [(local_store.root, "replace", "state/sites/example.json", b"new", False)]
    )

    assert codes == [3]
    leftovers = [p.name for p in Path(local_store.root, "state", "sites").iterdir()]
    assert len(leftovers) == 2  # the object and the dead writer's temporary file
    assert local_store.get("state/sites/example.json").body == b"old state"
    assert [(i.key, i.etag) for i in local_store.list("")] == [("state/sites/example.json", etag)]


def test_a_creator_dying_before_the_link_leaves_no_object(local_store):
    codes = _run_processes(
        _die_at, [(local_store.root, "link", "state/locks/example", b"owner", True)]
    )

    assert codes == [3]
    assert len(list(Path(local_store.root, "state", "locks").iterdir())) == 1  # the temp file
    assert local_store.get("state/locks/example") is None
    assert list(local_store.list("")) == []
    local_store.put("state/locks/example", b"next owner", if_absent=True)


def test_a_writer_dying_while_holding_the_lock_does_not_block_the_next(local_store):
    _run_processes(_die_at, [(local_store.root, "replace", "k", b"lost", False)])
    finished = threading.Event()

    def write() -> None:
        local_store.put("k", b"next", if_absent=True)
        finished.set()

    threading.Thread(target=write, daemon=True).start()

    assert finished.wait(timeout=30), "the dead writer's lock was never released"
    assert local_store.get("k").body == b"next"


def test_a_stray_temporary_file_is_neither_listed_nor_readable(local_store):
    local_store.put("state/sites/a.json", b"a")
    Path(local_store.root, "state", "sites", ".certdrop-tmp-0123abcd").write_bytes(b"half")

    assert [info.key for info in local_store.list("state/")] == ["state/sites/a.json"]
    with pytest.raises(StoreRefused):
        local_store.get("state/sites/.certdrop-tmp-0123abcd")


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "/tmp/escape", "..\\escape"])
def test_keys_that_would_escape_the_root_write_nothing_anywhere(tmp_path, key):
    store = LocalStore(tmp_path / "store")

    with pytest.raises(StoreRefused, match="invalid key"):
        store.put(key, b"x")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert list(Path(store.root).iterdir()) == []


def test_each_object_is_a_plain_file_holding_its_body_under_the_root(local_store):
    local_store.put("agents/a1/bundles/example/3.sealed", b"sealed bytes")

    path = Path(local_store.root, "agents", "a1", "bundles", "example", "3.sealed")
    assert path.read_bytes() == b"sealed bytes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_etag_is_the_quoted_sha256_of_the_body(local_store):
    etag = local_store.put("k", b"body")

    assert etag == f'"{hashlib.sha256(b"body").hexdigest()}"'


def test_directories_the_store_creates_get_the_mode_asked_for(tmp_path):
    store = LocalStore(tmp_path / "private", dir_mode=0o700)
    store.put("state/sites/a.json", b"a")

    root = Path(store.root)
    for directory in (root, root / "state", root / "state" / "sites"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.parametrize("first, second", [("a", "a/b"), ("a/b", "a")])
def test_an_object_cannot_also_be_a_directory_of_objects(local_store, first, second):
    local_store.put(first, b"first")

    with pytest.raises(StoreRefused) as caught:
        local_store.put(second, b"second")

    assert caught.value.backend_code == "PathConflict"
    assert local_store.get(first).body == b"first"
    assert local_store.get(second) is None


def test_creating_a_key_that_is_a_directory_is_a_conflict_not_a_lost_race(local_store):
    local_store.put("a/b", b"")

    with pytest.raises(StoreRefused) as caught:
        local_store.put("a", b"", if_absent=True)

    assert caught.value.backend_code == "PathConflict"


def test_deleting_a_key_that_is_a_directory_leaves_the_objects_below(local_store):
    local_store.put("a/b", b"kept")

    local_store.delete("a")

    assert local_store.get("a/b").body == b"kept"


def test_a_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_bytes(b"")

    with pytest.raises(StoreRefused) as caught:
        LocalStore(tmp_path / "file")

    assert caught.value.backend_code == "NoRoot"


def test_a_missing_root_is_refused_when_creation_is_off(tmp_path):
    with pytest.raises(StoreRefused) as caught:
        LocalStore(tmp_path / "missing", create=False)

    assert caught.value.backend_code == "NoRoot"
    assert not (tmp_path / "missing").exists()
