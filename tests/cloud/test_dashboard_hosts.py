"""The dashboard answers only requests addressed to it by a name it is served under: a page
another site's DNS name points at 127.0.0.1 (DNS rebinding) cannot read `/status.json` from an
operator's browser."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests

from cloud.fleet.dashboard import make_app
from cloud.fleet.dashboard.server import serving
from cloud.fleet.status import collect
from lab.sample_fleet import make_fleet
from tests.cloud.test_dashboard import _function_url_event, deployed

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
deployed = deployed  # the bucket of a deployed stack on moto (a fixture of test_dashboard)


@pytest.fixture
def served(tmp_path):
    fleet = make_fleet(tmp_path, NOW)
    with serving(make_app(lambda: collect(fleet.config, fleet.store, NOW))) as url:
        yield url


def _get(url: str, path: str, host: str) -> requests.Response:
    return requests.get(url + path, headers={"Host": host}, timeout=10, allow_redirects=False)


@pytest.mark.parametrize("path", ["", "status.json", "timeline.svg"])
def test_a_request_for_another_host_name_is_refused(served, path):
    port = urlsplit(served).port

    rebound = _get(served, path, f"rebind.attacker.example:{port}")
    bare = _get(served, path, "rebind.attacker.example")

    assert rebound.status_code == 400 and bare.status_code == 400
    assert "nas-ok" not in rebound.text and "nas-ok" not in bare.text


def test_the_loopback_names_with_the_served_port_are_answered(served):
    port = urlsplit(served).port

    answers = {host: _get(served, "status.json", host) for host in
               (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}")}  # fmt: skip
    other_port = _get(served, "status.json", f"127.0.0.1:{port + 1 if port < 65535 else 1}")

    assert {host: r.status_code for host, r in answers.items()} == dict.fromkeys(answers, 200)
    assert other_port.status_code == 400


def test_the_lambda_answers_its_function_url_host_and_refuses_another(deployed):
    from cloud.aws import handlers

    own = handlers.dashboard(_function_url_event("/status.json"), None)
    event = _function_url_event("/status.json")
    event["headers"]["host"] = "rebind.attacker.example"
    other = handlers.dashboard(event, None)

    assert own["statusCode"] == 200
    assert other["statusCode"] == 400
    assert "nas-ok" not in other["body"]
