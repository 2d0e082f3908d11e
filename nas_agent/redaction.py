"""Keeping secrets out of logs, on both sides: the agent's log set-up and the issuer's use it.

- `hold_back_wire_loggers`: botocore, urllib3 and the like stay at INFO even with -v. At DEBUG
  they log request headers (signatures, session tokens), URLs (tokens in paths and queries) and
  bodies (Secrets Manager's answers are the secrets themselves).
- `RedactingFilter`, on every handler certdrop installs: formats the record, masks what must not
  show, and leaves the record holding only the masked text, so no handler after it can format
  the raw args or exception again.
- What is masked: PEM private-key blocks; the values of credential-named headers, fields and
  query parameters (Authorization, X-Amz-Security-Token, Signature=, token=, password ...); and
  every secret `register`ed when the code loads it, raw, URL-quoted, base64, base64url and hex.

Standard library only; runs on Python 3.8.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "<redacted>"

# Loggers whose DEBUG lines are wire detail: headers, URLs, bodies. Lexicon's providers log their
# API requests, some with the credentials in them.
WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "requests", "werkzeug", "lexicon")

# Shorter values are masked only when known to be secrets (`register(short_as_word=True)`: a
# password, a token), and then only where they stand as a whole word: as plain substrings they
# would garble ordinary words in every line.
_MIN_LENGTH = 8

_NAME = (
    r"[\w-]*?(?:authorization|cookie|password|passwd|passphrase|token|signature|sid"
    r"|secret(?:[_-]?access)?(?:[_-]?key|string|binary)?|api[_-]?key)"
)
_PATTERNS = (
    # A private key, to its end or, cut short, to the end of the text.
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*)-----.*?(?:-----END \1-----|$)", re.S
        ),
        MASK,
    ),
    # 'Authorization': b'AWS4-HMAC-SHA256 ...', "SecretString": "..." (reprs and JSON).
    (
        re.compile(rf"""(["']{_NAME}["']\s*:\s*b?)(["'])(?:\\.|(?!\2).)*\2""", re.I | re.S),
        rf"\1\2{MASK}\2",
    ),
    # ?X-Amz-Signature=...&token=... (URLs, form bodies).
    (re.compile(rf"(?<![\w-])({_NAME}=)[^&\s'\",;]+", re.I), rf"\1{MASK}"),
    # Authorization: Bearer ... (header lines).
    (re.compile(rf"^([ \t]*{_NAME}[ \t]*:[ \t]*)\S.*$", re.I | re.M), rf"\1{MASK}"),
    # https://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\1{MASK}@"),
)
_FORMATTER = logging.Formatter()  # renders an exception as a stock handler would

_lock = threading.Lock()
_registered: frozenset[str] = frozenset()
# Longest first: a form that contains another is masked whole. Plain substring replacement, not
# one regular expression of them all: compiling that again at each register cost a CLI run
# tens of milliseconds (a PEM key's forms are thousands of characters).
_registered_forms: tuple[str, ...] = ()
_registered_words: re.Pattern[str] | None = None  # the short forms, longest first


def register(secret: str, *, short_as_word: bool = False) -> None:
    """Masks `secret` and its encodings in every line logged from now on. One shorter than 8
    characters only with `short_as_word`: a value that may be no secret at all (a URL's query
    values, every field of a credentials document) would mask ordinary words ("2", "json")."""
    global _registered, _registered_forms, _registered_words
    if len(secret.strip()) < _MIN_LENGTH and not short_as_word:
        return
    forms = _forms(secret)
    with _lock:
        if forms <= _registered:
            return
        _registered = _registered | forms
        ordered = sorted(_registered, key=len, reverse=True)
        _registered_forms = tuple(f for f in ordered if len(f) >= _MIN_LENGTH)
        words = "|".join(re.escape(f) for f in ordered if len(f) < _MIN_LENGTH)
        _registered_words = re.compile(rf"(?<!\w)(?:{words})(?!\w)") if words else None


def redact(text: str) -> str:
    for form in _registered_forms:  # first: a pattern may otherwise mask only part of one
        if form in text:
            text = text.replace(form, MASK)
    words = _registered_words
    if words is not None:
        text = words.sub(MASK, text)
    for expression, replacement in _PATTERNS:
        text = expression.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Args that do not fit the message: logging's own report of that would print them
            # unmasked, and raising here would fail the caller.
            message = f"{record.msg} (args that do not fit: {record.args!r})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        record.exc_info = None  # formatters render exc_text instead
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def hold_back_wire_loggers(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(level)


def _forms(secret: str) -> frozenset[str]:
    """`secret` as a log line may carry it; a PEM key's body (its DER in base64) too."""
    if not secret.strip():
        return frozenset()
    data = secret.encode("utf-8")
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(data).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(data).decode("ascii").rstrip("="),
        data.hex(),
        data.hex().upper(),
    }
    lines = secret.strip().splitlines()
    if len(lines) > 2 and lines[0].startswith("-----BEGIN "):
        forms |= _forms("".join(lines[1:-1]))
    return frozenset(forms)
