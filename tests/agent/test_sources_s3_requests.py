"""The s3:// source's own requests: SigV4 signatures against botocore's, the URL of each addressing
style, TLS through `ca_file`, attempts, a body that stalls or trickles, writes S3 refuses, and a
bucket in another region.

moto's server with IAM checks on (test_sources_s3.py) accepts the signatures end to end; here
they are compared with botocore's S3SigV4Auth byte for byte on generated requests.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_agent.sources import Fetched, open_source
from nas_agent.sources.aws_credentials import Credentials
from nas_agent.sources.errors import (
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
)
from nas_agent.sources.s3 import ATTEMPTS, S3Source
from nas_agent.sources.sigv4 import signed_headers
from tests.agent.source_servers import TRICKLE_PAUSE, FakeS3, outcome_within

AGENT = "nas-01"
_SEGMENT = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True)
_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@st.composite
def requests_to_sign(draw: Any) -> dict:
    bucket = draw(st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True))
    key = "/".join(draw(st.lists(_SEGMENT, min_size=1, max_size=4)))
    host = draw(
        st.sampled_from(
            [f"{bucket}.s3.eu-central-1.amazonaws.com", "s3.us-east-1.amazonaws.com", "minio:9000"]
        )
    )
    path = f"/{key}" if host.startswith(bucket) else f"/{bucket}/{key}"
    method = draw(st.sampled_from(["GET", "PUT"]))
    headers = {}
    if draw(st.booleans()):
        headers["If-None-Match"] = '"' + draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)) + '"'
    if method == "PUT":
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain"]))
    token = draw(st.one_of(st.none(), _TEXT))
    return {
        "method": method,
        "url": f"{draw(st.sampled_from(['https', 'http']))}://{host}{path}",
        "headers": headers,
        "body": draw(st.binary(max_size=200)) if method == "PUT" else b"",
        "credentials": Credentials(
            draw(st.from_regex(r"(AKIA|ASIA)[A-Z0-9]{16}", fullmatch=True)),
            draw(_TEXT),
            token,
        ),
        "region": draw(st.sampled_from(["us-east-1", "eu-central-1", "ap-southeast-2"])),
        "now": datetime(2020, 1, 1, tzinfo=timezone.utc)
        + timedelta(seconds=draw(st.integers(0, 10**9))),
    }


@settings(max_examples=150, deadline=None)
@given(requests_to_sign())
def test_signatures_are_botocores_for_the_same_request(request: dict) -> None:
    auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotocoreCredentials

    ours = signed_headers(
        request["method"],
        request["url"],
        request["headers"],
        request["body"],
        request["credentials"],
        region=request["region"],
        now=request["now"],
    )
    # botocore signs every header it is given: give it the ones ours signed.
    names = ours["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    given_headers = {name: value for name, value in ours.items() if name.lower() in names}
    given_headers.pop("Host")
    theirs = AWSRequest(
        method=request["method"], url=request["url"], headers=given_headers, data=request["body"]
    )
    theirs.context["timestamp"] = ours["X-Amz-Date"]
    credentials = request["credentials"]
    signer = auth.S3SigV4Auth(
        BotocoreCredentials(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token
        ),
        "s3",
        request["region"],
    )
    canonical = signer.canonical_request(theirs)
    signature = signer.signature(signer.string_to_sign(theirs, canonical), theirs)

    assert ours["Authorization"].endswith(f"Signature={signature}")
    assert ours["Authorization"].split("SignedHeaders=")[1].split(",")[0] == ";".join(
        sorted(signer.headers_to_sign(theirs))
    )


@pytest.mark.parametrize(
    ("bucket", "options", "url"),
    [
        ("certs", {"region": "eu-west-1"}, "https://certs.s3.eu-west-1.amazonaws.com/p/agents/"),
        ("my.certs", {"region": "eu-west-1"}, "https://s3.eu-west-1.amazonaws.com/my.certs/p/"),
        ("Certs_1", {"region": "us-east-1"}, "https://s3.us-east-1.amazonaws.com/Certs_1/p/"),
        ("certs", {"region": "cn-north-1"}, "https://certs.s3.cn-north-1.amazonaws.com.cn/p/"),
        (
            "certs",
            {"region": "eu-west-1", "addressing_style": "path"},
            "https://s3.eu-west-1.amazonaws.com/certs/p/",
        ),
        ("certs", {"endpoint_url": "https://minio.lan:9000"}, "https://minio.lan:9000/certs/p/"),
        (
            "certs",
            {"endpoint_url": "https://r2.example/base/", "addressing_style": "virtual"},
            "https://certs.r2.example/base/p/",
        ),
        # From an independent review, failing before the fix: auto beside an endpoint_url put
        # the bucket in the host name (certs.127.0.0.1), which does not resolve.
        (
            "certs",
            {"endpoint_url": "http://127.0.0.1:9000", "addressing_style": "auto"},
            "http://127.0.0.1:9000/certs/p/",
        ),
        (
            "certs",
            {"endpoint_url": "http://minio.lan:9000", "addressing_style": "auto"},
            "http://minio.lan:9000/certs/p/",
        ),
    ],
)
def test_each_addressing_style_names_the_object_where_s3_expects_it(
    bucket: str, options: dict, url: str
) -> None:
    source = open_source(f"s3://{bucket}/p", AGENT, **options)
    assert isinstance(source, S3Source)
    assert source._object_url(f"p/agents/{AGENT}/index.json", source._region).startswith(url)


def _reply(handler: Any, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>try later</Message></Error>".encode()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def _source(fake: FakeS3, **options: Any) -> S3Source:
    options.setdefault("endpoint_url", fake.url)
    source = open_source("s3://bucket/p", AGENT, **options)
    assert isinstance(source, S3Source)
    source._sleep = lambda seconds: None  # attempts without their pauses
    return source


def test_throttling_and_5xx_are_tried_three_times_in_all(credentials: None) -> None:
    answers = iter([(503, _error("SlowDown")), (500, _error("InternalError")), (200, b"ok")])

    with FakeS3(lambda h: _reply(h, *next(answers), ETag='"1"')) as fake, _source(fake) as source:
        fetched = source.fetch("index.json")

    assert isinstance(fetched, Fetched) and fetched.body == b"ok"
    assert source.counters.requests == 3 and len(fake.seen) == 3


def test_a_fourth_attempt_is_never_made(credentials: None) -> None:
    slow_down = FakeS3(lambda h: _reply(h, 503, _error("SlowDown")))
    with slow_down as fake, _source(fake) as source, pytest.raises(SourceUnavailable) as caught:
        source.fetch("index.json")

    assert caught.value.backend_code == "SlowDown" and caught.value.transient
    assert len(fake.seen) == 3


def test_a_missing_key_is_not_tried_again(credentials: None) -> None:
    missing = FakeS3(lambda h: _reply(h, 404, _error("NoSuchKey")))
    with missing as fake, _source(fake) as source, pytest.raises(SourceNotFound):
        source.fetch("index.json")

    assert len(fake.seen) == 1


def test_a_body_that_stops_coming_is_transient_within_the_timeout(credentials: None) -> None:
    release = threading.Event()

    def stall(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b"abc")
        handler.wfile.flush()
        release.wait(10)

    with FakeS3(stall) as fake, _source(fake, timeout=0.5) as source:
        with pytest.raises(SourceUnavailable) as caught:
            source.fetch("index.json")
        release.set()

    assert "cut short" in caught.value.reason


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_server_that_trickles_is_given_up_when_the_request_timeout_is_spent(
    credentials: None, part: str
) -> None:
    """From an independent review (the body; the headers were added with the fix), failing before
    the fix: a byte every 0.1 s kept each receive within the socket timeout, and the deadline
    was checked only between reads of 64 KiB, so the agent waited for the server to finish."""
    release = threading.Event()

    def trickle(handler: Any) -> None:
        head = b'HTTP/1.1 200 OK\r\nETag: "1"\r\nContent-Length: 1000\r\n\r\n'
        slow, sent = (head, b"") if part == "headers" else (b"a" * 1000, head)
        try:
            handler.wfile.write(sent)
            for byte in slow:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if release.wait(TRICKLE_PAUSE):
                    return
        except OSError:
            return  # the client gave up

    with FakeS3(trickle) as fake:
        source = _source(fake, timeout=0.5)
        outcome = outcome_within(10, lambda: source.fetch("index.json"))
        release.set()
        source.close()

    assert isinstance(outcome, SourceUnavailable), outcome
    # A status line that never came is tried again, as a dropped connection is; a body is not.
    assert len(fake.seen) == (ATTEMPTS if part == "headers" else 1)


@pytest.mark.parametrize(
    "code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed"]
)
def test_an_enrollment_s3_refuses_is_an_error_with_its_code_not_a_read_only_store(
    credentials: None, code: str
) -> None:
    """From an independent review, failing before the fix: every refusal made put_enrollment
    return False, which `join` reads as a read-only store (it prints the enrollment, exit 0)."""
    refusing = FakeS3(lambda h: _reply(h, 403, _error(code)))
    with refusing as fake, _source(fake) as source, pytest.raises(SourceError) as caught:
        source.put_enrollment(b"{}")

    assert caught.value.backend_code == code
    assert code in str(caught.value) and "secret-value" not in str(caught.value)


def test_a_status_report_the_policy_refuses_is_skipped_but_bad_credentials_raise(
    credentials: None,
) -> None:
    with FakeS3(lambda h: _reply(h, 403, _error("AccessDenied"))) as fake, _source(fake) as source:
        assert source.put_status(b"{}") is False  # read-only credentials: install, report nothing
    unknown = FakeS3(lambda h: _reply(h, 403, _error("InvalidAccessKeyId")))
    with unknown as fake, _source(fake) as source, pytest.raises(SourceDenied) as caught:
        source.put_status(b"{}")

    assert caught.value.backend_code == "InvalidAccessKeyId"


def test_an_endpoint_the_client_cannot_dial_is_a_source_error_not_a_traceback(
    credentials: None, tmp_path: Path
) -> None:
    """Behind the configuration's check of endpoint_url (and for a CA file gone since): setting
    up a connection fails inside the client's error handling."""
    unchecked = S3Source(
        "s3://bucket/p",
        AGENT,
        bucket="bucket",
        prefix="p",
        endpoint_url="https://minio.lan:9000x",
        max_bytes=1024,
        sleep=lambda seconds: None,
    )
    no_ca = S3Source(
        "s3://bucket/p",
        AGENT,
        bucket="bucket",
        prefix="p",
        endpoint_url="https://127.0.0.1:9",
        ca_file=str(tmp_path / "gone.pem"),
        max_bytes=1024,
    )

    with unchecked, pytest.raises(SourceUnavailable):
        unchecked.fetch("index.json")
    with no_ca, pytest.raises(SourceError) as caught:
        no_ca.fetch("index.json")

    assert caught.value.backend_code == "TLS" and "gone.pem" in str(caught.value)


