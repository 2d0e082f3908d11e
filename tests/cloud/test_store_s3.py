"""What only the S3 backend has to get right: its key prefix, S3's errors, retries, request counts.

Faults moto cannot produce (409 conflicts, throttling, a lost answer) are injected at botocore's
`before-send` hook of the store's own client: the request is answered there, or really sent to
moto and its answer dropped. A `before-parameter-build` hook shrinks list pages.
"""

from __future__ import annotations

from collections import Counter

import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError

from cloud.errors import ObjectTooLarge, PreconditionFailed, StoreError, StoreRefused
from cloud.store.s3 import S3Store
from lab.moto import REGION, MotoServer
from lab.ports import free_port
from tests.cloud import store_fixtures

moto = store_fixtures.moto
s3_store = store_fixtures.s3_store


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_):
        yield self._data


def _answer(store: S3Store, operation: str, answers: list[tuple[int, str]]) -> None:
    """The next sends of `operation` get these (HTTP status, S3 error code) answers instead."""
    pending = list(answers)

    def handler(request, **_):
        if not pending:
            return None
        status, code = pending.pop(0)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, {}, _Body(body))

    store.client.meta.events.register(f"before-send.s3.{operation}", handler)


def _lose_first_answer(store: S3Store, operation: str) -> None:
    """The first send of `operation` reaches moto, but its answer is lost on the way back."""
    sent = []

    def handler(request, **_):
        if sent:
            return None
        body = request.body.read() if hasattr(request.body, "read") else request.body
        urllib3.request(request.method, request.url, body=body, headers=dict(request.headers))
        sent.append(request.url)
        raise ConnectionClosedError(endpoint_url=request.url)

    store.client.meta.events.register(f"before-send.s3.{operation}", handler)


def _store(moto: MotoServer, bucket: str, prefix: str = "", **options) -> S3Store:
    return S3Store(bucket, prefix, endpoint_url=moto.endpoint_url, region=REGION, **options)


def test_objects_live_under_the_prefix_and_callers_never_see_it(moto):
    bucket = moto.create_bucket()
    store = _store(moto, bucket, "/some/prefix/")
    raw = moto.client("s3")
    store.put("agents/a1/index.json", b"index")
    for outside in ["some/prefixed/x", "some/other", "other/some/prefix/y", "agents/a1/z"]:
        raw.put_object(Bucket=bucket, Key=outside, Body=b"outside")

    raw_keys = [
        o["Key"] for o in raw.list_objects_v2(Bucket=bucket, Prefix="some/prefix/")["Contents"]
    ]
    assert raw_keys == ["some/prefix/agents/a1/index.json"]
    assert [info.key for info in store.list("")] == ["agents/a1/index.json"]
    assert store.get("agents/a1/index.json").key == "agents/a1/index.json"
    assert store.get("agents/a1/z") is None


def test_a_store_without_prefix_uses_the_bucket_root(moto):
    bucket = moto.create_bucket()
    store = _store(moto, bucket)

    store.put("config/certdrop.toml", b"toml")

    assert (
        moto.client("s3").get_object(Bucket=bucket, Key="config/certdrop.toml")["Body"].read()
        == b"toml"
    )


def test_listing_follows_every_page(moto):
    bucket = moto.create_bucket()
    keys = [f"state/sites/site-{n}.json" for n in range(5)]
    raw = moto.client("s3")
    for key in keys:
        raw.put_object(Bucket=bucket, Key=key, Body=b"{}")
    store = _store(moto, bucket)

    def two_per_page(params, **_):
        params["MaxKeys"] = 2  # S3 pages hold 1000; this makes 5 keys take 3 pages

    store.client.meta.events.register("before-parameter-build.s3.ListObjectsV2", two_per_page)

    listed = [info.key for info in store.list("state/sites/")]

    assert listed == keys
    assert store.request_counts["ListObjectsV2"] == 3


def test_request_counts_say_how_many_requests_of_each_kind_were_sent(s3_store):
    etag = s3_store.put("agents/a1/index.json", b"index")
    s3_store.get("agents/a1/index.json")
    s3_store.get("agents/a1/index.json", if_none_match=etag)
    list(s3_store.list("agents/"))
    s3_store.delete("agents/a1/index.json")

    assert s3_store.request_counts == Counter(
        {"PutObject": 1, "GetObject": 2, "ListObjectsV2": 1, "DeleteObject": 1}
    )


