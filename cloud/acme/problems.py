"""ACME problems as certdrop errors: what the CA answered, translated once, at the boundary.

`translate` turns whatever the `acme` library raised into an `AcmeError` with the problem's
short name (`problem`), the identifier and the Retry-After (which the library does not expose: the
`RetryAfterNetwork` keeps it from the last response), classed transient or terminal.
"""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime

import josepy as jose
import requests
from acme import client, errors, messages

from cloud.errors import AcmeError, RateLimited

# Problem types worth retrying at once in the same run; rateLimited is transient too, but only
# after its Retry-After, so it is not retried here.
RETRY_PROBLEMS = frozenset({"badNonce", "serverInternal"})
TRANSIENT_PROBLEMS = RETRY_PROBLEMS | {"rateLimited", "connection"}
_NO_LOCATION = "UNKNOWN-LOCATION"  # what acme.errors.ConflictError holds for a 409 without one


class RetryAfterNetwork(client.ClientNetwork):
    """Remembers the Retry-After of the last response, which the library does not expose."""

    last_retry_after: datetime.datetime | None = None

    # acme declares it a classmethod; this one records on the instance, which is how it is called.
    def _check_response(  # type: ignore[override]
        self, response: requests.Response, content_type: str | None = None
    ) -> requests.Response:
        self.last_retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return super()._check_response(response, content_type=content_type)


def translate(exc: Exception, retry_after: datetime.datetime | None) -> AcmeError | None:
    if isinstance(exc, messages.Error):
        problem = exc.code or "unknown"
        identifier = exc.identifier.value if exc.identifier else None
        detail = exc.detail or exc.title or problem
        cls = RateLimited if problem == "rateLimited" else AcmeError
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
        return AcmeError("clientError", f"HTTP {status}: unexpected response")
    if isinstance(exc, requests.RequestException):
        return AcmeError("connection", f"cannot reach the CA: {exc}", transient=True)
    if isinstance(exc, errors.Error | jose.DeserializationError):
        return AcmeError("protocol", str(exc) or type(exc).__name__)
    return None


def failures(authzr: messages.AuthorizationResource) -> tuple[tuple[str, str, str], ...]:
    domain = authzr.body.identifier.value
    found = [
        (domain, c.error.code or "unknown", c.error.detail or "")
        for c in authzr.body.challenges
        if c.error is not None
    ]
    return tuple(found) or ((domain, "unknown", "authorization invalid"),)


def parse_retry_after(header: str | None) -> datetime.datetime | None:
    if not header:
        return None
    try:
        return utcnow() + datetime.timedelta(seconds=int(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
