"""ACME profiles as a site setting: a "shortlived" site gets 6-day certificates renewed at the
right point of their short life (inside the CA's window with ARI, at day 4 without), and a
profile the CA does not list is refused before any order is placed."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import requests

from cloud.acme.client import AcmeClient
from cloud.cli.exit_codes import EXIT_ACME
from cloud.cli.main import main
from cloud.errors import ProfileUnknown
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.schedule import read_markers
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from lab.issuer_config import bind_config
from tests.cloud.issuing import record_wire, txt_values

DAY = timedelta(days=1)


def _config(directory, pebble, bind, profile: str):
    config = bind_config(
        directory, pebble, bind, site=f'domain = "example.test"\n    profile = "{profile}"'
    )
    init_issuer(parts.keystore(config))
    return config


def _runner(config, now):
    return Runner(
        config,
        parts.store(config),
        parts.keystore(config),
        parts.publisher(config),
        now=lambda: now,
        rng=random.Random(5),
    )


@pytest.fixture
def shortlived(tmp_path, pebble_profiles, bind_auth):
    return _config(tmp_path, pebble_profiles, bind_auth, "shortlived")


@pytest.fixture
def wire(monkeypatch, pebble_profiles):
    return record_wire(monkeypatch, pebble_profiles)


def test_a_shortlived_certificate_is_renewed_inside_the_cas_window_around_day_four(
    shortlived, wire
):
    now = datetime.now(UTC)
    _runner(shortlived, now).run_site("example")
    state = load_site_state(parts.store(shortlived), "example")
    cert, window = state.current, state.window

    assert cert.profile == "shortlived"
    assert timedelta(days=6) - timedelta(seconds=1) <= cert.not_after - cert.not_before <= 6 * DAY
    # Pebble's window for it: a day either side of two thirds, day 3 to day 5.
    assert abs(window.start - (cert.not_before + 3 * DAY)) < timedelta(seconds=2)
    assert abs(window.end - (cert.not_before + 5 * DAY)) < timedelta(seconds=2)
    assert window.start <= window.renew_at < window.end

    early = _runner(shortlived, window.renew_at - timedelta(minutes=1)).run_site("example")
    renewed = _runner(shortlived, window.renew_at + timedelta(minutes=1)).run_site("example")

    assert (early.result, early.reason) == ("not due", "waiting for the ARI window")
    assert (renewed.result, renewed.reason) == ("issued", "inside the CA's renewal window (ARI)")
    placed = [o["payload"] for o in wire.placed()]
    assert [(o["profile"], o.get("replaces")) for o in placed] == [
        ("shortlived", None),
        ("shortlived", cert.ari_id),
    ]
    # Read after issuing, again at the early run (its Retry-After had passed), and for the new one.
    assert len(wire.renewal_info_gets()) == 3


def test_without_ari_a_shortlived_certificate_is_renewed_at_two_thirds_on_day_four(
    shortlived, wire, monkeypatch
):
    monkeypatch.setattr(AcmeClient, "renewal_info_url", property(lambda self: None))
    now = datetime.now(UTC)
    _runner(shortlived, now).run_site("example")
    store = parts.store(shortlived)
    cert = load_site_state(store, "example").current
    day_four = cert.not_before + (cert.not_after - cert.not_before) * 2 / 3

    assert abs(day_four - (cert.not_before + 4 * DAY)) < timedelta(seconds=1)
    assert load_site_state(store, "example").window is None
    assert read_markers(store)["example"].next_check == day_four.replace(microsecond=0)

    early = _runner(shortlived, day_four - timedelta(minutes=1)).run_site("example")
    renewed = _runner(shortlived, day_four + timedelta(minutes=1)).run_site("example")

    assert (early.result, early.reason) == ("not due", "valid")
    assert (renewed.result, renewed.reason) == ("issued", "two thirds of the lifetime passed")
    placed = [o["payload"] for o in wire.placed()]
    assert [(o["profile"], o.get("replaces")) for o in placed] == [("shortlived", None)] * 2
    assert wire.renewal_info_gets() == []


def test_an_unknown_profile_is_refused_before_any_order_naming_the_profiles_the_ca_offers(
    tmp_path, pebble_profiles, bind_auth, wire, capsys
):
    config = _config(tmp_path, pebble_profiles, bind_auth, "shortlive")

    outcome = _runner(config, datetime.now(UTC)).run_site("example")
    state = load_site_state(parts.store(config), "example")
    code = main(["-c", str(config.source), "issue", "example"])

    assert outcome.result == "failed"
    assert isinstance(outcome.error, ProfileUnknown)
    assert outcome.error.code == "acme.profile_unknown"
    assert outcome.error.offered == ("classic", "shortlived")
    assert "offers no profile 'shortlive'" in str(outcome.error)
    assert "lists classic, shortlived" in str(outcome.error)
    assert wire.orders() == []  # nothing reached the CA's newOrder
    assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()
    assert (state.last_error.code, state.failures) == ("acme.profile_unknown", 1)
    assert code == EXIT_ACME
    assert "lists classic, shortlived" in capsys.readouterr().err


def test_a_profile_is_refused_when_the_cas_directory_lists_none(
    tmp_path, pebble, bind_auth, monkeypatch
):
    wire = record_wire(monkeypatch, pebble)
    recording = requests.adapters.HTTPAdapter.send

    def without_profiles(self, request, *args, **kwargs):
        response = recording(self, request, *args, **kwargs)
        if request.url == pebble.directory_url:
            body = response.json()
            del body["meta"]["profiles"]
            response._content = json.dumps(body).encode()
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", without_profiles)
    config = _config(tmp_path, pebble, bind_auth, "classic")

    outcome = _runner(config, datetime.now(UTC)).run_site("example")

    assert outcome.result == "failed"
    assert outcome.error.code == "acme.profile_unknown"
    assert outcome.error.offered == ()
    assert "lists no profiles" in str(outcome.error)
    assert "remove the site's profile" in str(outcome.error)
    assert wire.orders() == []
