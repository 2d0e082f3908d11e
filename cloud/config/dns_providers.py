"""`[providers.<name>]` tables, checked once against the settings each provider declares (`INFO`).

The result, `ProviderConfig.values`, holds typed values `build_provider` trusts: every key known,
every required one present, each value of its declared kind and passed through the setting's own
`parse`, the provider's rules across settings kept. Secrets stay references (SecretRef) here;
`build_provider` resolves them when the provider is built, and fills in the declared defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cloud.config._checker import Checker, toml_kind
from cloud.dns01.providers.base import InvalidSetting, ProviderInfo, Setting
from cloud.dns01.providers.registry import PROVIDERS
from cloud.errors import ConfigError

_A_DAY = 86400.0  # the longest a provider's timeout may be, in seconds


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    # The settings as written, checked and typed; secrets as SecretRef, resolved only when used.
    values: Mapping[str, Any] = field(compare=False)


def parse_provider(name: str, table: Mapping[str, Any]) -> ProviderConfig:
    """One `[providers.<name>]` table (its `type` included) checked on its own.

    Raises ConfigError listing every problem.
    """
    checker = Checker()
    provider = check_provider(checker, name, dict(table))
    if checker.problems or provider is None:
        raise ConfigError(checker.problems)
    return provider


def check_provider(checker: Checker, name: str, raw: Any) -> ProviderConfig | None:
    """The provider table `raw`, its problems reported to `checker`."""
    where = f"providers.{name}"
    if not checker.is_table(where, raw):
        return None
    ptype = checker.value(where, raw, "type", str, required=True)
    if ptype is None:
        return None
    info = PROVIDERS.get(ptype)
    if info is None:
        checker.problem(
            f"{where}.type",
            f"unknown provider type {ptype!r}",
            f"use one of: {', '.join(sorted(PROVIDERS))}",
        )
        return None
    return ProviderConfig(name, ptype, MappingProxyType(_settings(checker, where, info, raw)))


def _settings(checker: Checker, where: str, info: ProviderInfo, raw: dict) -> dict[str, Any]:
    before = len(checker.problems)
    checker.unknown_keys(where, raw, {s.key for s in info.settings} | {"type"})
    values: dict[str, Any] = {}
    for setting in info.settings:
        if setting.key in raw:
            value = _setting(checker, where, setting, raw)
            if value is not None:
                values[setting.key] = value
        elif setting.required:
            checker.problem(
                f"{where}.{setting.key}", "missing", f"add {setting.key}: {setting.help}"
            )
    if info.check is not None and len(checker.problems) == before:
        try:
            info.check(values)
        except InvalidSetting as exc:
            checker.problem(f"{where}.{exc.key}", exc.cause, exc.fix)
    return values


def _setting(checker: Checker, where: str, setting: Setting, raw: dict) -> Any:
    full = f"{where}.{setting.key}"
    if setting.secret and setting.kind is not dict:
        return checker.secret(full, raw[setting.key])
    if setting.kind is float:
        # Every float a provider takes is a number of seconds: nan failed later in the socket
        # layer (a traceback), 0 or less failed every request, inf never timed out.
        before = len(checker.problems)
        seconds = checker.positive(where, raw, setting.key, "seconds", setting.default, _A_DAY)
        return seconds if len(checker.problems) == before else None
    value = checker.value(where, raw, setting.key, toml_kind(setting.kind))
    if isinstance(value, dict):
        value = _table(checker, full, setting, value)
    elif isinstance(value, list):
        value = tuple(value)
    if value is None or setting.parse is None:
        return value
    try:
        return setting.parse(value)
    except InvalidSetting as exc:
        checker.problem(full, exc.cause, exc.fix)
        return None


def _table(checker: Checker, full: str, setting: Setting, table: dict) -> Mapping[str, Any] | None:
    """A table of strings, or with `setting.secret` of references; None after a problem."""
    values: dict[str, Any] = {}
    for name, item in table.items():
        key = f"{full}.{name}"
        if setting.secret:
            if (ref := checker.secret(key, item)) is not None:
                values[str(name)] = ref
        elif isinstance(item, str | int | float | bool):
            values[str(name)] = _text(item)
        else:
            checker.problem(
                key,
                "must be a string, number or boolean",
                f'write it as a table, e.g. {setting.key} = {{ name = "value" }}',
            )
    return MappingProxyType(values) if len(values) == len(table) else None


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
