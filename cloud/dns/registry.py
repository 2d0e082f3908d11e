"""Every DNS provider certdrop knows, by type name, and the factory that builds one from settings.

    PROVIDERS["route53"].settings      what the config validator and the README table read
    build_provider("route53", values)  a ready DnsProvider

Importing this module stays cheap: provider modules import their heavy libraries (boto3, lexicon)
only when a provider is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from cloud.dns import DnsProvider, ProviderInfo
from cloud.dns import cloudflare as _cloudflare
from cloud.dns import exec as _exec
from cloud.dns import lexicon as _lexicon
from cloud.dns import powerdns as _powerdns
from cloud.dns import rfc2136 as _rfc2136
from cloud.dns import route53 as _route53
from cloud.errors import ConfigError, ConfigProblem
from cloud.secrets import SecretRef, resolve

_MODULES = (_rfc2136, _powerdns, _route53, _cloudflare, _lexicon, _exec)
PROVIDERS: Mapping[str, ProviderInfo] = MappingProxyType({m.INFO.name: m.INFO for m in _MODULES})


def build_provider(name: str, values: Mapping[str, Any]) -> DnsProvider:
    """The provider `name` built from `values`.

    `values` holds the provider's settings; missing optional ones take their defaults. A secret
    setting may be given as its value or as a `SecretRef`, which is resolved here. Raises
    ConfigError (every problem at once) for an unknown provider, unknown or missing keys, and
    SecretError when a reference cannot be read.
    """
    info = PROVIDERS.get(name)
    if info is None:
        raise ConfigError(
            [ConfigProblem("type", f"unknown provider {name!r}", f"use one of: {_known()}")]
        )
    problems: list[ConfigProblem] = []
    known = {s.key for s in info.settings}
    for key in sorted(set(values) - known):
        fix = f"remove it; {name} knows: {', '.join(sorted(known))}"
        problems.append(ConfigProblem(f"{name}.{key}", "unknown setting", fix))
    complete: dict[str, Any] = {}
    for setting in info.settings:
        if setting.key in values:
            value = values[setting.key]
            complete[setting.key] = resolve(value) if isinstance(value, SecretRef) else value
        elif setting.required:
            problems.append(ConfigProblem(f"{name}.{setting.key}", "missing", setting.help))
        elif setting.default is not None:
            complete[setting.key] = setting.default
    if problems:
        raise ConfigError(problems)
    return info.build(MappingProxyType(complete))


def _known() -> str:
    return ", ".join(sorted(PROVIDERS))
