"""Finding secrets in what certdrop logged, for the cloud's and the agent's log-secret tests.

`capture_after(monkeypatch, module, name)` wraps a log set-up (`cloud.log.setup`,
`nas_agent.cli._setup_logging`): each time it has run, a `RecordCapture` joins the root logger,
after the handler certdrop installed, and the root logger goes to DEBUG. The capture formats each
record as any stock handler would, so it shows what a record still carries once certdrop's own
handler has passed it on: its args and its exception, not only certdrop's rendering of them.

`assert_nothing_leaked(capture, capsys, secrets)` checks what the capture saw and what reached
stderr for every secret in any form a log line could carry it (`forms`), after the flow and again
after logging each one carelessly. Runs on Python 3.8 and 3.11; imports nothing from the code
under test.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, Mapping

# Logged by hand after each flow, as a careless debug line would: a secret the flow loaded must
# then be known to certdrop and masked, whatever its encoding.
CARELESS = logging.getLogger("certdrop.careless")


class RecordCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def capture_after(monkeypatch: Any, module: Any, name: str) -> RecordCapture:
    capture = RecordCapture()
    setup = getattr(module, name)

    def setup_then_capture(*args: Any, **kwargs: Any) -> None:
        setup(*args, **kwargs)
        root = logging.getLogger()
        root.addHandler(capture)
        root.setLevel(logging.DEBUG)  # -v does so; the Lambda functions' set-up does not

    monkeypatch.setattr(module, name, setup_then_capture)
    return capture


def forms(secret: str) -> dict[str, str]:
    """The secret as a log line may hold it. Base64 forms without padding: the padded ones
    contain them."""
    data = secret.encode("utf-8")
    found = {
        "raw": secret,
        "base64": base64.b64encode(data).decode("ascii").rstrip("="),
        "base64url": base64.urlsafe_b64encode(data).decode("ascii").rstrip("="),
        "hex": data.hex(),
    }
    if secret.startswith("-----BEGIN"):
        found["PEM body"] = "".join(secret.strip().splitlines()[1:-1])
    return found


def log_carelessly(secrets: Mapping[str, str]) -> None:
    for secret in secrets.values():
        for form in forms(secret).values():
            CARELESS.warning("careless: %s", form)
        try:
            raise RuntimeError(f"careless: {secret}")
        except RuntimeError:
            CARELESS.exception("careless exception")


def assert_nothing_leaked(capture: RecordCapture, capsys: Any, secrets: Mapping[str, str]) -> None:
    """No secret in what the capture saw and what reached stderr, neither after the flow nor
    after `log_carelessly`: what the flow loaded must be known to certdrop's redaction."""
    # Plain asserts (pytest does not rewrite them here): each says what it found.
    assert capture.lines, "the capture saw no record: the log set-up was not wrapped"
    found = leaks(capture.text + capsys.readouterr().err, secrets)
    assert not found, f"the flow logged: {found}"
    log_carelessly(secrets)
    assert "RuntimeError" in capture.text, "the exception's text was lost, not masked"
    found = leaks(capture.text + capsys.readouterr().err, secrets)
    assert not found, f"not masked when logged later: {found}"


def leaks(text: str, secrets: Mapping[str, str]) -> list[str]:
    return [
        f"{name} ({form})"
        for name, secret in secrets.items()
        for form, value in forms(secret).items()
        if value in text
    ]
