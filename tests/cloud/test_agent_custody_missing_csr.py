# ruff: noqa: F811  (test functions take the imported `issuer` fixture)
"""An agent whose renewal is due and whose next CSR is missing (never posted) or refused is
visible in `certdrop status` and the alerts before its certificate expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.status import collect
from cloud.fleet.status_table import render
from tests.cloud.test_agent_custody import (
    _agent_state,
    _register,
    issuer,  # noqa: F401  (the fixture)
)
from tests.cloud.test_agent_custody_renewal_due import _runner, _tick_and_run


def _due_without_csr(config, store, publisher, pebble, now):
    """nas-a and nas-b hold v1/v2; nas-b posted its next CSR, nas-a did not; the CA wants both
    renewed now. The tick runs the site: nas-b is renewed, nas-a waits for its CSR."""
    agents = _register(publisher, store, "nas-a", "nas-b")
    t0 = now - timedelta(hours=7)
    for nas in agents.values():
        nas.post()
    assert _runner(config, store, publisher, t0).run_site("example").result == "issued"
    first = {a: _agent_state(store, a) for a in agents}
    agents["nas-b"].post(current=first["nas-b"].current.record.cert_sha256)
    for held in first.values():
        pebble.set_renewal_info(
            held.current.leaf_pem,
            (now - timedelta(hours=2)).isoformat(),
            (now - timedelta(hours=1)).isoformat(),
        )
    _result, _queue, outcomes = _tick_and_run(config, store, publisher, now)
    assert [o.result for o in outcomes] == ["issued"], [o.reason for o in outcomes]
    return agents, first


def test_status_says_which_agent_is_due_and_waits_for_its_csr(
    issuer,
    orders,
    pebble,
):
    config, store, _keys, publisher = issuer
    now = datetime.now(UTC)
    _due_without_csr(config, store, publisher, pebble, now)

    status = collect(config, store, now)
    site = status.site("example")
    shown = site.agents["nas-a"]
    text = render(status)

    # The renewal of nas-a's certificate is due and cannot go: its CSR is missing.
    assert shown.state == "waiting for CSR", (shown, text)
    assert site.health != "healthy", text


def test_expiring_alert_names_the_agent_whose_certificate_expires(
    issuer,
    orders,
    pebble,
):
    config, store, _keys, publisher = issuer
    now = datetime.now(UTC)
    _agents, first = _due_without_csr(config, store, publisher, pebble, now)
    expiring_v = first["nas-a"].current.record.version
    late = first["nas-a"].current.record.not_after - timedelta(days=10)  # nas-a's CSR never came

    alerts = evaluate(collect(config, store, late), late)

    (expiring,) = [a for a in alerts if a.kind == "expiring"]
    text = f"{expiring.message} | cause={expiring.cause} | {expiring.details}"
    assert "nas-a" in text, text
    assert f"version {expiring_v}" == expiring.cause, text


def test_a_refused_renewal_csr_fires_csr_refused_and_the_expiring_alert_comes_later(
    issuer,
    orders,
    pebble,
):
    config, store, _keys, publisher = issuer
    now = datetime.now(UTC)
    agents, first = _due_without_csr(config, store, publisher, pebble, now)
    agents["nas-a"].post(current="ab" * 32)  # names a certificate never delivered
    _tick_and_run(config, store, publisher, now + timedelta(minutes=1))
    assert _agent_state(store, "nas-a").refusal.code == "csr.current_cert_mismatch"

    alerts = evaluate(collect(config, store, now), now)
    assert [a.details["refused"] for a in alerts if a.kind == "csr_refused"] == [
        {"nas-a": "csr.current_cert_mismatch"}
    ]
    late = first["nas-a"].current.record.not_after - timedelta(days=10)
    assert any(a.kind == "expiring" for a in evaluate(collect(config, store, late), late))


def test_the_late_csr_is_ordered_at_the_next_tick(issuer, orders, pebble):
    config, store, _keys, publisher = issuer
    now = datetime.now(UTC)
    agents, first = _due_without_csr(config, store, publisher, pebble, now)
    sequence = agents["nas-a"].post(current=first["nas-a"].current.record.cert_sha256)

    result, _queue, outcomes = _tick_and_run(config, store, publisher, now + timedelta(minutes=1))

    assert [o.result for o in outcomes] == ["issued"], ([d.reason for d in result.due], outcomes)
    assert _agent_state(store, "nas-a").current.sequence == sequence
    assert len(orders) == 4


def test_right_after_a_renewal_status_does_not_claim_a_csr_is_held(
    issuer,
    orders,
    pebble,
):
    """nas-b's CSR was just used for its renewal; it has posted no next one yet."""
    config, store, _keys, publisher = issuer
    now = datetime.now(UTC)
    _due_without_csr(config, store, publisher, pebble, now)

    shown = collect(config, store, now).site("example").agents["nas-b"]

    assert _agent_state(store, "nas-b").current.record.version == 3
    assert shown.state != "CSR held for renewal", shown
