"""ACME Renewal Information (RFC 9773): the CA's suggested renewal window for a certificate.

A CA that offers it lists `renewalInfo` in its directory; the window for a certificate is a plain
GET of `<renewalInfo>/<CertID>`, where the CertID is the base64url of the certificate's Authority
Key Identifier, a dot, and the base64url of its serial number's DER bytes. The answer's
Retry-After says when to ask again. A renewal order names the certificate it replaces by this
CertID, which exempts it from Let's Encrypt's rate limits.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import requests
from cryptography import x509

from cloud.errors import AcmeError

DEFAULT_RETRY = timedelta(hours=6)  # RFC 9773 §4.3: when Retry-After is absent
_MIN_RETRY = timedelta(minutes=1)
_MAX_RETRY = timedelta(days=1)


@dataclass(frozen=True)
class SuggestedWindow:
    start: datetime
    end: datetime
    retry_after: datetime
    explanation_url: str | None = None


def ari_cert_id(cert: x509.Certificate) -> str | None:
    """The RFC 9773 CertID, or None for a certificate without an Authority Key Identifier."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    serial = cert.serial_number
    # The DER INTEGER's content octets: big-endian, with a leading zero when the top bit is set.
    serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_bytes)}"


def fetch_window(
    renewal_info_url: str,
    cert_id: str,
    *,
    session: requests.Session,
    now: datetime,
    timeout: float = 15.0,
) -> SuggestedWindow:
    """Asks the CA for the certificate's window; raises a transient AcmeError ("ari") on any
    failure, so the caller falls back to its own schedule and asks again later."""
    url = f"{renewal_info_url.rstrip('/')}/{cert_id}"
    try:
        # verify explicitly: requests lets REQUESTS_CA_BUNDLE override a session's own setting.
        response = session.get(url, timeout=timeout, verify=session.verify)
        response.raise_for_status()
        body = response.json()
        window = body["suggestedWindow"]
        start = _parse_time(window["start"])
        end = _parse_time(window["end"])
    except (requests.RequestException, ValueError, KeyError, TypeError, AttributeError) as exc:
        # AttributeError: a window's start or end that is no string (a number, a list)
        raise AcmeError("ari", f"renewal info for {cert_id}: {exc}", transient=True) from exc
    if end <= start:
        raise AcmeError("ari", f"renewal info for {cert_id}: the window ends before it starts")
    return SuggestedWindow(
        start=start,
        end=end,
        retry_after=now + _retry_after(response.headers.get("Retry-After"), now),
        explanation_url=body.get("explanationURL"),
    )


def pick_renewal_time(window: SuggestedWindow, now: datetime, rng: random.Random) -> datetime:
    """A uniformly random moment in the window (RFC 9773 §4.2); at once when it has passed."""
    if window.end <= now:
        return now
    start = max(window.start, now)
    return start + (window.end - start) * rng.random()


def _retry_after(header: str | None, now: datetime) -> timedelta:
    if not header:
        return DEFAULT_RETRY
    try:
        delay = timedelta(seconds=int(header))
    except ValueError:
        try:
            delay = parsedate_to_datetime(header) - now
        except (TypeError, ValueError):
            return DEFAULT_RETRY
    # A CA's hint, clamped: never a tight loop, never silence for days.
    return min(max(delay, _MIN_RETRY), _MAX_RETRY)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
