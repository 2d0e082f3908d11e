# Over 300 lines: one parser object walks the whole file so every problem is reported at once.
"""Reads the agent's INI text into `nas_agent.config.types`, collecting every problem."""

from __future__ import annotations

import configparser
import os
import re
from types import MappingProxyType
from typing import Any, Callable
from urllib.parse import urlsplit

from nas_agent._encoding import parse_timestamp
from nas_agent.config.errors import AgentConfigError, ConfigProblem
from nas_agent.config.syntax import COMMENT_PREFIXES, scan
from nas_agent.config.types import (
    CONFIRM_TIMEOUT,
    DEFAULT_DSM_URL,
    MAX_POLL_INTERVAL,
    MAX_TIMEOUT,
    MIN_POLL_INTERVAL,
    POLL_INTERVAL,
    AgentConfig,
    AgentSettings,
    DsmConfig,
    SiteConfig,
    SourceConfig,
)
from nas_agent.dsm import PIN_FILE, REQUEST_TIMEOUT
from nas_agent.duration import DURATION_FIX, format_duration, parse_duration
from nas_agent.enrollment import parse_issuer_key_line
from nas_agent.errors import TokenError
from nas_agent.ids import ascii_hostname, is_agent_id, is_hostname, is_site_id, is_wildcard
from nas_agent.temp_admin import LOCAL_HOSTS, OTP_JOURNAL_FILE, TEMP_ADMIN_USER

# configparser copies a [DEFAULT] section into every other one; naming it impossibly makes
# [DEFAULT] an ordinary, unknown section instead.
_NO_DEFAULTS = "\0"
_SITE = "site:"
_KNOWN = {
    "agent": {
        "id",
        "issuer_key",
        "keys_dir",
        "state_file",
        "poll_interval",
        "accept_index_v1_until",
    },
    "source": {
        "url",
        "endpoint_url",
        "region",
        "credentials_file",
        "addressing_style",
        "ca_file",
        "timeout",
    },
    "dsm": {
        "url",
        "username",
        "password_file",
        "password_env",
        "device_id_file",
        "ca_file",
        "insecure",
        "timeout",
        "confirm_timeout",
        "temp_admin",
    },
}
_SITE_KEYS = {"hostnames", "description", "make_default", "services"}
_FLAGS = {"true": True, "yes": True, "on": True, "1": True}
_FLAGS.update({"false": False, "no": False, "off": False, "0": False})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_config(text: str, path: str) -> AgentConfig:
    """Every problem of the file: its syntax (lines it cannot read, keys or sections written
    twice) and, read as far as it can be, the values of every section."""
    syntax, readable = scan(text)
    parser = configparser.ConfigParser(
        interpolation=None,
        default_section=_NO_DEFAULTS,
        inline_comment_prefixes=COMMENT_PREFIXES,
        strict=False,  # what strict mode stops at is in `syntax`
    )
    try:
        parser.read_string(readable, source=path)
    except configparser.ParsingError as exc:
        # Raised once all was read (what it read is kept); its lines are in `syntax` already.
        if not syntax:
            syntax.append(_syntax_problem(exc))
    except configparser.Error as exc:  # anything `scan` did not foresee
        raise AgentConfigError([*syntax, _syntax_problem(exc)], path) from exc
    reader = _Reader(parser, os.path.dirname(path))
    reader.problems.extend(syntax)
    config = reader.config(path)
    if reader.problems or config is None:
        raise AgentConfigError(reader.problems, path)
    return config


