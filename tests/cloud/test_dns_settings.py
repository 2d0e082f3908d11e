"""The `[dns]` table of certdrop.toml as the propagation check's settings: `ip_versions`, the
address families of nameservers asked (a host without an IPv6 route writes [4])."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cloud.config import parse
from cloud.errors import ConfigError

_CONFIG = """
[ca]
directory = "https://acme.example/directory"
terms_agreed = true

[providers.bind]
type = "rfc2136"
server = "127.0.0.1:5300"
tsig_name = "acme-key"
tsig_secret = "env:TSIG_SECRET"

[sites.example]
domain = "example.test"
provider = "bind"

[dns]
"""


def _dns(lines: str = "") -> object:
    return parse(textwrap.dedent(_CONFIG) + lines, Path("/etc/certdrop/certdrop.toml")).dns


def test_nameservers_of_both_address_families_are_asked_by_default() -> None:
    assert _dns().ip_versions == (4, 6)


def test_ip_versions_restricts_the_address_families_asked() -> None:
    assert _dns("ip_versions = [4]\n").ip_versions == (4,)
    assert _dns("ip_versions = [6, 4, 6]\n").ip_versions == (6, 4)


@pytest.mark.parametrize("written", ["[]", "[5]", '["4"]', "[true]", "4", '"4"'])
def test_ip_versions_other_than_a_list_of_4_and_6_is_a_config_problem(written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _dns(f"ip_versions = {written}\n")
    assert [p.key for p in caught.value.problems] == ["dns.ip_versions"]
