"""Every DNS provider certdrop knows, by type name, and the factory that builds one from settings.

    PROVIDERS["route53"].settings      what the config validator and the README table read
    build_provider("route53", values)  a ready DnsProvider

Importing this module stays cheap: a provider's module is imported when its type is first looked
up (a configuration naming it is checked, or it is built), and imports its heavy libraries
(boto3, lexicon, requests) only when a provider is built. `PROVIDERS` lists every type without
importing any of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from cloud.dns01.providers.base import DnsProvider, ProviderInfo
from cloud.secrets import SecretRef, resolve

# Every provider type and the module (in this package) that declares it as `INFO`.
_MODULES = {
    "rfc2136": "rfc2136",
    "powerdns": "powerdns",
    "route53": "route53",
    "cloudflare": "cloudflare",
    "lexicon": "lexicon",
    "exec": "exec",
}


class _Providers(Mapping[str, ProviderInfo]):
    """The provider types by name; a type's module is imported at its first lookup."""

    def __getitem__(self, name: str) -> ProviderInfo:
        module = _MODULES[name]  # KeyError for an unknown type, as a dict would
        info: ProviderInfo = importlib.import_module(f"{__package__}.{module}").INFO
        assert info.name == name, f"{module}.INFO is {info.name!r}, listed as {name!r}"
        return info

    def __contains__(self, name: object) -> bool:
        return name in _MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


PROVIDERS: Mapping[str, ProviderInfo] = _Providers()


def build_provider(name: str, values: Mapping[str, Any]) -> DnsProvider:
    """The provider `name` built from `values`, settings `cloud.config` has checked and typed
    (`ProviderConfig.values`); nothing is checked again here.

    Settings left out take their declared defaults. Secrets are read here, at the moment of use,
    and nowhere else: a SecretRef, alone or as a value of a secret table, is resolved (SecretError
    when it cannot be), a value given as it is stays as it is. Raises ConfigError only for what a
    provider can judge no earlier than now, such as a TSIG secret that is not base64.
    """
    info = PROVIDERS[name]
    settings = {s.key: s.default for s in info.settings if s.default is not None}
    settings.update(values)
    for setting in info.settings:
        if setting.secret and setting.key in settings:
            settings[setting.key] = _resolved(settings[setting.key])
    return info.build(MappingProxyType(settings))


def _resolved(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return resolve(value)
    if isinstance(value, Mapping):
        return MappingProxyType({k: _resolved(v) for k, v in value.items()})
    return value
