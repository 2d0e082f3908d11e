"""ACME problems as certdrop errors: what the CA answered, translated once, at the boundary.

`translate` turns whatever the `acme` library raised into an `AcmeError` with the problem's
short name (`problem`), the identifier and the Retry-After (which the library does not expose: the
`RetryAfterNetwork` keeps it from the last response), classed transient or terminal.

The library turns every HTTP 409 into a bare `ConflictError`, losing the problem document; a 409
that points at no resource (no Location) but carries one (RFC 9773's "alreadyReplaced") is
raised as that problem instead.
"""

from __future__ import annotations

import datetime
import re
from email.utils import parsedate_to_datetime

import josepy as jose
import requests
from acme import client, errors, messages

from cloud.errors import AcmeError, AlreadyReplaced, RateLimited

# Problem types worth retrying at once in the same run; rateLimited is transient too, but only
# after its Retry-After, so it is not retried here.
RETRY_PROBLEMS = frozenset({"badNonce", "serverInternal"})
TRANSIENT_PROBLEMS = RETRY_PROBLEMS | {"rateLimited", "connection"}
_NO_LOCATION = "UNKNOWN-LOCATION"  # what acme.errors.ConflictError holds for a 409 without one
_CLASSES: dict[str, type[AcmeError]] = {
    "rateLimited": RateLimited,
    "alreadyReplaced": AlreadyReplaced,
}


class RetryAfterNetwork(client.ClientNetwork):
    """Remembers the Retry-After of the last response, which the library does not expose, and
    raises the problem document of a 409 that points at no resource."""

    last_retry_after: datetime.datetime | None = None

    # acme declares it a classmethod; this one records on the instance, which is how it is called.
    def _check_response(  # type: ignore[override]
        self, response: requests.Response, content_type: str | None = None
    ) -> requests.Response:
        self.last_retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if response.status_code == 409 and "Location" not in response.headers:
            problem = _problem_document(response)
            if problem is not None:
                raise problem
        return super()._check_response(response, content_type=content_type)


def _problem_document(response: requests.Response) -> messages.Error | None:
    try:
        body = response.json()
        if not isinstance(body, dict) or "type" not in body:
            return None
        return messages.Error.from_json(body)
    except (ValueError, jose.DeserializationError):
        return None


def translate(exc: Exception, retry_after: datetime.datetime | None) -> AcmeError | None:
    if isinstance(exc, messages.Error):
        problem = problem_name(exc) or "unknown"
        identifier = exc.identifier.value if exc.identifier else None
        detail = exc.detail or exc.title or problem
        cls = _CLASSES.get(problem, AcmeError)
        return cls(
            problem,
            detail,
            identifier=identifier,
            retry_after=retry_after,
            transient=problem in TRANSIENT_PROBLEMS,
        )
    if isinstance(exc, errors.ConflictError):
        # An account that already exists, or a 409; the library fills in a placeholder when the
        # CA sent no Location, which is no URL to resume from.
        location = None if exc.location == _NO_LOCATION else exc.location
        return AcmeError("conflict", "the CA already has this resource", location=location)
    if isinstance(exc, errors.ClientError):
        response = exc.args[0] if exc.args else None
        if isinstance(response, tuple):
            response = response[0]
        status = getattr(response, "status_code", 0)
        if status >= 500 or status == 0:
            return AcmeError(
                "serverInternal", f"HTTP {status or '?'} without a problem document", transient=True
            )
        # 408 and 429 without a problem document: a proxy or load balancer in front of the CA
        # asking to come back, which says nothing about the request itself.
        return AcmeError(
            "clientError",
            f"HTTP {status}: unexpected response",
            retry_after=retry_after,
            transient=status in (408, 429),
        )
    if isinstance(exc, requests.RequestException):
        return AcmeError("connection", f"cannot reach the CA: {exc}", transient=True)
    if isinstance(exc, errors.Error | jose.DeserializationError):
        return AcmeError("protocol", str(exc) or type(exc).__name__)
    return None


def directory_failure(error: AcmeError) -> str:
    """Why a directory could not be fetched, to follow its URL: the connection's reason, or what
    the URL answered instead of a directory."""
    original = error.__cause__
    if isinstance(original, requests.RequestException):
        return f"cannot be reached: {_reason(original)}"
    if isinstance(original, errors.ClientError):
        response = original.args[0] if original.args else None
        if isinstance(response, tuple):
            response = response[0]
        if isinstance(response, requests.Response):
            return f"answered HTTP {response.status_code}, not an ACME directory"
    return f"answered {error.problem}: {error.detail}, not an ACME directory"


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause of a failed request ("connection refused"), else all of its text."""
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    text = str(exc)
    if found := re.search(r"certificate verify failed:? ?([^'\"(]*)", text):
        return f"its TLS certificate does not verify ({found[1].strip() or 'untrusted'})"
    if found := re.search(r"\[Errno -?\d+\] ([^'\"()]+)", text):
        return found[1].strip().lower()
    return text


def failures(authzr: messages.AuthorizationResource) -> tuple[tuple[str, str, str], ...]:
    domain = authzr.body.identifier.value
    found = [
        (domain, problem_name(c.error) or "unknown", c.error.detail or "")
        for c in authzr.body.challenges
        if c.error is not None
    ]
    return tuple(found) or ((domain, "unknown", "authorization invalid"),)


def problem_name(error: messages.Error) -> str | None:
    """The problem type without its URN prefix, also for types newer than the library (whose
    `code` is None for any it does not list, such as RFC 9773's "alreadyReplaced")."""
    typ = str(error.typ)
    if typ.startswith(messages.ERROR_PREFIX):
        return typ[len(messages.ERROR_PREFIX) :] or None
    return error.code


# A longer Retry-After in seconds is read as this: past it a value is no advice anyone follows,
# and one large enough would overflow the datetime (a crash instead of the CA's error). A date
# cannot overflow and is taken as the CA wrote it.
MAX_RETRY_AFTER = datetime.timedelta(days=30)


def parse_retry_after(header: str | None) -> datetime.datetime | None:
    if not header:
        return None
    try:
        seconds = int(header)
    except ValueError:
        pass
    else:
        longest = int(MAX_RETRY_AFTER.total_seconds())
        return utcnow() + datetime.timedelta(seconds=min(max(seconds, 0), longest))
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
