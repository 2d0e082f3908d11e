# Over 300 lines: one parser object walks the whole file so every problem is reported at once.
"""The operator's configuration: one TOML file, parsed and validated once into frozen dataclasses.

Every problem is collected and reported together, each naming the key, what is wrong and what to
write instead. Secrets are written as references (`env:NAME`, `file:/path`), never inline.
Relative paths are relative to the configuration file, `file:` secrets' included.
"""

from __future__ import annotations

import enum
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from cloud.acme.account_key import EXAMPLE as _ACCOUNT_KEY_EXAMPLE
from cloud.acme.account_key import FILE as _FILE_KEY
from cloud.acme.account_key import AccountKeyRef, parse_ref
from cloud.acme.certificate_keys import KeyType
from cloud.acme.challenge_types import ChallengeType
from cloud.config._checker import Checker, kind_name
from cloud.config.ca_limits import LETSENCRYPT_LIMITS, CaLimits, Limit, check_limits
from cloud.config.dns_providers import ProviderConfig, check_provider, parse_provider
from cloud.config.file import read_text
from cloud.dns01.names import parse_address
from cloud.dns01.propagation import IP_VERSIONS, PROPAGATION_TIMEOUT, DnsCheckSettings
from cloud.errors import ConfigError, ConfigProblem
from cloud.secrets import SecretRef
from nas_agent.ids import ascii_hostname, is_hostname, is_site_id

__all__ = [
    "LETSENCRYPT_PRODUCTION",
    "LETSENCRYPT_STAGING",
    "ORDER_TIMEOUT",
    "AlertsConfig",
    "CaConfig",
    "CaLimits",
    "Config",
    "EabConfig",
    "KeyCustody",
    "KeySecrets",
    "Limit",
    "ProviderConfig",
    "SiteConfig",
    "StorageConfig",
    "load",
    "parse",
    "parse_provider",
]

ORDER_TIMEOUT = 90.0  # seconds the CA gets to validate an order's challenges and issue it
_MAX_SECONDS = 86400.0  # a timeout longer than a day is a typo
# Let's Encrypt's production CA has a staging twin: `certdrop issue --dry-run` uses it by default.
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
_EAB_ALGS = ("HS256", "HS384", "HS512")
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
# A URL's scheme (RFC 3986) before "://"; the store takes only these two, as written.
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_STORE_SCHEMES = ("file", "s3")
# Plain http only where nothing crosses a network: a relay on the same machine, the tests.
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class EabConfig:
    kid: str
    hmac_key: SecretRef
    alg: str = "HS256"


@dataclass(frozen=True)
class CaConfig:
    directory: str
    contact: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    eab: EabConfig | None = None
    preferred_chain: str | None = None
    order_timeout: float = ORDER_TIMEOUT
    # The CA's staging directory, for `certdrop issue --dry-run`; None when none is known.
    staging_directory: str | None = None
    # Where the account key is: the key store (the default) or a KMS key (`cloud.acme.account_key`).
    account_key: AccountKeyRef = _FILE_KEY
    # The CA's rate limits the scheduler paces orders under (cloud.limiter); None: not paced.
    limits: CaLimits | None = None


class KeyCustody(enum.Enum):
    """Who makes a site's private keys (docs/key-custody.md)."""

    ISSUER = "issuer"  # the issuer: one certificate, key + leaf sealed to every agent
    AGENT = "agent"  # each agent, on the NAS: one certificate per agent, from its CSR


@dataclass(frozen=True)
class SiteConfig:
    id: str
    domain: str
    names: tuple[str, ...]  # apex first, then the wildcard, then extra names
    key_type: KeyType
    provider: str | None  # the DNS provider writing dns-01 values; None for dns-persist-01
    profile: str | None = None
    challenge: ChallengeType = ChallengeType.DNS_01
    key_custody: KeyCustody = KeyCustody.ISSUER


@dataclass(frozen=True)
class KeySecrets:
    """Secrets Manager ids of the issuer's keys (the stack's outputs), instead of keys_dir."""

    acme: str
    signing: str
    escrow: str


