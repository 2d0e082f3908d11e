"""Helpers for provider settings the config layer cannot type on its own.

A provider that passes arbitrary options on (lexicon's provider options, the exec provider's
environment) takes two tables: one of plain values, and one whose values are secret references
(`env:NAME`, `file:/path`), resolved here when the provider is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloud.errors import ConfigError, ConfigProblem
from cloud.secrets import SecretRef, parse_ref, resolve


def string_table(provider: str, key: str, table: Any) -> dict[str, str]:
    """`table` checked to map names to strings (numbers and booleans become text)."""
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise ConfigError([ConfigProblem(f"{provider}.{key}", "must be a table", _fix(key))])
    problems = [
        ConfigProblem(f"{provider}.{key}.{name}", "must be a string, number or boolean", _fix(key))
        for name, value in table.items()
        if not isinstance(value, str | int | float | bool)
    ]
    if problems:
        raise ConfigError(problems)
    return {str(name): _text(value) for name, value in table.items()}


def secret_table(provider: str, key: str, table: Any) -> dict[str, str]:
    """`table` with every value, a secret reference, replaced by the secret it names."""
    refs: dict[str, SecretRef] = {}
    problems: list[ConfigProblem] = []
    for name, text in string_table(provider, key, table).items():
        if (ref := parse_ref(text)) is not None:
            refs[name] = ref
            continue
        problems.append(
            ConfigProblem(
                f"{provider}.{key}.{name}",
                "a secret must be given by reference, not inline",
                'write "env:VARIABLE", "file:/path/to/secret" or "aws-sm:secret-name"',
            )
        )
    if problems:
        raise ConfigError(problems)
    return {name: resolve(ref) for name, ref in refs.items()}


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fix(key: str) -> str:
    return f'write it as a table, e.g. {key} = {{ name = "value" }}'
