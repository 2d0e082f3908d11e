"""ACME problem documents become AcmeErrors carrying the problem, the identifier, Retry-After
and the location a conflict points at."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from acme import errors, messages

from cloud.acme.problems import RetryAfterNetwork, translate
from cloud.errors import AcmeError, AlreadyReplaced, RateLimited


def _response(status: int, body: dict | None, headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    if body is not None:
        response.headers["Content-Type"] = "application/problem+json"
        response._content = json.dumps(body).encode()
    else:
        response._content = b"<html>Bad Gateway</html>"
    return response


def _raised(response: requests.Response) -> tuple[Exception, datetime | None]:
    network = RetryAfterNetwork(key=None)
    with pytest.raises(Exception) as caught:
        network._check_response(response)
    return caught.value, network.last_retry_after


def test_a_rate_limit_carries_its_code_identifier_and_retry_after():
    problem = {
        "type": "urn:ietf:params:acme:error:rateLimited",
        "detail": "too many certificates for example.test",
        "identifier": {"type": "dns", "value": "example.test"},
    }
    exc, retry_after = _raised(_response(429, problem, {"Retry-After": "3600"}))

    error = translate(exc, retry_after)

    assert isinstance(error, RateLimited)
    assert error.problem == "rateLimited" and error.code == "acme.rate_limited"
    assert error.identifier == "example.test"
    assert error.transient
    expected = datetime.now(UTC) + timedelta(seconds=3600)
    assert abs((error.retry_after - expected).total_seconds()) < 5
    assert "retry after" in str(error)


def test_retry_after_as_an_http_date_is_understood():
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "slow down"}
    _, retry_after = _raised(
        _response(429, problem, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    )

    assert retry_after == datetime(2026, 10, 21, 7, 28, tzinfo=UTC)


def test_a_5xx_without_a_problem_document_is_transient():
    exc, retry_after = _raised(_response(502, None, {}))

    error = translate(exc, retry_after)

    assert isinstance(exc, errors.ClientError)
    assert error.problem == "serverInternal"
    assert error.transient


@pytest.mark.parametrize(
    ("problem", "transient"),
    [("badNonce", True), ("serverInternal", True), ("unauthorized", False), ("caa", False)],
)
def test_problem_types_are_classed_transient_or_terminal(problem, transient):
    error = translate(messages.Error.with_code(problem, detail="x"), None)

    assert isinstance(error, AcmeError)
    assert error.problem == problem and error.code == "acme.failed"
    assert error.transient is transient


def test_an_unreachable_ca_is_a_transient_connection_error():
    error = translate(requests.ConnectionError("refused"), None)

    assert error.problem == "connection"
    assert error.transient


def test_a_conflict_carries_the_url_it_points_at_as_its_location():
    url = "https://ca.example/acme/acct/17"

    error = translate(errors.ConflictError(url), None)

    assert (error.problem, error.location) == ("conflict", url)
    assert url in str(error)


def test_a_conflict_without_a_location_header_has_no_location():
    exc, _ = _raised(_response(409, None, {}))

    error = translate(exc, None)

    assert isinstance(exc, errors.ConflictError)
    assert (error.problem, error.location) == ("conflict", None)


def test_a_conflict_with_a_problem_document_and_no_location_is_that_problem():
    # RFC 9773's answer to a renewal whose certificate already has a replacement: a 409 the
    # library would turn into a bare ConflictError, and a type newer than the library's list.
    problem = {
        "type": "urn:ietf:params:acme:error:alreadyReplaced",
        "detail": "certificate with serial 1f already has a replacement order",
    }
    exc, _ = _raised(_response(409, problem, {}))

    error = translate(exc, None)

    assert isinstance(error, AlreadyReplaced)
    assert (error.problem, error.code) == ("alreadyReplaced", "acme.already_replaced")
    assert not error.transient