@dataclass(frozen=True)
class StorageConfig:
    store_url: str  # s3://bucket/prefix or file:///abs/dir
    keys_dir: Path  # local mode: private keys (ACME account, issuer) as owner-only files
    key_secrets: KeySecrets | None = None  # AWS mode from the operator's machine
    endpoint_url: str | None = None  # an S3-compatible service (MinIO, R2, B2, ...)
    region: str | None = None


@dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go (at least one of the webhook and the SNS topic) and when they fire."""

    webhook_url: str | None = None
    webhook_secret: SecretRef | None = None  # signs each POST (HMAC-SHA256) when set
    sns_topic_arn: str | None = None
    expiry_days: float = 14.0  # alert when a certificate has fewer days left than this
    remind_after: timedelta = timedelta(hours=24)  # re-send an alert still firing after this


@dataclass(frozen=True)
class Config:
    source: PurePath  # the file read; in Lambda the object key, as "/<key>" (not a local file)
    ca: CaConfig
    storage: StorageConfig
    dns: DnsCheckSettings
    providers: Mapping[str, ProviderConfig]
    sites: Mapping[str, SiteConfig]
    alerts: AlertsConfig | None = None  # no [alerts] table: nothing is evaluated or sent


def load(path: Path) -> Config:
    return parse(read_text(path), path)


def parse(text: str, source: PurePath) -> Config:
    """`source` names where the text came from; paths in the file are relative to its folder. A
    local path is made absolute first, so the result does not depend on the working directory
    (the Lambda passes the bucket key, a PurePosixPath, which stays as it is)."""
    if isinstance(source, Path):
        source = Path(os.path.abspath(source))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = ConfigProblem("(file)", f"not valid TOML: {exc}", "fix the syntax")
        raise ConfigError([problem], str(source)) from exc
    parser = _Parser(source.parent)
    config = parser.config(raw, source)
    if parser.problems:
        raise ConfigError(parser.problems, str(source))
    assert config is not None
    return config


class _Parser(Checker):
    """Walks the raw TOML tables, collecting every problem instead of stopping at the first."""

    def config(self, raw: dict[str, Any], source: PurePath) -> Config | None:
        self.unknown_keys("", raw, {"ca", "storage", "dns", "providers", "sites", "alerts"})
        ca_table = self.table(raw, "ca", required=True)
        ca = self.ca(ca_table) if "ca" in raw else None
        storage = self.storage(self.table(raw, "storage"))
        dns = self.dns(self.table(raw, "dns"))
        alerts = None
        if "alerts" in raw:
            table = self.table(raw, "alerts")  # reports a value that is not a table
            alerts = self.alerts(table) if table is raw["alerts"] else None
        providers_raw = self.table(raw, "providers")
        providers = {
            name: p
            for name, table in providers_raw.items()
            if (p := check_provider(self, name, table)) is not None
        }
        sites_raw = self.table(raw, "sites")
        sites = {
            sid: s
            for sid, table in sites_raw.items()
            if (s := self.site(sid, table, providers, providers_raw)) is not None
        }
        self.no_shared_names(sites)
        if ca is None or self.problems:
            return None
        return Config(
            source=source,
            ca=ca,
            storage=storage,
            dns=dns,
            providers=MappingProxyType(providers),
            sites=MappingProxyType(sites),
            alerts=alerts,
        )

    # --- generic helpers -------------------------------------------------------------------

    def table(self, raw: Mapping[str, Any], key: str, *, required: bool = False) -> dict:
        value = raw.get(key)
        if value is None:
            if required:
                self.problem(key, "missing", f"add a [{key}] table")
            return {}
        return value if self.is_table(key, value) else {}

    # --- sections ---------------------------------------------------------------------------

    def ca(self, raw: dict) -> CaConfig | None:
        self.unknown_keys(
            "ca",
            raw,
            {
                "directory",
                "contact",
                "terms_agreed",
                "ca_bundle",
                "eab_kid",
                "eab_hmac_key",
                "eab_hmac_alg",
                "preferred_chain",
                "order_timeout",
                "staging_directory",
                "account_key",
                "limits",
            },
        )
        # Production or staging is a safety-critical choice: no default directory.
        directory = self.directory_url(raw, "directory", required=True)
        staging = self.directory_url(raw, "staging_directory")
        if staging is None and directory == LETSENCRYPT_PRODUCTION:
            staging = LETSENCRYPT_STAGING
        agreed = self.value("ca", raw, "terms_agreed", bool, required=True)
        if agreed is False:
            self.problem(
                "ca.terms_agreed",
                "the CA's terms of service must be agreed to register an account",
                "read them and write terms_agreed = true",
            )
        contact = self.value("ca", raw, "contact", (str, list), default=[])
        contacts = []
        for item in [contact] if isinstance(contact, str) else contact:
            if isinstance(item, str) and "@" in item:
                contacts.append(item)
            else:
                self.problem(
                    "ca.contact", f"{item!r} is not an e-mail address", 'write "ops@example.com"'
                )
        bundle = self.value("ca", raw, "ca_bundle", str)
        bundle_path = self.path("ca.ca_bundle", bundle) if bundle else None
        if bundle_path is not None and not _is_file(bundle_path):
            self.problem("ca.ca_bundle", f"{bundle_path} does not exist", "give a PEM file")
        eab = self.eab(raw)
        timeout = self.positive("ca", raw, "order_timeout", "seconds", ORDER_TIMEOUT, _MAX_SECONDS)
        account_key = self.account_key(raw)
        published = LETSENCRYPT_LIMITS if directory == LETSENCRYPT_PRODUCTION else None
        limits = check_limits(self, raw.get("limits"), published)
        if directory is None:
            return None
        return CaConfig(
            directory=directory,
            contact=tuple(c if c.startswith("mailto:") else f"mailto:{c}" for c in contacts),
            ca_bundle=bundle_path,
            eab=eab,
            preferred_chain=self.value("ca", raw, "preferred_chain", str),
            order_timeout=timeout,
            staging_directory=staging,
            account_key=account_key,
            limits=limits,
        )

    def account_key(self, raw: dict) -> AccountKeyRef:
        text = self.value("ca", raw, "account_key", str)
        if text is None:
            return _FILE_KEY
        try:
            return parse_ref(text)
        except ValueError as exc:
            self.problem("ca.account_key", str(exc), _ACCOUNT_KEY_EXAMPLE)
            return _FILE_KEY

    def directory_url(self, raw: dict, key: str, *, required: bool = False) -> str | None:
        """An ACME directory URL of the [ca] table, or None (absent or not an https:// URL)."""
        url = self.value("ca", raw, key, str, required=required)
        if url is not None and not url.startswith("https://"):
            self.problem(
                f"ca.{key}",
                f"{url!r} is not an https:// URL",
                f"give the CA's ACME directory URL, e.g. {LETSENCRYPT_STAGING}",
            )
            return None
        return url

    def eab(self, raw: dict) -> EabConfig | None:
        kid = self.value("ca", raw, "eab_kid", str)
        key = raw.get("eab_hmac_key")
        if kid is None and key is None:
            return None
        if kid is None:
            self.problem("ca.eab_kid", "missing while eab_hmac_key is set", "add the CA's key id")
            return None
        if key is None:
            self.problem(
                "ca.eab_hmac_key", "missing while eab_kid is set", 'write "env:EAB_HMAC_KEY"'
            )
            return None
        ref = self.secret("ca.eab_hmac_key", key)
        alg = self.value("ca", raw, "eab_hmac_alg", str, default="HS256")
        if alg not in _EAB_ALGS:
            self.problem("ca.eab_hmac_alg", f"{alg!r} is not supported", f"use {_EAB_ALGS}")
        return EabConfig(kid, ref, alg) if ref else None

    def storage(self, raw: dict) -> StorageConfig:
        secret_keys = ("acme_secret", "signing_secret", "escrow_secret")
        self.unknown_keys(
            "storage", raw, {"url", "keys_dir", "endpoint_url", "region", *secret_keys}
        )
        url = self.store_url(raw)
        keys_dir = self.path(
            "storage.keys_dir", self.nonempty("storage", raw, "keys_dir", "data/keys")
        )
        ids = [self.value("storage", raw, key, str) for key in secret_keys]
        if any(ids) and not all(ids):
            for key, given in zip(secret_keys, ids, strict=True):
                if not given:
                    self.problem(
                        f"storage.{key}",
                        "missing while another key secret is set",
                        "give all three secrets (the stack's outputs), or none to use keys_dir",
                    )
        secrets = KeySecrets(*ids) if all(ids) else None
        endpoint = self.value("storage", raw, "endpoint_url", str)
        region = self.value("storage", raw, "region", str)
        if (endpoint or region) and url is not None and not url.startswith("s3://"):
            self.problem(
                "storage.endpoint_url" if endpoint else "storage.region",
                "applies to s3:// stores only",
                "remove it, or set url = s3://bucket/prefix",
            )
        return StorageConfig(url or "", keys_dir, secrets, endpoint, region)

    def store_url(self, raw: dict) -> str | None:
        """`storage.url` as a file:// or s3:// URL (a plain path made one); None after a problem.
        Any other `scheme://` is refused, not read as a relative folder named "https:"."""
        url = self.nonempty("storage", raw, "url", "data/store")
        written = _URL_SCHEME.match(url)
        if written is None:
            return self.path("storage.url", url).as_uri()
        scheme = written.group(1)
        if scheme in _STORE_SCHEMES:
            if url == "s3://":
                self.problem("storage.url", "no bucket", "write s3://bucket/prefix")
            return url
        if scheme.lower() in _STORE_SCHEMES:
            # Refused, not lower-cased: the endpoint rule here, and the agents an invitation
            # hands this URL to, compare the scheme as written.
            fix = f"write {scheme.lower()}:// in lower case"
        else:
            fix = (
                "write a directory, file:///abs/dir or s3://bucket/prefix (an S3-compatible "
                "service such as MinIO: s3://bucket/prefix and endpoint_url = its address)"
            )
        self.problem("storage.url", f"{url!r}: no store is kept at {scheme}:// URLs", fix)
        return None

    def nonempty(self, where: str, raw: dict, key: str, default: str) -> str:
        """A string setting that may be left out (then `default`) but not written empty: an
        empty path would be the configuration's own folder."""
        value = self.value(where, raw, key, str, default=default)
        if not value.strip():
            self.problem(f"{where}.{key}", "is empty", f'write a path, e.g. "{default}"')
            return default
        return value

    def dns(self, raw: dict) -> DnsCheckSettings:
        self.unknown_keys(
            "dns", raw, {"resolvers", "nameservers", "propagation_timeout", "ip_versions"}
        )
        resolvers = self.value("dns", raw, "resolvers", list)
        resolvers = [r for r in resolvers or [] if self.hostport("dns.resolvers", r)]
        mapping = self.value("dns", raw, "nameservers", dict, default={})
        addresses: dict[str, tuple[str, ...]] = {}
        for name, where in mapping.items():
            full = f'dns.nameservers."{name}"'
            items = [where] if isinstance(where, str) else where
            if not is_hostname(ascii_hostname(name)):
                self.problem(full, f"{name!r} is not a nameserver's name", _NAMESERVERS_FIX)
            elif not isinstance(items, list) or not items:
                kind = kind_name(type(where)) if items != [] else "an empty list"
                self.problem(
                    full, f"must be an address or a list of them, not {kind}", _NAMESERVERS_FIX
                )
            elif all([self.hostport(full, item) for item in items]):  # each bad one reported
                addresses[ascii_hostname(name) + "."] = tuple(items)
        timeout = self.positive(
            "dns", raw, "propagation_timeout", "seconds", PROPAGATION_TIMEOUT, _MAX_SECONDS
        )
        return DnsCheckSettings(
            resolvers=tuple(resolvers) if resolvers else None,
            nameserver_addresses=MappingProxyType(addresses),
            timeout=timeout,
            ip_versions=self.ip_versions(raw),
        )

    def ip_versions(self, raw: dict) -> tuple[int, ...]:
        """`dns.ip_versions`: the address families of nameservers the check asks."""
        versions = self.value("dns", raw, "ip_versions", list, default=list(IP_VERSIONS))
        known = set(IP_VERSIONS)
        if not versions or not all(
            isinstance(v, int) and not isinstance(v, bool) and v in known for v in versions
        ):
            self.problem(
                "dns.ip_versions",
                f"{versions!r} is not a non-empty list of IP versions",
                "write [4] where this host has no IPv6 route, or [4, 6] (the default)",
            )
            return IP_VERSIONS
        return tuple(dict.fromkeys(versions))

    def hostport(self, full: str, item: Any) -> bool:
        # An IP address, never a name: looking a server's name up would need the very resolver
        # this setting replaces.
        try:
            parse_address(item) if isinstance(item, str) else parse_address("")
        except ValueError:
            self.problem(
                full,
                f"{item!r} is not an IP address with an optional port",
                'write "192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:53"',
            )
            return False
        return True

    def alerts(self, raw: dict) -> AlertsConfig | None:
        self.unknown_keys(
            "alerts",
            raw,
            {"webhook_url", "webhook_secret", "sns_topic_arn", "expiry_days", "remind_after_hours"},
        )
        url = self.value("alerts", raw, "webhook_url", str)
        if url is not None and not _is_webhook_url(url):
            self.problem(
                "alerts.webhook_url",
                f"{url!r} is not an https:// URL",
                "give the receiver's https:// URL (http:// only to 127.0.0.1, ::1 or localhost)",
            )
        secret = None
        if "webhook_secret" in raw:
            secret = self.secret("alerts.webhook_secret", raw["webhook_secret"])
            if "webhook_url" not in raw:
                self.problem(
                    "alerts.webhook_secret",
                    "set while webhook_url is not",
                    "add webhook_url, or remove webhook_secret",
                )
        topic = self.value("alerts", raw, "sns_topic_arn", str)
        if topic is not None and not _SNS_TOPIC_ARN.match(topic):
            self.problem(
                "alerts.sns_topic_arn",
                f"{topic!r} is not an SNS topic ARN",
                'write "arn:aws:sns:REGION:ACCOUNT:TOPIC" (the stack\'s AlarmTopicArn output)',
            )
        if "webhook_url" not in raw and "sns_topic_arn" not in raw:
            self.problem(
                "alerts",
                "no channel to send alerts to",
                'add webhook_url = "https://..." or sns_topic_arn = "arn:aws:sns:..."',
            )
        days = self.positive("alerts", raw, "expiry_days", "days", 14.0, 3650.0)
        hours = self.positive("alerts", raw, "remind_after_hours", "hours", 24.0, 8760.0)
        return AlertsConfig(
            webhook_url=url,
            webhook_secret=secret,
            sns_topic_arn=topic,
            expiry_days=days,
            remind_after=timedelta(hours=hours),
        )

    def no_shared_names(self, sites: Mapping[str, SiteConfig]) -> None:
        """One site per set of names: two would share the CA's duplicate-certificate limit, and
        a run that died before recording its order finds it among the account's orders by its
        names alone, so it could take the other site's order over."""
        first: dict[frozenset[str], str] = {}
        for site in sites.values():
            names = frozenset(site.names)
            if (other := first.setdefault(names, site.id)) != site.id:
                self.problem(
                    f"sites.{site.id}",
                    f"orders the same names as sites.{other} ({', '.join(site.names)})",
                    "keep one of the two sites",
                )

    def site(
        self, sid: str, raw: Any, providers: Mapping[str, ProviderConfig], raw_providers: Any
    ) -> SiteConfig | None:
        where = f"sites.{sid}"
        # The agent checks the same shape: site ids end up in object keys and signed entries.
        if not is_site_id(sid):
            self.problem(
                where,
                "a site id must be lower-case letters, digits, '.' and '-' (max 63), "
                "starting with a letter or digit",
                'rename the table, e.g. [sites.example-com] or [sites."example.com"]',
            )
        if not self.is_table(where, raw):
            return None
        self.unknown_keys(
            where,
            raw,
            {
                "domain",
                "wildcard",
                "extra_names",
                "key_type",
                "provider",
                "profile",
                "challenge",
                "key_custody",
            },
        )
        domain = self.value(where, raw, "domain", str, required=True)
        if domain is not None:
            domain = ascii_hostname(domain)
            if not is_hostname(domain):
                self.problem(
                    f"{where}.domain", f"{domain!r} is not a domain name", 'write "example.com"'
                )
        wildcard = self.value(where, raw, "wildcard", bool, default=True)
        extra = self.value(where, raw, "extra_names", list, default=[])
        names = [domain, f"*.{domain}"] if wildcard else [domain]
        for item in extra:
            name = ascii_hostname(item) if isinstance(item, str) else item
            if not is_hostname(name, wildcard=True):
                self.problem(
                    f"{where}.extra_names",
                    f"{item!r} is not a domain name",
                    'write names such as "nas.example.org" or "*.lan.example.org"',
                )
            elif name not in names:
                names.append(name)
        key_text = self.value(where, raw, "key_type", str, default=KeyType.EC_P256.value)
        try:
            key_type = KeyType(key_text)
        except ValueError:
            choices = ", ".join(k.value for k in KeyType)
            self.problem(f"{where}.key_type", f"unknown key type {key_text!r}", f"use {choices}")
            key_type = KeyType.EC_P256
        challenge = self.challenge(where, raw)
        provider = None
        if challenge is not None:  # an unknown one is reported alone: which rule would apply?
            provider = self.site_provider(where, raw, challenge, providers, raw_providers)
        profile = self.value(where, raw, "profile", str)
        custody = self.key_custody(where, raw)
        if domain is None or challenge is None or custody is None:
            return None
        if provider is None and challenge is ChallengeType.DNS_01:
            return None
        return SiteConfig(
            sid, domain, tuple(names), key_type, provider, profile or None, challenge, custody
        )

    def key_custody(self, where: str, raw: dict) -> KeyCustody | None:
        text = self.value(where, raw, "key_custody", str, default=KeyCustody.ISSUER.value)
        try:
            return KeyCustody(text)
        except ValueError:
            self.problem(
                f"{where}.key_custody",
                f"unknown key custody {text!r}",
                'write "issuer" (the default: the issuer makes the key and seals it to every '
                'agent) or "agent" (each agent makes its key on the NAS and sends a CSR)',
            )
            return None

    def challenge(self, where: str, raw: dict) -> ChallengeType | None:
        text = self.value(where, raw, "challenge", str, default=ChallengeType.DNS_01.value)
        try:
            return ChallengeType(text)
        except ValueError:
            self.problem(
                f"{where}.challenge",
                f"unknown challenge {text!r}",
                'write "dns-01" (the default: TXT values written through a provider) or '
                '"dns-persist-01" (one record created once, no DNS credentials)',
            )
            return None

    def site_provider(
        self,
        where: str,
        raw: dict,
        challenge: ChallengeType,
        providers: Mapping[str, ProviderConfig],
        raw_providers: Any,
    ) -> str | None:
        """The site's provider: required for dns-01, refused for dns-persist-01."""
        if challenge is ChallengeType.DNS_PERSIST_01:
            if "provider" in raw:
                self.problem(
                    f"{where}.provider",
                    "a dns-persist-01 site writes no DNS records, so it takes no provider",
                    "remove provider (the record is created once: see `certdrop site "
                    'persist-record`), or write challenge = "dns-01"',
                )
            return None
        if "provider" not in raw:
            self.problem(
                f"{where}.provider",
                "missing: a dns-01 site writes its TXT values through a provider",
                'add provider = "<a [providers.NAME]>", or challenge = "dns-persist-01" for a '
                "site whose issuer holds no DNS credentials",
            )
            return None
        provider = self.value(where, raw, "provider", str)
        if provider is not None and provider not in providers and provider not in raw_providers:
            known = ", ".join(sorted(raw_providers)) or "none defined"
            self.problem(
                f"{where}.provider",
                f"no provider named {provider!r}",
                f"define [providers.{provider}] or use one of: {known}",
            )
        return provider


_NAMESERVERS_FIX = 'write "ns1.example.com" = "192.0.2.10" or ["192.0.2.10", "[2001:db8::10]:53"]'


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def _is_webhook_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "http":
        return parts.hostname in _LOOPBACK_HOSTS
    return parts.scheme == "https" and bool(parts.hostname)
