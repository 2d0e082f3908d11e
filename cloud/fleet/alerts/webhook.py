"""A generic JSON webhook: one POST per evaluation carrying every notice due.

With a secret, each request carries `X-Certdrop-Signature: sha256=<hex>`, the HMAC-SHA256 of the
raw body under the secret; a receiver recomputes it over the bytes it received and compares in
constant time (and may refuse a `sent_at` older than a few minutes: the body is signed with it).
The secret is read at each send; one that reads as empty (or only blanks) is a ConfigError naming
`alerts.webhook_secret`, and nothing is sent: an HMAC under an empty key proves nothing.

Connection errors, timeouts, 429 and 5xx are retried a few times with a doubling pause (the sleep
is passed in); any other answer fails at once: it will not change by asking again. Webhook URLs
often hold a token in their path, so errors and logs name only the scheme, host and port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import requests

from cloud.errors import AlertDeliveryFailed, ConfigError, ConfigProblem
from cloud.fleet.alerts import Notice, payload
from cloud.secrets import SecretRef, resolve
from nas_agent import redaction

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Certdrop-Signature"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _secret_value(ref: SecretRef) -> str:
    value = resolve(ref)
    if not value.strip():
        problem = ConfigProblem(
            "alerts.webhook_secret",
            f"{ref} is empty: an HMAC under an empty key proves nothing to the receiver",
            "put the secret the receiver checks there, or remove webhook_secret to send unsigned",
        )
        raise ConfigError([problem])
    return value


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: SecretRef | None = None,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        first_pause: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        self.url = url
        self.secret = secret  # resolved at each send, never kept
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.first_pause = first_pause
        self.sleep = sleep
        self.session = session or requests.Session()
        parts = urlsplit(url)
        self.target = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._path = parts.path if len(parts.path) > 1 else None
        # The parts that may hold a token, masked in the logs whoever logs them.
        query_values = [value for _, value in parse_qsl(parts.query)]
        for part in (self._path, parts.query, parts.password, *query_values):
            if part:
                redaction.register(part)

    def send(self, notices: Sequence[Notice], sent_at: datetime) -> None:
        body = json.dumps(payload(notices, sent_at), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "certdrop"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(_secret_value(self.secret), body)
        problem, status = "", None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self.sleep(self.first_pause * 2 ** (attempt - 2))
            try:
                response = self.session.post(
                    self.url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,  # a redirected POST turns into a GET
                )
            except requests.Timeout:
                problem, status = f"no answer within {self.timeout:g}s", None
            except requests.RequestException as exc:
                problem, status = self._connection_problem(exc), None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    log.info("%d alert(s) delivered to %s", len(notices), self.target)
                    return
                problem = f"HTTP {status} {response.reason or ''}".rstrip()
                if status not in _RETRY_STATUS:
                    raise AlertDeliveryFailed(self.name, self.target, problem, status=status)
            log.warning("webhook %s, attempt %d: %s", self.target, attempt, problem)
        raise AlertDeliveryFailed(
            self.name, self.target, f"{problem} ({self.attempts} attempts)", status=status
        )

    def _connection_problem(self, exc: requests.RequestException) -> str:
        # urllib3's reason names host and port; the texts around it name the path, which is
        # cut out wherever it still shows.
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", None) or inner
        text = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        return text.replace(self._path, "/...") if self._path else text
