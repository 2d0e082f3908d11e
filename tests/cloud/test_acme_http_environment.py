"""The CA session reads the environment once, for the CA's directory URL, as requests would
have for every request."""

from __future__ import annotations

import pytest
import requests

from cloud.acme.http_environment import settle

DIRECTORY = "https://ca.example.test/directory"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_the_proxy_for_the_ca_is_kept_and_the_environment_not_read_again(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    session = requests.Session()

    verify = settle(session, DIRECTORY, "/etc/ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example.test:3128")
    merged = session.merge_environment_settings(DIRECTORY, {}, None, verify, None)

    assert verify == "/etc/ca.pem"
    assert merged["proxies"]["https"] == "http://proxy.example.test:3128"


def test_no_proxy_naming_the_ca_host_means_no_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "ca.example.test")
    session = requests.Session()

    settle(session, DIRECTORY, True)

    assert "https" not in session.proxies


def test_the_environment_ca_bundle_applies_only_when_none_is_configured(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/env/ca.pem")

    assert settle(requests.Session(), DIRECTORY, True) == "/env/ca.pem"
    assert settle(requests.Session(), DIRECTORY, "/configured.pem") == "/configured.pem"
