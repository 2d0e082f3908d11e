"""certdrop.toml for the local lab: issuing from Pebble, writing TXT values to BIND by RFC 2136
(or, for a dns-persist-01 site, writing nothing), checking DNS only against loopback servers."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from cloud.config import Config, load


def write_config(
    directory: Path,
    *,
    pebble,
    resolver: str,
    nameservers: Mapping[str, str],
    provider: str,
    site: str = 'domain = "example.test"',
    ca_extra: str = "",
    propagation_timeout: float = 10,
    persist: bool = False,
) -> Config:
    """A configuration issuing from `pebble`, checking propagation only against loopback. With
    `persist` the site "example" uses dns-persist-01 and names no provider."""
    how = 'challenge = "dns-persist-01"' if persist else 'provider = "dns"'
    mapping = ", ".join(f'"{ns}" = "{addr}"' for ns, addr in nameservers.items())
    text = f"""
    [ca]
    directory = "{pebble.directory_url}"
    ca_bundle = "{pebble.ca_bundle}"
    terms_agreed = true
    contact = "ops@example.test"
    order_timeout = 30
    {ca_extra}

    [storage]
    url = "store"
    keys_dir = "keys"

    [dns]
    resolvers = ["{resolver}"]
    nameservers = {{ {mapping} }}
    propagation_timeout = {propagation_timeout}

    [providers.dns]
    {provider}

    [sites.example]
    {how}
    {site}
    """
    path = directory / "certdrop.toml"
    path.write_text(textwrap.dedent(text))
    return load(path)


def bind_config(directory: Path, pebble, bind, **overrides) -> Config:
    """The usual set-up: `bind` (a BindServer) answers discovery and is every nameserver of
    example.test and validation.test, written to through RFC 2136 with its TSIG key (secret in
    `directory`/tsig). Keyword arguments override write_config's."""
    settings = {
        "pebble": pebble,
        "resolver": bind.address,
        "nameservers": {
            "ns1.example.test": bind.address,
            "ns2.example.test": bind.address,
            "ns1.validation.test": bind.address,
        },
        "provider": rfc2136_provider(bind.address, bind.tsig, directory / "tsig"),
    }
    return write_config(directory, **{**settings, **overrides})


def rfc2136_provider(server: str, tsig_key, secret_file: Path) -> str:
    secret_file.write_text(tsig_key.secret)
    return textwrap.dedent(
        f"""
        type = "rfc2136"
        server = "{server}"
        tsig_name = "{tsig_key.name}"
        tsig_secret = "file:{secret_file}"
        """
    )
