"""Secrets by reference: configuration names where a secret lives, never the secret itself.

env:NAME        the environment variable NAME
file:/path      the file's content (surrounding whitespace stripped)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cloud.errors import SecretError

SCHEMES = ("env", "file")


@dataclass(frozen=True)
class SecretRef:
    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def parse_ref(text: str) -> SecretRef | None:
    """The reference in `text`, or None when it is not written as one."""
    scheme, sep, target = text.partition(":")
    if not sep or scheme not in SCHEMES or not target:
        return None
    return SecretRef(scheme, target)


def resolve(ref: SecretRef) -> str:
    if ref.scheme == "env":
        value = os.environ.get(ref.target)
        if value is None:
            raise SecretError(str(ref), "environment variable is not set")
        return value
    try:
        return Path(ref.target).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(str(ref), f"cannot read file ({exc.strerror})") from exc