def test_a_bucket_in_another_region_is_followed_once(
    credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(handler: Any) -> None:
        if "/eu-central-1/s3/" in handler.headers["Authorization"]:
            _reply(handler, 200, b"found", ETag='"2"')
        else:
            _reply(handler, 301, _error("PermanentRedirect"), x_amz_bucket_region="eu-central-1")

    with FakeS3(answer) as fake:
        # As on AWS (no endpoint_url), but the requests go to the fake.
        monkeypatch.setattr(S3Source, "_object_url", lambda self, key, region: f"{fake.url}/{key}")
        source = open_source("s3://bucket/p", AGENT, region="us-east-1")
        with source:
            first = source.fetch("index.json")
            second = source.fetch("index.json")

    assert isinstance(first, Fetched) and first.body == b"found"
    assert isinstance(second, Fetched)
    assert len(fake.seen) == 3  # the redirect once, then straight to the bucket's region


@pytest.fixture
def tls_endpoint(tmp_path: Path) -> Iterator[Any]:
    """An S3-compatible endpoint over TLS (path-style: /bucket/key), its CA in ca_file."""
    from lab.https_store import HttpsStore

    index = tmp_path / "store" / "bucket" / "p" / "agents" / AGENT / "index.json"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"index over TLS")
    with HttpsStore(tmp_path / "store", tmp_path / "tls") as served:
        yield served


