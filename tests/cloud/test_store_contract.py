"""What every Store backend promises: the local directory and S3 (on moto's server) alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from cloud.errors import ObjectTooLarge, PreconditionFailed, StoreRefused
from cloud.store import StoredObject, Unchanged
from tests.cloud import store_fixtures

moto = store_fixtures.moto
local_store = store_fixtures.local_store
s3_store = store_fixtures.s3_store
store = store_fixtures.store


def _run_together(count: int, work: Callable[[int], None]) -> None:
    """Runs work(0..count-1) in threads released at the same moment; re-raises their errors."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        barrier.wait(timeout=30)
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker never finished"
    if errors:
        raise errors[0]


def test_a_put_object_reads_back_with_the_etag_put_returned(store):
    etag = store.put("state/sites/example.json", b'{"version": 1}')

    assert store.get("state/sites/example.json") == StoredObject(
        "state/sites/example.json", etag, b'{"version": 1}'
    )


def test_empty_and_large_bodies_round_trip(store):
    large = bytes(range(256)) * 4096  # 1 MiB
    store.put("empty", b"")
    store.put("large", large)

    assert store.get("empty").body == b""
    assert store.get("large").body == large


def test_the_etag_changes_with_the_content_and_only_with_it(store):
    first = store.put("k", b"one")
    second = store.put("k", b"two")
    again = store.put("k", b"two")

    assert first != second
    assert again == second


def test_getting_an_absent_key_gives_none(store):
    assert store.get("nothing/here") is None


def test_get_if_none_match_with_the_current_etag_gives_unchanged(store):
    etag = store.put("agents/a1/index.json", b"index")

    assert store.get("agents/a1/index.json", if_none_match=etag) == Unchanged(
        "agents/a1/index.json", etag
    )


def test_get_if_none_match_with_an_old_etag_gives_the_new_object(store):
    old = store.put("agents/a1/index.json", b"old index")
    new = store.put("agents/a1/index.json", b"new index")

    got = store.get("agents/a1/index.json", if_none_match=old)

    assert got == StoredObject("agents/a1/index.json", new, b"new index")


def test_get_if_none_match_of_an_absent_key_gives_none(store):
    etag = store.put("k", b"body")
    store.delete("k")

    assert store.get("k", if_none_match=etag) is None


def test_put_if_absent_creates_a_missing_object(store):
    etag = store.put("state/locks/example", b"owner-1", if_absent=True)

    assert store.get("state/locks/example") == StoredObject("state/locks/example", etag, b"owner-1")


def test_a_second_put_if_absent_fails_and_leaves_the_first_body(store):
    store.put("state/locks/example", b"owner-1", if_absent=True)

    with pytest.raises(PreconditionFailed) as caught:
        store.put("state/locks/example", b"owner-2", if_absent=True)

    assert caught.value.key == "state/locks/example"
    assert caught.value.transient is False
    assert store.get("state/locks/example").body == b"owner-1"


def test_put_if_match_with_the_current_etag_replaces_the_object(store):
    etag = store.put("k", b"v1")

    new = store.put("k", b"v2", if_match=etag)

    assert store.get("k") == StoredObject("k", new, b"v2")


def test_put_if_match_with_a_stale_etag_fails_and_keeps_the_body(store):
    stale = store.put("k", b"v1")
    store.put("k", b"v2")

    with pytest.raises(PreconditionFailed):
        store.put("k", b"v3", if_match=stale)

    assert store.get("k").body == b"v2"


def test_put_if_match_of_an_absent_key_fails_and_creates_nothing(store):
    etag = store.put("k", b"v1")
    store.delete("k")

    with pytest.raises(PreconditionFailed):
        store.put("k", b"v2", if_match=etag)

    assert store.get("k") is None


def test_put_refuses_if_absent_together_with_if_match(store):
    with pytest.raises(ValueError, match="exclude each other"):
        store.put("k", b"v", if_absent=True, if_match='"x"')


def test_delete_removes_the_object(store):
    store.put("k", b"v")

    store.delete("k")

    assert store.get("k") is None
    assert list(store.list("")) == []


def test_deleting_an_absent_key_is_fine(store):
    store.delete("never/written")
    store.delete("never/written", if_match='"0123"')


def test_delete_if_match_with_a_stale_etag_fails_and_keeps_the_object(store):
    stale = store.put("state/locks/example", b"owner-1")
    store.put("state/locks/example", b"owner-2")

    with pytest.raises(PreconditionFailed):
        store.delete("state/locks/example", if_match=stale)

    assert store.get("state/locks/example").body == b"owner-2"


def test_delete_if_match_with_the_current_etag_removes_the_object(store):
    etag = store.put("state/locks/example", b"owner-1")

    store.delete("state/locks/example", if_match=etag)

    assert store.get("state/locks/example") is None


