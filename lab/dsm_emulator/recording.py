"""One parsed view of each incoming request, and the redacted record tests assert on.

The record keeps what a test needs to check a client's wire behaviour — method, CGI path, query
and form fields (for a multipart body, its parts without a filename), multipart parts in their
order with file names and types, header and cookie names — and never a secret: passwords, OTP
codes, sids, tokens, device ids and private keys are replaced by ``REDACTED`` (or left out)
before anything is stored.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from flask import Request
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Field, File, MultipartDecoder, Preamble

from .encryption import CIPHER_KEY

REDACTED = "<redacted>"
# CIPHER_KEY carries the encrypted login fields, password included (reference §3.2).
_SECRET_PARAMS = frozenset(
    {"passwd", "otp_code", "_sid", "SynoToken", "device_id", "did", CIPHER_KEY}
)
_SECRET_HEADERS = frozenset({"x-syno-token", "cookie", "authorization"})
_SECRET_PARTS = frozenset({"key"})
_RAW_FILENAME = re.compile(r'filename\*?=("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None  # None for a plain field
    content_type: str | None
    data: bytes = field(repr=False)
    # The Content-Disposition filename as sent, before unquoting (for DSM 7.4's filename rule).
    raw_filename: str = ""

    @property
    def has_path(self) -> bool:
        return any(
            sep in text for text in (self.filename or "", self.raw_filename) for sep in "/\\"
        )


@dataclass(frozen=True)
class Incoming:
    """The parts of a request the API handlers read."""

    method: str
    cgi: str
    query: dict[str, str]
    form: dict[str, str]
    parts: tuple[Part, ...]
    headers: dict[str, str] = field(repr=False)
    cookies: dict[str, str] = field(repr=False)

    def param(self, name: str) -> str | None:
        """A parameter from the query or the form body (the body wins, as a CGI would read it)."""
        return self.form.get(name, self.query.get(name))

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class RecordedPart:
    name: str
    filename: str | None
    content_type: str | None
    size: int
    text: str | None  # None for the private key


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    parts: tuple[RecordedPart, ...]
    headers: dict[str, str]
    cookies: tuple[str, ...]

    @property
    def api(self) -> str | None:
        return self.form.get("api", self.query.get("api"))

    @property
    def api_method(self) -> str | None:
        return self.form.get("method", self.query.get("method"))

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parts(request: Request) -> tuple[Part, ...]:
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or "boundary" not in options:
        return ()
    decoder = MultipartDecoder(options["boundary"].encode("latin-1"))
    decoder.receive_data(request.get_data(cache=True))
    decoder.receive_data(None)
    heads: list[Part] = []
    bodies: list[list[bytes]] = []
    while True:
        event = decoder.next_event()
        if isinstance(event, (Field, File)):
            raw = _RAW_FILENAME.search(event.headers.get("Content-Disposition", ""))
            heads.append(
                Part(
                    name=event.name,
                    filename=event.filename if isinstance(event, File) else None,
                    content_type=event.headers.get("Content-Type"),
                    data=b"",
                    raw_filename=raw.group(1) if raw else "",
                )
            )
            bodies.append([])
        elif isinstance(event, Data):
            bodies[-1].append(event.data)
        elif not isinstance(event, Preamble):
            break  # Epilogue, or NeedData on a truncated body
    return tuple(replace(h, data=b"".join(b)) for h, b in zip(heads, bodies))


def _multipart_fields(parts: tuple[Part, ...]) -> dict[str, str]:
    """The parts without a filename, read as form fields.

    dsmctl [YCHIU] sends api, method, _sid and SynoToken only as such parts, with an empty
    query (reference §5.1), so the dispatch and the session check must see them.
    """
    return {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}


def parse(request: Request, cgi: str) -> Incoming:
    parts = _parts(request)
    # A multipart body is decoded once, by _parts: reading request.form would consume the
    # stream and leave _parts an empty body.
    if request.mimetype == "multipart/form-data":
        form = _multipart_fields(parts)
    else:
        form = request.form.to_dict()
    return Incoming(
        method=request.method,
        cgi=cgi,
        query=request.args.to_dict(),
        form=form,
        parts=parts,
        headers=dict(request.headers.items()),
        cookies=request.cookies.to_dict(),
    )


def _redacted(params: dict[str, str]) -> dict[str, str]:
    # A multipart key sent without a filename is a form field too (`_multipart_fields`).
    secret = _SECRET_PARAMS | _SECRET_PARTS
    return {k: (REDACTED if k in secret else v) for k, v in params.items()}


def _recorded_part(part: Part) -> RecordedPart:
    secret = part.name in _SECRET_PARTS or part.name in _SECRET_PARAMS
    return RecordedPart(
        name=part.name,
        filename=part.filename,
        content_type=part.content_type,
        size=len(part.data),
        text=None if secret else part.data.decode("utf-8", "replace"),
    )


def record(incoming: Incoming, path: str) -> RecordedRequest:
    return RecordedRequest(
        method=incoming.method,
        path=path,
        query=_redacted(incoming.query),
        form=_redacted(incoming.form),
        parts=tuple(_recorded_part(p) for p in incoming.parts),
        headers={
            k: (REDACTED if k.lower() in _SECRET_HEADERS else v)
            for k, v in incoming.headers.items()
        },
        cookies=tuple(sorted(incoming.cookies)),
    )


class RequestLog:
    """The latest /webapi requests in arrival order, redacted; kept in memory only."""

    # Bounded so that an emulator left running for days does not grow without limit.
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[RecordedRequest] = deque(maxlen=self.MAX_ENTRIES)

    def append(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> tuple[RecordedRequest, ...]:
        with self._lock:
            return tuple(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