def _https_host(url: str) -> str | None:
    """The host of an https:// URL with a host and a valid port; None for anything else."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError:
        return None
    return parts.hostname if parts.scheme == "https" and parts.hostname else None


def _syntax_problem(exc: configparser.Error) -> ConfigProblem:
    if isinstance(exc, configparser.DuplicateSectionError):
        return ConfigProblem(f"[{exc.section}]", "appears twice", "merge the two sections")
    if isinstance(exc, configparser.DuplicateOptionError):
        return ConfigProblem(f"{exc.section}.{exc.option}", "is set twice", "keep one")
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return ConfigProblem(
            "(file)", f"line {exc.lineno}: a key before any [section]", "start with [agent]"
        )
    if isinstance(exc, configparser.ParsingError):
        line, content = exc.errors[0]
        return ConfigProblem("(file)", f"line {line}: cannot read {content!r}", "write key = value")
    return ConfigProblem("(file)", f"not an INI file: {exc}", "fix the syntax")


class _Reader:
    def __init__(self, parser: configparser.ConfigParser, base: str):
        self.parser = parser
        self.base = base
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, cause: str, fix: str) -> None:
        self.problems.append(ConfigProblem(key, cause, fix))

    def config(self, path: str) -> AgentConfig | None:
        for section in self.parser.sections():
            if section not in _KNOWN and not section.startswith(_SITE):
                self.problem(
                    f"[{section}]", "unknown section", "use [agent], [source], [dsm], [site:<id>]"
                )
        agent, source = self.agent(), self.source()
        dsm = self.dsm(os.path.dirname(agent.state_file) if agent is not None else self.base)
        sites = self.sites()
        if agent is None or source is None or dsm is None or self.problems:
            return None
        return AgentConfig(path, agent, source, dsm, MappingProxyType(sites))

    # --- values -------------------------------------------------------------------------------

    def section(self, name: str) -> dict[str, str]:
        if not self.parser.has_section(name):
            return {}
        values = {key: value.strip() for key, value in self.parser.items(name)}
        known = _SITE_KEYS if name.startswith(_SITE) else _KNOWN[name]
        for key in sorted(set(values) - known):
            self.problem(
                f"{name}.{key}", "unknown key", f"remove it; known: {', '.join(sorted(known))}"
            )
        # An empty value is an unset key: `ca_file =` reads as "no CA file".
        return {key: value for key, value in values.items() if value}

    def required(self, name: str, raw: dict[str, str], key: str, example: str) -> str | None:
        if key not in raw:
            self.problem(f"{name}.{key}", "missing", f"write {key} = {example}")
        return raw.get(key)

    def path(self, raw: dict[str, str], key: str, default: str | None = None) -> str | None:
        value = raw.get(key, default)
        if value is None:
            return None
        return os.path.normpath(os.path.join(self.base, os.path.expanduser(value)))

    def seconds(
        self,
        name: str,
        raw: dict[str, str],
        key: str,
        default: float,
        minimum: float,
        maximum: float = MAX_TIMEOUT,
    ) -> float:
        text = raw.get(key)
        if text is None:
            return default
        value = parse_duration(text)
        if value is None or not minimum <= value <= maximum:
            self.problem(
                f"{name}.{key}",
                f"{text!r} is not a duration from {minimum:g} s to {format_duration(maximum)}",
                DURATION_FIX,
            )
            return default
        return value

    def flag(self, name: str, raw: dict[str, str], key: str) -> bool:
        text = raw.get(key, "false").lower()
        if text not in _FLAGS:
            self.problem(f"{name}.{key}", f"{text!r} is not true or false", f"write {key} = true")
            return False
        return _FLAGS[text]

    def names(self, raw: dict[str, str], key: str) -> tuple[str, ...]:
        items = [item.strip() for item in raw.get(key, "").replace("\n", ",").split(",")]
        return tuple(dict.fromkeys(item for item in items if item))

    # --- sections -----------------------------------------------------------------------------

    def agent(self) -> AgentSettings | None:
        raw = self.need_section("agent")
        agent_id = self.required("agent", raw, "id", "nas-01")
        if agent_id is not None and not is_agent_id(agent_id):
            self.problem(
                "agent.id",
                f"{agent_id!r} is not an agent id",
                "use lower-case letters, digits and '-' (max 63)",
            )
        line = raw.get("issuer_key")
        key = None
        if line is not None:
            try:
                key = parse_issuer_key_line(line)
            except TokenError as exc:
                self.problem(
                    "agent.issuer_key",
                    exc.reason,
                    "paste the whole certdrop-issuer-v1:... line again",
                )
        interval = self.seconds(
            "agent", raw, "poll_interval", POLL_INTERVAL, MIN_POLL_INTERVAL, MAX_POLL_INTERVAL
        )
        v1_until = None
        if raw.get("accept_index_v1_until") is not None:
            try:
                v1_until = parse_timestamp(raw["accept_index_v1_until"])
            except ValueError:
                self.problem(
                    "agent.accept_index_v1_until",
                    f"{raw['accept_index_v1_until']!r} is not a UTC timestamp",
                    "write it as 2027-01-31T00:00:00Z, or remove it",
                )
        if agent_id is None:
            return None
        return AgentSettings(
            id=agent_id,
            keys_dir=self.path(raw, "keys_dir", "keys") or "",
            state_file=self.path(raw, "state_file", "state.json") or "",
            poll_interval=interval,
            issuer_key_line=line if key is not None else None,
            issuer_key=key,
            accept_index_v1_until=v1_until,
        )

    def source(self) -> SourceConfig | None:
        raw = self.need_section("source")
        url = self.required("source", raw, "url", "s3://bucket/prefix")
        timeout = self.seconds("source", raw, "timeout", 0.0, 1.0) or None
        config = SourceConfig(
            url=url or "",
            endpoint_url=raw.get("endpoint_url"),
            region=raw.get("region"),
            credentials_file=self.path(raw, "credentials_file"),
            addressing_style=raw.get("addressing_style"),
            ca_file=self.path(raw, "ca_file"),
            timeout=timeout,
        )
        if url is None:
            return None
        # Imported here: nas_agent.sources imports nas_agent.config.errors, which runs this
        # package's __init__ and so this module; at the top it would be a circular import.
        from nas_agent.sources import check_source_url

        self.collect(lambda: check_source_url(url, **config.options()))
        return config

    def dsm(self, state_dir: str) -> DsmConfig | None:
        raw = self.need_section("dsm")
        url = raw.get("url", DEFAULT_DSM_URL)
        host = _https_host(url)
        if host is None:
            self.problem(
                "dsm.url", f"{url!r} is not an https:// URL", f"write url = {DEFAULT_DSM_URL}"
            )
        temp_admin = self.flag("dsm", raw, "temp_admin")
        if temp_admin:
            self.temp_admin(raw, host)
            username: str | None = TEMP_ADMIN_USER
        else:
            username = self.required("dsm", raw, "username", "<an administrator account>")
        password_file, password_env = self.path(raw, "password_file"), raw.get("password_env")
        if password_file is None and password_env is None and not temp_admin:
            self.problem(
                "dsm.password_file",
                "missing",
                "write password_file = <a 0600 file> or password_env = <VARIABLE>",
            )
        elif password_file is not None and password_env is not None:
            self.problem(
                "dsm.password_env", "set together with password_file", "keep one of the two"
            )
        if password_env is not None and not _ENV_NAME.fullmatch(password_env):
            self.problem(
                "dsm.password_env",
                f"{password_env!r} is not a variable name",
                "write e.g. DSM_PASSWORD",
            )
        insecure = self.flag("dsm", raw, "insecure")
        ca_file = self.path(raw, "ca_file")
        if insecure and ca_file is not None:
            self.problem(
                "dsm.insecure", "set together with ca_file", "keep ca_file and remove insecure"
            )
        elif insecure and host is not None and host not in LOCAL_HOSTS:
            self.problem(
                "dsm.insecure",
                f"refused for {host!r}: only a DSM reached over loopback"
                f" ({', '.join(LOCAL_HOSTS)}) may go unchecked",
                "remove insecure: DSM's certificate is then pinned on first use",
            )
        if username is None:
            return None
        return DsmConfig(
            username=username,
            device_id_file=self.path(raw, "device_id_file", "dsm-device-id") or "",
            url=url,
            password_file=password_file,
            password_env=password_env,
            ca_file=ca_file,
            insecure=insecure,
            timeout=self.seconds("dsm", raw, "timeout", REQUEST_TIMEOUT, 1.0),
            confirm_timeout=self.seconds("dsm", raw, "confirm_timeout", CONFIRM_TIMEOUT, 1.0),
            temp_admin=temp_admin,
            pin_file=os.path.join(state_dir, PIN_FILE),
            otp_journal_file=os.path.join(state_dir, OTP_JOURNAL_FILE),
        )

    def temp_admin(self, raw: dict[str, str], host: str | None) -> None:
        """Temp-admin mode makes its own account on this machine: no credentials, a local URL."""
        for key in ("username", "password_file", "password_env", "device_id_file"):
            if key in raw:
                self.problem(
                    f"dsm.{key}",
                    "set together with temp_admin, which logs in as a temporary account "
                    f"({TEMP_ADMIN_USER}) with a new random password each run",
                    f"remove {key}, or remove temp_admin",
                )
        if host is not None and host not in LOCAL_HOSTS:
            self.problem(
                "dsm.temp_admin",
                f"needs a DSM on this machine, but dsm.url names {host!r}",
                f"write url = https://127.0.0.1:<port>, or remove temp_admin "
                f"(local names: {', '.join(LOCAL_HOSTS)})",
            )

    def sites(self) -> dict[str, SiteConfig]:
        sites: dict[str, SiteConfig] = {}
        names = [s for s in self.parser.sections() if s.startswith(_SITE)]
        if not names:
            self.problem(
                "[site:<id>]",
                "no site configured",
                "add a [site:example.com] section with hostnames",
            )
        for name in names:
            site = self.site(name)
            if site is not None:
                sites[site.id] = site
        by_description: dict[str, str] = {}
        for site in sites.values():
            other = by_description.setdefault(site.description, site.id)
            if other != site.id:
                self.problem(
                    f"{_SITE}{site.id}.description",
                    f"the same as site {other}'s",
                    "give each site its own DSM certificate description",
                )
        defaults = [site.id for site in sites.values() if site.make_default]
        if len(defaults) > 1:
            self.problem(
                f"{_SITE}{defaults[1]}.make_default",
                f"also set for {defaults[0]}",
                "set make_default on one site only",
            )
        return sites

    def site(self, name: str) -> SiteConfig | None:
        site_id = name[len(_SITE) :]
        raw = self.section(name)
        if not is_site_id(site_id):
            self.problem(
                f"[{name}]",
                f"{site_id!r} is not a site id",
                "use the site id the operator configured, e.g. [site:example.com]",
            )
        written = self.names(raw, "hostnames")
        # Normalised before dropping repeats: NAS.example.com. and nas.example.com are one name.
        hostnames = tuple(
            dict.fromkeys(self.hostname(name, item, first=i == 0) for i, item in enumerate(written))
        )
        if not hostnames:
            self.problem(f"{name}.hostnames", "missing", "write hostnames = nas.example.com")
        description = raw.get("description", f"certdrop {site_id}")
        return SiteConfig(
            id=site_id,
            hostnames=hostnames,
            description=description,
            make_default=self.flag(name, raw, "make_default"),
            services=self.names(raw, "services"),
        )

    def hostname(self, name: str, text: str, *, first: bool) -> str:
        hostname = ascii_hostname(text)
        if not is_hostname(hostname, wildcard=True):
            self.problem(
                f"{name}.hostnames",
                f"{text!r} is not a host name",
                "write names such as nas.example.com",
            )
        elif first and is_wildcard(hostname):
            self.problem(
                f"{name}.hostnames",
                f"the first name {text!r} is a wildcard",
                "put a plain name first: it is the name the install is confirmed with",
            )
        return hostname

    def need_section(self, name: str) -> dict[str, str]:
        if not self.parser.has_section(name):
            self.problem(f"[{name}]", "missing", f"add a [{name}] section")
        return self.section(name)

    def collect(self, check: Callable[[], Any]) -> None:
        try:
            check()
        except AgentConfigError as exc:
            self.problems.extend(exc.problems)
