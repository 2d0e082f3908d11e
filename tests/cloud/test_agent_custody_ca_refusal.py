# ruff: noqa: F811  (test functions take the imported `issuer` fixture)
"""One agent's CSR that the CA refuses at finalize (a key the CA will not certify:
here the key of an ACME account, which Pebble, like RFC 8555 11.1, refuses with badCSR; at
Let's Encrypt also a blocked or weak key, badPublicKey) passes every issuer-side check: it is
that agent's refusal (csr.ca_refused), never a failure keeping the site's other agents from
being renewed, and the agent's next CSR is ordered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import josepy as jose
from acme import client, messages
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.pipeline.site_state import load_site_state
from nas_agent.enrollment import enrollment_of
from tests.cloud.test_agent_custody import (
    Nas,
    _agent_state,
    _register,
    issuer,  # noqa: F401  (the fixture)
)
from tests.cloud.test_agent_custody_renewal_due import _runner, _tick_and_run


def _account_key_at_the_ca(pebble) -> ec.EllipticCurvePrivateKey:
    """A P-256 key registered as an ACME account at Pebble (anyone can register one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    net = client.ClientNetwork(jose.JWKEC(key=key), alg=jose.ES256, verify_ssl=pebble.ca_bundle)
    directory = client.ClientV2.get_directory(pebble.directory_url, net)
    acme = client.ClientV2(directory, net)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    return key


def test_a_csr_the_ca_refuses_for_one_agent_does_not_stop_the_others_renewals(
    issuer,
    orders,
    pebble,
):
    config, store, _keys, publisher = issuer
    nas_a = _register(publisher, store, "nas-a")["nas-a"]
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=7)
    nas_a.post()
    assert _runner(config, store, publisher, t0).run_site("example").result == "issued"
    first = _agent_state(store, "nas-a")
    renewal = nas_a.post(current=first.current.record.cert_sha256)  # nas-a's next CSR
    _tick_and_run(config, store, publisher, t0 + timedelta(minutes=1))

    # A second NAS joins the site; its CSR passes the issuer's checks but not the CA's.
    other = Nas(store, "nas-new")
    publisher.registry.add(enrollment_of(other.keys), ("example",), t0 + timedelta(minutes=2))
    other.site_key = _account_key_at_the_ca(pebble)
    other.post(new_key=False)
    # nas-a's certificate is to be renewed now (the CA's window).
    pebble.set_renewal_info(
        first.current.leaf_pem,
        (now - timedelta(hours=2)).isoformat(),
        (now - timedelta(hours=1)).isoformat(),
    )

    # Hourly ticks for two days: nas-a's renewal is ordered at one of them.
    reasons = []
    for hour in range(48):
        _result, _queue, outcomes = _tick_and_run(
            config, store, publisher, now + timedelta(hours=hour)
        )
        reasons += [f"+{hour}h {o.result}: {o.reason}" for o in outcomes]
    # And a day before nas-a's certificate expires.
    last_day = first.current.record.not_after - timedelta(days=1)
    _result, _queue, outcomes = _tick_and_run(config, store, publisher, last_day)
    reasons += [f"expiry-1d {o.result}: {o.reason}" for o in outcomes]
    state = load_site_state(store, "example")
    held = state.agents["nas-a"]

    until = held.current.record.not_after
    error = state.last_error.message if state.last_error else None
    assert held.current.sequence == renewal, (
        f"nas-a not renewed, a day before expiry (certificate until {until:%Y-%m-%d}); "
        f"site failures={state.failures}, last error={error}; orders placed: {len(orders)}; "
        f"runs: {reasons[:3]} ... {reasons[-2:]}"
    )


def test_an_agent_whose_csr_the_ca_refused_gets_a_certificate_for_its_next_csr(
    issuer,
    orders,
    pebble,
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-new")["nas-new"]
    now = datetime.now(UTC)
    nas.site_key = _account_key_at_the_ca(pebble)
    nas.post(new_key=False)
    refused = _runner(config, store, publisher, now).run_site("example")
    assert refused.result != "failed", refused.reason  # one agent's CSR, not the site's failure
    assert _agent_state(store, "nas-new").refusal.code == "csr.ca_refused"

    # The operator runs `certdrop-agent rekey example`: a fresh key, a CSR the CA takes.
    sequence = nas.post(rekey=True)
    reasons = []
    for hour in range(1, 25):
        _result, _queue, outcomes = _tick_and_run(
            config, store, publisher, now + timedelta(hours=hour)
        )
        reasons += [f"+{hour}h {o.result}: {o.reason}" for o in outcomes]

    held = _agent_state(store, "nas-new")
    assert held.current is not None and held.current.sequence == sequence, (
        f"order still journalled for CSR {held.order and held.order.sequence}; {reasons[-2:]}"
    )