def test_list_gives_the_objects_under_a_prefix_in_key_order(store):
    written = {}
    for key in ["state/sites/b.json", "state/sites/a.json", "state/sites/c/deep.json"]:
        written[key] = store.put(key, key.encode())
    store.put("state/sitesX.json", b"not under the prefix")
    store.put("agents/a1/index.json", b"elsewhere")

    listed = list(store.list("state/sites/"))

    assert [info.key for info in listed] == sorted(written)
    assert {info.key: info.etag for info in listed} == written
    assert {info.key: info.size for info in listed} == {k: len(k.encode()) for k in written}


def test_a_prefix_may_end_inside_a_segment(store):
    for key in ["state/sites/alpha.json", "state/sites/beta.json", "state/sitesX"]:
        store.put(key, b"")

    assert [info.key for info in store.list("state/sites/al")] == ["state/sites/alpha.json"]
    assert [info.key for info in store.list("state/sites")] == [
        "state/sites/alpha.json",
        "state/sites/beta.json",
        "state/sitesX",
    ]


def test_list_orders_keys_as_s3_does_by_utf8_bytes(store):
    keys = ["a/b", "a-b", "a0", "é", "z", "a b/ü", "Z"]
    for key in keys:
        store.put(key, b"")

    listed = [info.key for info in store.list("")]

    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_list_of_an_unused_prefix_is_empty(store):
    store.put("agents/a1/index.json", b"")

    assert list(store.list("agents/a2/")) == []
    assert list(store.list("nothing")) == []


def test_listed_objects_carry_a_timezone_aware_modification_time(store):
    store.put("k", b"v")

    (info,) = store.list("k")

    assert info.last_modified.tzinfo is not None


@pytest.mark.parametrize(
    "key", ["agents/Zoë/status.json", "sites/with space/ä ö ü.json", "emoji/🔐", "日本/証明書"]
)
def test_keys_with_unicode_and_spaces_work_everywhere(store, key):
    etag = store.put(key, b"body")

    assert store.get(key) == StoredObject(key, etag, b"body")
    assert [info.key for info in store.list(key.split("/")[0] + "/")] == [key]
    store.delete(key, if_match=etag)
    assert store.get(key) is None


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/absolute",
        "../escape",
        "a/../../escape",
        "a/./b",
        "a//b",
        "trailing/",
        "back\\slash",
        "nul\x00byte",
        "line\nbreak",
        ".certdrop-tmp-123",
        "a/.certdrop/locks/00",
        "x" * 1025,
    ],
)
def test_invalid_keys_are_refused_before_anything_is_touched(store, key):
    for call in (
        lambda: store.get(key),
        lambda: store.put(key, b"v"),
        lambda: store.delete(key),
    ):
        with pytest.raises(StoreRefused) as caught:
            call()
        assert caught.value.backend_code == "InvalidKey"
        assert caught.value.key == key
        assert caught.value.transient is False
    assert list(store.list("")) == []


@pytest.mark.parametrize("prefix", ["/abs", "../", "a//", "a/../b/", "back\\slash"])
def test_invalid_prefixes_are_refused_at_the_call(store, prefix):
    with pytest.raises(StoreRefused):
        store.list(prefix)


def test_of_many_threads_racing_to_create_one_key_exactly_one_wins(store):
    winners: list[int] = []

    def create(n: int) -> None:
        try:
            store.put("state/locks/race", f"owner-{n}".encode(), if_absent=True)
        except PreconditionFailed:
            return
        winners.append(n)

    _run_together(8, create)

    assert len(winners) == 1
    assert store.get("state/locks/race").body == f"owner-{winners[0]}".encode()


def test_compare_and_swap_increments_from_many_threads_lose_no_update(store):
    store.put("counter", b"0")
    threads, rounds = 6, 15

    def increment(_: int) -> None:
        for _ in range(rounds):
            while True:
                current = store.get("counter")
                try:
                    store.put("counter", b"%d" % (int(current.body) + 1), if_match=current.etag)
                    break
                except PreconditionFailed:
                    continue

    _run_together(threads, increment)

    assert int(store.get("counter").body) == threads * rounds


# --- bounded reads: objects anyone else can write (an agent's report) -----------------------------


def test_a_bounded_get_returns_an_object_within_the_bound_and_when_it_was_written(store):
    before = datetime.now(UTC) - timedelta(minutes=1)
    etag = store.put("agents/a1/status.json", b"x" * 100)

    exact = store.get("agents/a1/status.json", max_bytes=100)
    empty_store_key = store.put("empty", b"")

    assert exact == StoredObject("agents/a1/status.json", etag, b"x" * 100)
    assert before <= exact.modified <= datetime.now(UTC) + timedelta(minutes=1)
    assert store.get("empty", max_bytes=0).etag == empty_store_key
    assert store.get("missing", max_bytes=10) is None


def test_a_bounded_get_of_a_larger_object_refuses_it(store):
    store.put("agents/a1/status.json", b"x" * 101)

    with pytest.raises(ObjectTooLarge) as refused:
        store.get("agents/a1/status.json", max_bytes=100)

    assert refused.value.code == "store.object_too_large" and not refused.value.transient
    assert (refused.value.limit, refused.value.size) == (100, 101)
    assert refused.value.key == "agents/a1/status.json"