def test_tls_is_checked_against_ca_file(credentials: None, tls_endpoint: Any) -> None:
    endpoint = tls_endpoint.url.rstrip("/")
    trusted = open_source(
        "s3://bucket/p", AGENT, endpoint_url=endpoint, ca_file=str(tls_endpoint.ca_file)
    )
    untrusted = open_source("s3://bucket/p", AGENT, endpoint_url=endpoint)

    with trusted:
        fetched = trusted.fetch("index.json")
    with untrusted, pytest.raises(SourceError) as caught:
        untrusted.fetch("index.json")

    assert isinstance(fetched, Fetched) and fetched.body == b"index over TLS"
    assert caught.value.backend_code == "TLS" and not caught.value.transient
    assert "source.ca_file" in str(caught.value)


def test_the_environments_proxy_carries_the_requests_unless_no_proxy_names_the_host(
    credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As requests (and botocore) do: http_proxy/https_proxy, and no_proxy's exemptions."""
    with FakeS3(lambda h: _reply(h, 200, b"via proxy", ETag='"3"')) as proxy:
        proxied = FakeS3(lambda h: _reply(h, 200, b"direct", ETag='"4"'))
        with proxied as direct:
            monkeypatch.setenv("http_proxy", proxy.url)
            monkeypatch.setenv("no_proxy", "localhost")
            with _source(proxy, endpoint_url="http://store.example.test:9000") as source:
                through = source.fetch("index.json")
            monkeypatch.setenv("no_proxy", "127.0.0.1")
            with _source(direct) as source:
                straight = source.fetch("index.json")

    assert isinstance(through, Fetched) and through.body == b"via proxy"
    assert isinstance(straight, Fetched) and straight.body == b"direct"
    assert proxy.paths == ["http://store.example.test:9000/bucket/p/agents/nas-01/index.json"]
    assert direct.paths == ["/bucket/p/agents/nas-01/index.json"]
