"""TXT values in zone-file presentation form, as the PowerDNS and Route53 APIs take and give them.

One value is one or more quoted character-strings (at most 255 bytes each) that a resolver
concatenates: `"abc"`, or `"first 255 bytes" "rest"` for a long value. Inside the quotes a
backslash escapes `"` and `\\`.
"""

from __future__ import annotations

_MAX_STRING = 255


def quote(value: str) -> str:
    """`value` as quoted character-strings of at most 255 characters (ACME values are ASCII)."""
    chunks = [value[i : i + _MAX_STRING] for i in range(0, len(value), _MAX_STRING)] or [""]
    return " ".join(_quote_one(chunk) for chunk in chunks)


def unquote(text: str) -> str:
    """The value written as `text`: quoted strings concatenated; bare text is taken as it is."""
    text = text.strip()
    if not text.startswith('"'):
        return text
    parts: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text[i] != '"':
            # Not presentation form after all (e.g. a value with a quote in the middle).
            return text
        i += 1
        chunk: list[str] = []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            chunk.append(text[i])
            i += 1
        if i >= len(text):
            return text  # unterminated quote: not presentation form
        i += 1
        parts.append("".join(chunk))
    return "".join(parts)


def _quote_one(chunk: str) -> str:
    return '"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"'