def test_a_missing_bucket_is_a_terminal_error_that_names_it(moto):
    store = _store(moto, "no-such-bucket-here")

    for call in (
        lambda: store.get("k"),
        lambda: store.put("k", b"v"),
        lambda: store.put("k", b"v", if_absent=True),
        lambda: store.delete("k"),
        lambda: list(store.list("")),
    ):
        with pytest.raises(StoreRefused) as caught:
            call()
        assert caught.value.backend_code == "NoSuchBucket"
        assert caught.value.transient is False
        assert "bucket 'no-such-bucket-here' does not exist" in str(caught.value)


def test_an_unreachable_endpoint_is_a_transient_error():
    store = S3Store(
        "bucket", endpoint_url=f"http://127.0.0.1:{free_port()}", region=REGION, max_attempts=1
    )

    with pytest.raises(StoreError) as caught:
        store.get("k")

    assert not isinstance(caught.value, StoreRefused)
    assert caught.value.transient is True
    assert caught.value.key == "k"


@pytest.mark.parametrize("status, code", [(503, "SlowDown"), (500, "InternalError")])
def test_throttling_and_server_errors_are_transient(moto, status, code):
    store = _store(moto, moto.create_bucket(), max_attempts=1)
    _answer(store, "PutObject", [(status, code)])

    with pytest.raises(StoreError, match=code) as caught:
        store.put("k", b"v")

    assert caught.value.transient is True


def test_access_denied_is_terminal_and_carries_the_code(moto):
    store = _store(moto, moto.create_bucket())
    _answer(store, "GetObject", [(403, "AccessDenied")])

    with pytest.raises(StoreRefused) as caught:
        store.get("k")

    assert caught.value.backend_code == "AccessDenied"


def test_a_conditional_request_conflict_is_sent_again_after_a_short_wait(moto):
    sleeps: list[float] = []
    store = _store(moto, moto.create_bucket(), sleep=sleeps.append)
    _answer(store, "PutObject", [(409, "ConditionalRequestConflict")] * 2)

    etag = store.put("state/locks/example", b"owner", if_absent=True)

    assert store.get("state/locks/example").etag == etag
    assert store.request_counts["PutObject"] == 3
    assert len(sleeps) == 2
    assert all(0 <= delay <= 1 for delay in sleeps)


def test_a_conflict_that_persists_is_transient_not_a_lost_race(moto):
    store = _store(moto, moto.create_bucket(), sleep=lambda _: None, conflict_retries=2)
    _answer(store, "DeleteObject", [(409, "ConditionalRequestConflict")] * 3)

    with pytest.raises(StoreError, match="ConditionalRequestConflict") as caught:
        store.delete("k", if_match='"0123"')

    assert not isinstance(caught.value, PreconditionFailed)
    assert caught.value.transient is True
    assert store.request_counts["DeleteObject"] == 3


def test_a_create_whose_answer_was_lost_is_recognised_as_ours_on_the_retry(moto):
    store = _store(moto, moto.create_bucket())
    _lose_first_answer(store, "PutObject")

    etag = store.put("state/locks/example", b"owner-1", if_absent=True)

    assert store.get("state/locks/example").etag == etag
    assert store.request_counts["HeadObject"] == 1  # the retry was answered 412: was it ours?


def test_a_create_retried_after_a_lost_answer_still_loses_to_another_body(moto):
    store = _store(moto, moto.create_bucket())
    store.put("state/locks/example", b"owner-1")
    _lose_first_answer(store, "PutObject")

    with pytest.raises(PreconditionFailed):
        store.put("state/locks/example", b"owner-2", if_absent=True)

    assert store.get("state/locks/example").body == b"owner-1"


@pytest.mark.parametrize("bucket, prefix", [("", ""), ("a/b", ""), ("bucket", "a/../b")])
def test_bad_bucket_or_prefix_is_refused_at_construction(bucket, prefix):
    with pytest.raises(ValueError):
        S3Store(bucket, prefix)


def test_a_bounded_get_of_a_large_object_reads_none_of_its_body(s3_store, monkeypatch):
    s3_store.put("agents/a1/status.json", b"x" * (4 * 1024 * 1024))
    real_get_object = s3_store.client.get_object
    read: list[int | None] = []

    def get_object(**params):
        response = real_get_object(**params)
        stream, real_read = response["Body"], response["Body"].read

        def counted(amt=None):
            read.append(amt)
            return real_read(amt)

        stream.read = counted
        return response

    monkeypatch.setattr(s3_store.client, "get_object", get_object)

    with pytest.raises(ObjectTooLarge) as refused:
        s3_store.get("agents/a1/status.json", max_bytes=64 * 1024)

    assert refused.value.size == 4 * 1024 * 1024
    assert read == []
