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

from cloud.dns01.providers import cloudflare as _cloudflare
from cloud.dns01.providers import exec as _exec
from cloud.dns01.providers import lexicon as _lexicon
from cloud.dns01.providers import powerdns as _powerdns
from cloud.dns01.providers import rfc2136 as _rfc2136
from cloud.dns01.providers import route53 as _route53
from cloud.dns01.providers.base import DnsProvider, ProviderInfo
from cloud.secrets import SecretRef, resolve

_MODULES = (_rfc2136, _powerdns, _route53, _cloudflare, _lexicon, _exec)
PROVIDERS: Mapping[str, ProviderInfo] = MappingProxyType({m.INFO.name: m.INFO for m in _MODULES})


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
