"""The CA session reads the environment once per host, as requests would have for every
request: proxies and NO_PROXY per host, the CA bundle variables when none is configured."""

from __future__ import annotations

import http.server
import threading

import pytest

from cloud.acme.http_environment import EnvironmentOnce, ca_verify
from lab.ports import LOOPBACK

DIRECTORY = "https://ca.example.test/directory"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("all_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def _proxies(session: EnvironmentOnce, url: str) -> dict[str, str]:
    return session.merge_environment_settings(url, {}, None, True, None)["proxies"]


def test_the_proxy_for_a_host_is_read_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    session = EnvironmentOnce()

    first = _proxies(session, DIRECTORY)
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example.test:3128")

    assert first["https"] == "http://proxy.example.test:3128"
    assert _proxies(session, DIRECTORY + "/again")["https"] == "http://proxy.example.test:3128"


def test_no_proxy_applies_to_each_host_of_the_ca(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "certs.example.test")
    session = EnvironmentOnce()

    assert _proxies(session, DIRECTORY)["https"] == "http://proxy.example.test:3128"
    assert "https" not in _proxies(session, "https://certs.example.test/cert/1")


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def test_a_host_exempt_from_the_proxy_is_reached_directly_after_a_proxied_one(monkeypatch):
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HTTP_PROXY", f"http://{LOOPBACK}:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", LOOPBACK)
    try:
        with EnvironmentOnce() as session:
            assert _proxies(session, "http://acme.ca.example/directory")["http"]
            got = session.get(f"http://{LOOPBACK}:{server.server_port}/renewal-info/x", timeout=5)
        assert got.status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_environment_ca_bundle_applies_only_when_none_is_configured(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/env/ca.pem")

    assert ca_verify(True) == "/env/ca.pem"
    assert ca_verify("/configured.pem") == "/configured.pem"
