"""The provider registry: what it lists, how it builds, and that importing it stays cheap.

What a provider table may hold is checked by the config layer (test_config_providers.py); the
registry trusts it, fills in defaults and reads secrets.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.registry import PROVIDERS, build_provider
from cloud.errors import SecretError
from cloud.secrets import SecretRef
from tests.cloud.conftest import dns_txt


def test_every_provider_documents_its_settings_and_permissions():
    for name, info in PROVIDERS.items():
        assert info.name == name
        assert info.summary and info.permissions
        assert info.settings, name
        for setting in info.settings:
            assert setting.help, f"{name}.{setting.key} has no help text"
            assert not (setting.required and setting.default is not None), setting.key


def test_a_secret_given_as_a_reference_is_resolved(monkeypatch, powerdns_server):
    monkeypatch.setenv("CERTDROP_TEST_PDNS_KEY", powerdns_server.api_key)
    provider = build_provider(
        "powerdns",
        {"api_url": powerdns_server.api_url, "api_key": SecretRef("env", "CERTDROP_TEST_PDNS_KEY")},
    )
    record = TxtRecord(
        "example.test.", f"_acme-challenge.t{secrets.token_hex(5)}.example.test.", "v"
    )

    provider.add_txt(record)  # the API refuses a wrong key, so this proves the key was resolved

    assert dns_txt(powerdns_server.address, powerdns_server.port, record.fqdn) == ["v"]


def test_an_unreadable_secret_reference_is_a_secret_error_naming_the_reference(monkeypatch):
    monkeypatch.delenv("CERTDROP_TEST_MISSING", raising=False)
    with pytest.raises(SecretError, match="env:CERTDROP_TEST_MISSING"):
        build_provider(
            "powerdns",
            {"api_url": "http://127.0.0.1:1", "api_key": SecretRef("env", "CERTDROP_TEST_MISSING")},
        )


def test_importing_the_registry_loads_no_heavy_library():
    heavy = ("boto3", "botocore", "lexicon", "tldextract")
    code = (
        "import sys, cloud.dns01.providers.registry; "
        f"print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
