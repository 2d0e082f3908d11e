"""ACME Renewal Information: the CertID, the window, and renewal orders that say what they
replace — against Pebble behind a front that adds a renewalInfo endpoint."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.acme.ari import ari_cert_id, fetch_window
from cloud.cli.exit_codes import EXIT_OK
from cloud.cli.main import main
from cloud.config import load
from cloud.errors import AcmeError
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from cloud.pipeline.tick import run_tick, site_of
from lab.ari_front import AriFront
from lab.issuer_config import bind_config


def _cert(serial: int, key_identifier: bytes) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")])
    now = datetime.now(UTC)
    aki = x509.AuthorityKeyIdentifier(key_identifier, None, None)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(aki, critical=False)
        .sign(key, hashes.SHA256())
    )


def test_the_cert_id_is_rfc_9773s_example():
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")

    assert ari_cert_id(_cert(0x87654321, aki)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_a_failing_renewal_info_endpoint_is_a_transient_error():
    with pytest.raises(AcmeError) as caught:
        fetch_window(
            "http://127.0.0.1:9/renewal-info",
            "x.y",
            session=requests.Session(),
            now=datetime.now(UTC),
        )

    assert caught.value.problem == "ari"
    assert caught.value.transient


@pytest.fixture
def ari(tmp_path, pebble, bind_auth):
    with AriFront(tmp_path / "front", pebble) as front:
        config = bind_config(tmp_path, pebble, bind_auth)
        text = config.source.read_text()
        text = text.replace(pebble.directory_url, front.directory_url)
        text = text.replace(str(pebble.ca_bundle), str(front.ca_bundle))
        config.source.write_text(text)
        config = load(config.source)
        init_issuer(parts.keystore(config))
        yield front, config


@pytest.fixture
def new_orders(monkeypatch):
    """The JWS payloads of newOrder requests as they leave for the CA."""
    sent = []
    original = requests.adapters.HTTPAdapter.send

    def recording(self, request, *args, **kwargs):
        if request.method == "POST" and request.url.endswith("/order-plz"):
            payload = json.loads(request.body)["payload"]
            sent.append(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording)
    return sent


def _runner(config, now):
    return Runner(
        config,
        parts.store(config),
        parts.keystore(config),
        parts.publisher(config),
        now=lambda: now,
        rng=random.Random(3),
    )


def test_a_renewal_waits_for_the_window_and_then_orders_with_replaces(ari, new_orders):
    front, config = ari
    now = datetime.now(UTC)
    front.window = (now + timedelta(days=30), now + timedelta(days=32))
    front.retry_after = 3600

    first = _runner(config, now).run_site("example")
    state = load_site_state(parts.store(config), "example")

    assert first.result == "issued"
    assert "replaces" not in new_orders[0]
    assert front.asked == [state.current.ari_id]
    window = state.window
    assert front.window[0] <= window.renew_at < front.window[1]
    assert abs((window.next_check - (now + timedelta(hours=1))).total_seconds()) < 2

    # Before the next check nothing is asked or ordered.
    quiet = _runner(config, now + timedelta(minutes=30)).run_site("example")
    assert quiet.result == "not due"
    assert len(front.asked) == 1 and len(new_orders) == 1

    # The CA moves the window into the past (say, a revocation is coming): renew at once.
    later = now + timedelta(hours=2)
    front.window = (later - timedelta(hours=1), later - timedelta(minutes=1))
    renewed = _runner(config, later).run_site("example")

    assert renewed.result == "issued"
    assert "ARI" in renewed.reason
    assert new_orders[1]["replaces"] == state.current.ari_id
    assert load_site_state(parts.store(config), "example").current.version == 2


class _Queue:
    def __init__(self):
        self.sent = []

    def send(self, bodies):
        self.sent.extend(bodies)


def test_a_manual_reissue_replaces_and_leaves_run_and_tick_nothing_to_order(ari, new_orders):
    front, config = ari
    store = parts.store(config)
    now = datetime.now(UTC)
    # The CA wants the first certificate renewed at once.
    front.window = (now - timedelta(hours=2), now - timedelta(hours=1))
    assert _runner(config, now).run_site("example").result == "issued"
    first = load_site_state(store, "example").current

    # The operator renews by hand; the CA's window for the new certificate is weeks away.
    front.window = (now + timedelta(days=30), now + timedelta(days=32))
    assert main(["-c", str(config.source), "issue", "example"]) == EXIT_OK
    assert main(["-c", str(config.source), "run"]) == EXIT_OK
    queue = _Queue()
    tick = run_tick(config, store, queue, datetime.now(UTC))
    for body in queue.sent:  # what the issue Lambda would do with each message
        _runner(config, datetime.now(UTC)).run_site(site_of(body))

    assert len(new_orders) == 2
    assert new_orders[1]["replaces"] == first.ari_id
    assert tick.due == ()
    state = load_site_state(store, "example")
    assert state.current.version == 2
    assert front.window[0] <= state.window.renew_at < front.window[1]
