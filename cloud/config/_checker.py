"""How one value of the configuration is checked, and the words of each complaint.

`Checker` collects problems instead of stopping at the first; the parsers of the file's sections
(`cloud.config`) and of provider tables (`cloud.config.dns_providers`) share it, so a type, a
missing key or an inline secret is reported in the same words wherever it appears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from cloud.errors import ConfigProblem
from cloud.secrets import SecretRef, parse_ref

Kind = type | tuple[type, ...]


class Checker:
    """`base`: the configuration file's folder, which relative paths are taken from (None: the
    working directory, for a provider table checked on its own)."""

    def __init__(self, base: PurePath | None = None) -> None:
        self.base = base
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, cause: str, fix: str) -> None:
        self.problems.append(ConfigProblem(key, cause, fix))

    def is_table(self, where: str, value: Any) -> bool:
        """True for a table; otherwise reports that `where` must be written as one."""
        if isinstance(value, dict):
            return True
        self.problem(where, "must be a table", f"write it as [{where}]")
        return False

    def unknown_keys(self, where: str, raw: Mapping[str, Any], known: set[str]) -> None:
        for key in sorted(set(raw) - known):
            full = f"{where}.{key}" if where else key
            self.problem(full, "unknown key", f"remove it; known keys: {', '.join(sorted(known))}")

    def value(
        self,
        where: str,
        raw: Mapping[str, Any],
        key: str,
        kind: Kind,
        *,
        required: bool = False,
        default: Any = None,
    ) -> Any:
        full = f"{where}.{key}"
        if key not in raw:
            if required:
                self.problem(full, "missing", f"add {key} = <{kind_name(kind)}>")
            return default
        value = raw[key]
        # TOML booleans are ints in Python: never accept one for the other.
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            self.problem(
                full,
                f"must be {kind_name(kind)}, not {kind_name(type(value))}",
                f"write {key} = <{kind_name(kind)}>",
            )
            return default
        return value

    def positive(
        self, where: str, raw: Mapping[str, Any], key: str, unit: str, default: float, most: float
    ) -> float:
        """A number of `unit` above 0 and at most `most`; `default` when absent or wrong."""
        value = self.value(where, raw, key, (int, float), default=default)
        if isinstance(value, float) and not math.isfinite(value):
            cause = f"must be a number of {unit}, not {value}"
        elif value <= 0:
            cause = "must be positive"
        elif value > most:
            cause = f"must be at most {most:g} {unit}"
        else:
            return float(value)
        self.problem(f"{where}.{key}", cause, f"give {unit}, e.g. {default:g}")
        return default

    def path(self, key: str, text: str) -> Path:
        try:
            path = Path(text).expanduser()
        except RuntimeError:  # "~user" of a user this machine does not know
            self.problem(key, f"{text!r}: no such home directory", "give the path without ~")
            path = Path(text)
        return path if path.is_absolute() or self.base is None else Path(self.base, path)

    def secret(self, full: str, value: Any) -> SecretRef | None:
        if not isinstance(value, str) or (ref := parse_ref(value)) is None:
            self.problem(
                full,
                "a secret must be given by reference, not inline",
                'write "env:VARIABLE", "file:/path/to/secret" or "aws-sm:secret-name"',
            )
            return None
        if ref.scheme == "file":
            # Anchored like every other path of the file: resolved later, from the working
            # directory, the same file would work from its folder and fail from cron.
            return SecretRef(ref.scheme, str(self.path(full, ref.target)))
        return ref


def toml_kind(kind: Kind) -> Kind:
    """What TOML may hold for `kind`: an integer is a number too."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    widened = tuple(k for each in kinds for k in ((int, float) if each is float else (each,)))
    return widened if len(widened) > 1 else widened[0]


def kind_name(kind: Kind) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names |= {list: "a list", dict: "a table"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)
