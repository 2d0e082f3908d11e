"""TXT values in zone-file presentation form, as the PowerDNS and Route53 APIs take and give them.

One value is one or more quoted character-strings (at most 255 bytes each) that a resolver
concatenates: `"abc"`, or `"first 255 bytes" "rest"` for a long value. Inside the quotes a
backslash escapes `"` and `\\`, and a backslash with three digits is one byte: decimal in RFC 1035
section 5.1 (PowerDNS: `"caf\\195\\169"`), octal at Route 53 (`"caf\\303\\251"`).

`unquote` is for comparing a stored value with ours only: a value of another party is written
back exactly as it was read, never re-quoted from what `unquote` made of it.
"""

from __future__ import annotations

_MAX_STRING = 255
DECIMAL = 10  # RFC 1035 section 5.1, PowerDNS
OCTAL = 8  # Route 53


def quote(value: str) -> str:
    """`value` as quoted character-strings of at most 255 characters (ACME values are ASCII)."""
    chunks = [value[i : i + _MAX_STRING] for i in range(0, len(value), _MAX_STRING)] or [""]
    return " ".join(_quote_one(chunk) for chunk in chunks)


def unquote(text: str, radix: int = DECIMAL) -> str:
    """The value written as `text`: quoted strings concatenated, `\\NNN` read in `radix`, bytes
    that are not UTF-8 kept as surrogates (so they never equal a value of ours); bare text is
    taken as it is."""
    text = text.strip()
    if not text.startswith('"'):
        return text
    parts = bytearray()
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text[i] != '"':
            # Not presentation form after all (e.g. a value with a quote in the middle).
            return text
        i += 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
                if (byte := _escaped_byte(text[i : i + 3], radix)) is not None:
                    parts.append(byte)
                    i += 3
                    continue
            parts += text[i].encode("utf-8", "surrogatepass")
            i += 1
        if i >= len(text):
            return text  # unterminated quote: not presentation form
        i += 1
    return parts.decode("utf-8", "surrogateescape")


def _escaped_byte(digits: str, radix: int) -> int | None:
    """The byte `\\NNN` stands for, None when `digits` are not three digits of `radix` up to 255
    (then the backslash escapes only the next character)."""
    if len(digits) != 3 or not all(d in "0123456789"[:radix] for d in digits):
        return None
    byte = int(digits, radix)
    return byte if byte <= 0xFF else None


def _quote_one(chunk: str) -> str:
    return '"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"'
