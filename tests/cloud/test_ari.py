"""ACME Renewal Information against Pebble's own renewalInfo: the CertID, the window (set
through Pebble's management interface), its Retry-After, renewal orders that say what they
replace, and a renewal the CA says was already replaced."""

from __future__ import annotations

import base64
import http.server
import json
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.acme.ari import ari_cert_id, fetch_window
from cloud.acme.client import USER_AGENT
from cloud.cli.exit_codes import EXIT_OK
from cloud.cli.main import main
from cloud.errors import AcmeError
from cloud.fleet.alerts.evaluate import current_alerts
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state, save_site_state
from cloud.pipeline.tick import run_tick, site_of
from lab.issuer_config import bind_config
from lab.ports import wait_until
from tests.cloud.issuing import Wire, order_certificate, record_wire

SIX_HOURS = timedelta(hours=6)  # Pebble's Retry-After on every renewalInfo answer


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


class _NumericWindow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"suggestedWindow": {"start": 1, "end": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_window_whose_times_are_not_strings_is_a_transient_error():
    """Found by the fault-campaign review: a start or end that is a number raised a bare
    AttributeError out of the run instead of the ARI error the caller falls back on."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NumericWindow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(AcmeError) as caught:
            fetch_window(
                f"http://127.0.0.1:{server.server_port}/renewal-info",
                "x.y",
                session=requests.Session(),
                now=datetime.now(UTC),
            )
    finally:
        server.shutdown()
        server.server_close()

    assert caught.value.problem == "ari" and caught.value.transient


# --- against Pebble -------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    init_issuer(parts.keystore(config))
    return config


@pytest.fixture
def wire(monkeypatch, pebble) -> Wire:
    return record_wire(monkeypatch, pebble)


def _runner(config, now):
    return Runner(
        config,
        parts.store(config),
        parts.keystore(config),
        parts.publisher(config),
        now=lambda: now,
        rng=random.Random(3),
    )


def _set_window(pebble, cert_pem: str, start: datetime, end: datetime) -> None:
    pebble.set_renewal_info(cert_pem, start.isoformat(), end.isoformat())


def _pebble_log_line(pebble, needle: str, deadline: float = 10.0) -> str:
    """The first line of Pebble's log containing `needle`, waited for (Pebble logs some events
    from a goroutine after it answered)."""
    log = pebble.workdir / "pebble.log"

    def first() -> str | None:
        return next((line for line in log.read_text().splitlines() if needle in line), None)

    return wait_until(first, deadline, f"a line of Pebble's log with {needle!r}")


def _order_id(order_url: str) -> str:
    return order_url.rstrip("/").rsplit("/", 1)[1]


def test_a_renewal_follows_pebbles_window_and_retry_after_and_sends_replaces(config, pebble, wire):
    now = datetime.now(UTC)
    first = _runner(config, now).run_site("example")
    store = parts.store(config)
    state = load_site_state(store, "example")
    cert = state.current

    assert first.result == "issued"
    assert "replaces" not in wire.orders()[0]["payload"]
    # Pebble's own window for a 90-day certificate: a day either side of two thirds of it.
    assert [g["path"].rsplit("/", 1)[1] for g in wire.renewal_info_gets()] == [cert.ari_id]
    ideal = cert.not_after - (cert.not_after - cert.not_before) / 3
    assert abs(state.window.start - (ideal - timedelta(days=1))) < timedelta(minutes=1)
    assert abs(state.window.end - (ideal + timedelta(days=1))) < timedelta(minutes=1)
    assert state.window.next_check == now + SIX_HOURS  # Pebble's Retry-After

    # The CA suggests a later window; before the Retry-After nothing is asked or ordered.
    _set_window(
        pebble, first.certificate.cert_pem, now + timedelta(days=30), now + timedelta(days=32)
    )
    quiet = _runner(config, now + timedelta(minutes=30)).run_site("example")
    assert quiet.result == "not due"
    assert (len(wire.renewal_info_gets()), len(wire.placed())) == (1, 1)

    # After it, the new window is read and a moment inside it picked; the next look is 6 h on.
    later = now + timedelta(hours=7)
    waiting = _runner(config, later).run_site("example")
    window = load_site_state(store, "example").window
    assert waiting.result == "not due"
    assert len(wire.renewal_info_gets()) == 2
    assert now + timedelta(days=30) <= window.renew_at < now + timedelta(days=32)
    assert window.next_check == later + SIX_HOURS

    # The CA moves the window into the past (say, a revocation is coming): renew at once.
    _set_window(
        pebble, first.certificate.cert_pem, now - timedelta(hours=2), now - timedelta(hours=1)
    )
    latest = now + timedelta(hours=14)
    renewed = _runner(config, latest).run_site("example")

    assert renewed.result == "issued"
    assert renewed.reason == "inside the CA's renewal window (ARI)"
    assert len(wire.renewal_info_gets()) == 4  # the moved window, then the new certificate's
    # The renewal's order names the certificate it replaces. Pebble 2.10.1 looks a serial up
    # by its minimal bytes, not the DER bytes RFC 9773's CertID carries: for a serial whose
    # DER has a leading zero (1 in 256 of its serials) it refuses `replaces`, and certdrop
    # orders again without it. That refusal is Pebble's, so only what was sent is asserted.
    assert [o["payload"].get("replaces") for o in wire.orders()][:2] == [None, cert.ari_id]
    replaced_by = _order_id(renewed.certificate.order_url)
    assert "is a replacement of" in _pebble_log_line(pebble, f'ARI: order "{replaced_by}"')
    assert load_site_state(store, "example").current.version == 2


def test_every_request_to_the_ca_carries_certdrops_user_agent_the_renewal_info_get_too(
    config, wire
):
    now = datetime.now(UTC)
    _runner(config, now).run_site("example")
    _runner(config, now + timedelta(hours=7)).run_site("example")  # the window read again

    assert len(wire.renewal_info_gets()) == 2
    assert {r["user_agent"] for r in wire.sent} == {USER_AGENT}
    assert {r["method"] for r in wire.sent} == {"GET", "HEAD", "POST"}


class _Queue:
    def __init__(self):
        self.sent = []

    def send(self, bodies):
        self.sent.extend(bodies)


def test_a_manual_reissue_replaces_and_leaves_run_and_tick_nothing_to_order(config, pebble, wire):
    store = parts.store(config)
    now = datetime.now(UTC)
    # Issued seven hours "ago", so the CA's answer is due to be read again now.
    first = _runner(config, now - timedelta(hours=7)).run_site("example")
    # The CA wants the first certificate renewed at once.
    _set_window(
        pebble, first.certificate.cert_pem, now - timedelta(hours=2), now - timedelta(hours=1)
    )

    # The operator renews by hand; the CA's window for the new certificate is weeks away.
    assert main(["-c", str(config.source), "issue", "example"]) == EXIT_OK
    assert main(["-c", str(config.source), "run"]) == EXIT_OK
    queue = _Queue()
    tick = run_tick(config, store, queue, datetime.now(UTC))
    for body in queue.sent:  # what the issue Lambda would do with each message
        _runner(config, datetime.now(UTC)).run_site(site_of(body))

    assert len(wire.placed()) == 2
    # Sent with `replaces` (Pebble may refuse it for 1 serial in 256; see the test above).
    assert wire.orders()[1]["payload"]["replaces"] == first.certificate.ari_id
    assert tick.due == ()
    state = load_site_state(store, "example")
    assert state.current.version == 2
    assert state.window.renew_at > now + timedelta(days=50)  # Pebble's own, for the new one


def test_a_certificate_replaced_elsewhere_is_renewed_once_without_replaces_and_alerted(
    config, pebble, wire
):
    store = parts.store(config)
    now = datetime.now(UTC)
    first = _runner(config, now).run_site("example")
    old = load_site_state(store, "example").current
    # Someone with the same ACME account renews the certificate outside certdrop's record.
    elsewhere = order_certificate(config, "example", replaces=old.ari_id)
    _pebble_log_line(pebble, f"Order {_order_id(elsewhere.order_url)} has been marked as replaced")
    _set_window(
        pebble, first.certificate.cert_pem, now - timedelta(hours=2), now - timedelta(hours=1)
    )
    before = len(wire.orders())

    renewed = _runner(config, now + timedelta(hours=7)).run_site("example")
    again = _runner(config, now + timedelta(hours=7, minutes=1)).run_site("example")

    assert renewed.result == "issued", renewed.reason
    # One refused order with `replaces` (409 alreadyReplaced), then exactly one without.
    tried = [(o["status"], o["payload"].get("replaces")) for o in wire.orders()[before:]]
    assert tried == [(409, old.ari_id), (201, None)]
    assert again.result == "not due"
    state = load_site_state(store, "example")
    assert state.current.version == 2
    assert state.replaced_elsewhere.cert_id == old.ari_id
    assert "already has a replacement" in state.replaced_elsewhere.detail
    assert state.replaced_elsewhere_count == 1
    alerts = [a for a in current_alerts(config, store, now) if a.kind == "replaced_elsewhere"]
    assert [(a.site, a.severity, a.details["count"]) for a in alerts] == [("example", "warning", 1)]
    assert old.ari_id in alerts[0].message
    assert not [a for a in current_alerts(config, store, now + timedelta(days=8)) if a.site]


def test_a_recorded_replacement_order_that_cannot_be_finished_is_ordered_again_without_alarm(
    config, pebble, wire
):
    store = parts.store(config)
    now = datetime.now(UTC)
    first = _runner(config, now).run_site("example")
    old = load_site_state(store, "example").current
    # A run placed the renewal and died after the CA issued it, its key gone with it: the
    # state still records the order, which can no longer be finished.
    died = order_certificate(config, "example", replaces=old.ari_id)
    _pebble_log_line(pebble, f"Order {_order_id(died.order_url)} has been marked as replaced")
    recorded = load_site_state(store, "example").with_order(died.order_url, now)
    save_site_state(store, recorded)
    _set_window(
        pebble, first.certificate.cert_pem, now - timedelta(hours=2), now - timedelta(hours=1)
    )
    before = len(wire.orders())

    renewed = _runner(config, now + timedelta(hours=7)).run_site("example")

    assert renewed.result == "issued", renewed.reason
    tried = [(o["status"], o["payload"].get("replaces")) for o in wire.orders()[before:]]
    assert tried == [(409, old.ari_id), (201, None)]
    state = load_site_state(store, "example")
    assert (state.replaced_elsewhere, state.replaced_elsewhere_count) == (None, 0)
    assert state.order_url is None
    assert not [a for a in current_alerts(config, store, now) if a.kind == "replaced_elsewhere"]
    assert state.current.version == 2


def test_the_order_placed_after_already_replaced_is_resumed_after_a_failure_not_placed_again(
    config, pebble, wire, tmp_path
):
    store = parts.store(config)
    now = datetime.now(UTC)
    first = _runner(config, now).run_site("example")
    old = load_site_state(store, "example").current
    elsewhere = order_certificate(config, "example", replaces=old.ari_id)
    _pebble_log_line(pebble, f"Order {_order_id(elsewhere.order_url)} has been marked as replaced")
    _set_window(
        pebble, first.certificate.cert_pem, now - timedelta(hours=2), now - timedelta(hours=1)
    )
    tsig = tmp_path / "tsig"
    secret = tsig.read_text()
    tsig.write_text("AAAA" + secret[4:])  # the DNS update is refused: the run fails after ordering
    before = len(wire.orders())

    failed = _runner(config, now + timedelta(hours=7)).run_site("example")
    recorded = load_site_state(store, "example")
    tsig.write_text(secret)
    resumed = _runner(config, now + timedelta(hours=8)).run_site("example")

    assert failed.result == "failed"
    assert recorded.order_url is not None
    tried = [(o["status"], o["payload"].get("replaces")) for o in wire.orders()[before:]]
    assert tried == [(409, old.ari_id), (201, None)]  # and none after the failure
    assert resumed.result == "issued", resumed.reason
    state = load_site_state(store, "example")
    assert (state.current.version, state.replaced_elsewhere_count) == (2, 1)


def test_a_renewal_whose_replaces_the_ca_cannot_take_is_ordered_without_it(config, pebble, wire):
    store = parts.store(config)
    first = _runner(config, datetime.now(UTC)).run_site("example")
    state = load_site_state(store, "example")
    # The same certificate's id, its serial with a leading zero byte (as DER writes a serial
    # whose top bit is set): Pebble keys certificates by the serial's minimal bytes, finds none
    # and fails the order. Let's Encrypt takes either; a renewal must not depend on it.
    key_id, _, serial = first.certificate.ari_id.partition(".")
    padded = base64.urlsafe_b64encode(b"\0" + _b64url_bytes(serial)).rstrip(b"=").decode()
    refused = f"{key_id}.{padded}"
    save_site_state(store, replace(state, current=replace(state.current, ari_id=refused)))
    before = len(wire.orders())

    assert main(["-c", str(config.source), "issue", "example"]) == EXIT_OK

    tried = [(o["status"], o["payload"].get("replaces")) for o in wire.orders()[before:]]
    assert tried[-1] == (201, None)
    assert tried[:-1] and all(status >= 400 and sent == refused for status, sent in tried[:-1])
    assert load_site_state(store, "example").current.version == 2


def _b64url_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_order_placed_again_without_replaces_takes_its_tokens(
    tmp_path, pebble, bind_auth, wire
):
    # One certificate per exact set of names a week; ARI renewals exempt (as Let's Encrypt).
    limits = (
        "limits = { certificates_per_exact_set = { count = 1, hours = 168 },"
        " ari_renewals_exempt = true }"
    )
    config = bind_config(tmp_path, pebble, bind_auth, ca_extra=limits)
    init_issuer(parts.keystore(config))
    store = parts.store(config)
    now = datetime.now(UTC)
    first = _runner(config, now).run_site("example")
    _set_window(
        pebble, first.certificate.cert_pem, now - timedelta(hours=2), now - timedelta(hours=1)
    )
    state = load_site_state(store, "example")
    key_id, _, serial = state.current.ari_id.partition(".")
    padded = base64.urlsafe_b64encode(b"\0" + _b64url_bytes(serial)).rstrip(b"=").decode()
    save_site_state(
        store, replace(state, current=replace(state.current, ari_id=f"{key_id}.{padded}"))
    )

    renewed = _runner(config, now + timedelta(hours=7)).run_site("example")  # due: the window

    # The renewal's own order was exempt; the one without `replaces` is not, and finds no token.
    assert renewed.result != "issued", renewed.reason
    assert [o["status"] for o in wire.placed()] == [201]
    assert load_site_state(store, "example").current.version == 1
