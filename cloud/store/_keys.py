"""The key rules both backends enforce, so a key that works on one works on the other.

A key is '/'-separated segments of printable Unicode: not empty, not absolute, no empty, '.' or
'..' segment, no backslash, at most 1024 bytes of UTF-8 (S3's limit). Segments starting with
`.certdrop` are reserved for the local store's temporary and lock files.
"""

from __future__ import annotations

import re

from cloud.errors import StoreRefused

RESERVED = ".certdrop"
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_MAX_KEY_BYTES = 1024


def check_key(key: str) -> str:
    """`key` itself, or `StoreRefused` (backend code "InvalidKey") saying what is wrong with it."""
    problem = key_problem(key)
    if problem:
        raise StoreRefused(key, f"invalid key: {problem}", backend_code="InvalidKey")
    return key


def key_problem(key: str) -> str | None:
    """What makes `key` invalid, or None when it is a valid key."""
    if not key:
        return "it is empty"
    return _text_problem(key) or _segments_problem(key.split("/"))


def check_prefix(prefix: str) -> str:
    """`prefix` itself, or `StoreRefused`. Every complete segment must be a valid key segment;
    the part after the last '/' may be empty or a partial segment."""
    complete = prefix.split("/")[:-1]
    problem = _text_problem(prefix) or (_segments_problem(complete) if complete else None)
    if problem:
        raise StoreRefused(prefix, f"invalid prefix: {problem}", backend_code="InvalidKey")
    return prefix


def _text_problem(text: str) -> str | None:
    if text.startswith("/"):
        return "it is absolute (starts with '/')"
    if "\\" in text:
        return "it contains a backslash"
    if _CONTROL.search(text):
        return "it contains a control character"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode text (a lone surrogate)"
    if size > _MAX_KEY_BYTES:
        return f"it is {size} bytes of UTF-8, more than {_MAX_KEY_BYTES}"
    return None


def _segments_problem(segments: list[str]) -> str | None:
    for segment in segments:
        if not segment:
            return "it has an empty segment ('//', or a '/' at either end)"
        if segment in (".", ".."):
            return f"it has a '{segment}' segment"
        if segment.startswith(RESERVED):
            return f"segments starting with '{RESERVED}' are reserved for the local store"
    return None
