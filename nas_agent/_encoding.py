"""Byte-exact encodings shared by the wire formats: unpadded base64url, canonical JSON, strict JSON
reading of untrusted bytes, and UTC timestamps. Every reader raises ValueError, and only ValueError,
so each format translates it once into its own error class.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from typing import Any

_B64URL = re.compile("[A-Za-z0-9_-]*")
_TIMESTAMP = re.compile("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, accepting only the one canonical spelling of each byte string."""
    if not isinstance(text, str) or _B64URL.fullmatch(text) is None:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Leftover bits in the last character would let two spellings decode to the same bytes.
    if b64url_encode(data) != text:
        raise ValueError("not the canonical base64url spelling")
    return data


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only: the same bytes on every Python version."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def published_json(document: dict[str, Any]) -> bytes:
    """How a signed document is written to the store (index, key requests, CSR statement):
    sorted keys, a 2-space indent, ASCII, a final newline. Readers never depend on it: they
    check signatures over the canonical form of the signed part."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True).encode("ascii") + b"\n"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json_object(data: bytes, *, max_size: int) -> dict[str, Any]:
    """Parse untrusted bytes as one UTF-8 JSON object: no duplicate keys, no NaN or Infinity."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("not bytes")
    if len(data) > max_size:
        raise ValueError(f"{len(data)} bytes is more than the {max_size} allowed")
    try:
        # Decoding first stops json from guessing UTF-16 or UTF-32.
        value = json.loads(
            bytes(data).decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None or moment.microsecond:
        raise ValueError("timestamps are timezone-aware and whole seconds")
    return moment.astimezone(timezone.utc).strftime(_TIMESTAMP_FORMAT)


def parse_timestamp(text: object) -> datetime:
    """Read `YYYY-MM-DDTHH:MM:SSZ` exactly (ASCII digits, UTC, whole seconds)."""
    if not isinstance(text, str) or _TIMESTAMP.fullmatch(text) is None:
        raise ValueError("not a YYYY-MM-DDTHH:MM:SSZ timestamp")
    return datetime.strptime(text, _TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
