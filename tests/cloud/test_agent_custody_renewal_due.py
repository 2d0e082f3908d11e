# ruff: noqa: F811  (test functions take the imported `issuer` fixture)
"""An agent-custody certificate is renewed in time, end to end. The agent's next CSR
(rekey=false) is posted right after its install; the renewal is ordered with it when the CA's
ARI window (or two thirds of the lifetime) comes, through the tick or `certdrop run`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from cloud.acme.client import AcmeClient
from cloud.cli.exit_codes import EXIT_OK
from cloud.cli.main import main
from cloud.pipeline import parts
from cloud.pipeline.schedule import read_markers
from cloud.pipeline.site_run import Runner
from cloud.pipeline.tick import message_for, run_tick, site_of
from tests.cloud.issuing import record_wire
from tests.cloud.test_agent_custody import (
    _agent_state,
    _register,
    issuer,  # noqa: F401  (the fixture)
)


class _Queue:
    def __init__(self):
        self.sent: list[str] = []

    def send(self, bodies):
        self.sent.extend(bodies)


def _runner(config, store, publisher, now):
    return Runner(
        config, store, parts.keystore(config), publisher, now=lambda: now, rng=random.Random(3)
    )


def _tick_and_run(config, store, publisher, now):
    """The scheduler's tick at `now`, then a run of each site it queued (the issue function)."""
    queue = _Queue()
    result = run_tick(config, store, queue, now)
    outcomes = [
        _runner(config, store, publisher, now).run_site(site)
        for site in (site_of(b) for b in queue.sent)
        if site is not None
    ]
    return result, queue, outcomes


def _first_certificate_and_next_csr(config, store, publisher, nas, t0):
    """v1 issued at t0; the agent installs it and posts its next CSR (rekey=false); the tick
    sees the post and the run holds the CSR for the renewal."""
    nas.post()
    assert _runner(config, store, publisher, t0).run_site("example").result == "issued"
    first = _agent_state(store, nas.agent_id)
    renewal_sequence = nas.post(current=first.current.record.cert_sha256)
    later = t0 + timedelta(minutes=1)
    result, queue, outcomes = _tick_and_run(config, store, publisher, later)
    assert message_for("example") in queue.sent, result.due
    assert [o.result for o in outcomes] == ["not due"], outcomes
    held = _agent_state(store, nas.agent_id)
    assert held.csr_seen and held.refusal is None and held.current.sequence < renewal_sequence
    return first, renewal_sequence


def test_ari_window_reached_the_tick_orders_one_renewal_with_replaces(
    issuer,
    orders,
    pebble,
    monkeypatch,
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=7)  # past Pebble's Retry-After (6 h) by now
    first, renewal_sequence = _first_certificate_and_next_csr(config, store, publisher, nas, t0)

    # The marker: the earliest of the agent's renewal time and its window's next look.
    marker = read_markers(store)["example"]
    window = first.window
    assert window is not None
    assert int(marker.next_check.timestamp()) == int(
        min(window.renew_at, window.next_check).timestamp()
    )
    assert marker.not_after == first.current.record.not_after.replace(microsecond=0)

    # The CA moves the window into the past: renew now.
    pebble.set_renewal_info(
        first.current.leaf_pem,
        (now - timedelta(hours=2)).isoformat(),
        (now - timedelta(hours=1)).isoformat(),
    )
    wire = record_wire(monkeypatch, pebble)
    result, _queue, outcomes = _tick_and_run(config, store, publisher, now)

    assert [d.reason for d in result.due] == ["check due"]
    assert [o.result for o in outcomes] == ["issued"], [o.reason for o in outcomes]
    assert len(orders) == 2
    (placed,) = wire.placed()
    assert placed["payload"]["replaces"] == first.current.record.ari_id
    held = _agent_state(store, "nas-a")
    assert held.current.sequence == renewal_sequence
    # And not again: the next tick has nothing to order.
    _tick_and_run(config, store, publisher, now + timedelta(minutes=5))
    assert len(orders) == 2


def test_ari_window_reached_certdrop_run_orders_one_renewal_with_replaces(
    issuer,
    orders,
    pebble,
    monkeypatch,
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=7)
    first, renewal_sequence = _first_certificate_and_next_csr(config, store, publisher, nas, t0)
    pebble.set_renewal_info(
        first.current.leaf_pem,
        (now - timedelta(hours=2)).isoformat(),
        (now - timedelta(hours=1)).isoformat(),
    )
    wire = record_wire(monkeypatch, pebble)

    assert main(["-c", str(config.source), "run"]) == EXIT_OK  # not forced, the real clock

    assert len(orders) == 2
    (placed,) = wire.placed()
    assert placed["payload"]["replaces"] == first.current.record.ari_id
    assert _agent_state(store, "nas-a").current.sequence == renewal_sequence
    assert main(["-c", str(config.source), "run"]) == EXIT_OK
    assert len(orders) == 2


def test_no_ari_two_thirds_of_the_lifetime_the_tick_orders_one_renewal(
    issuer,
    orders,
    pebble,
    monkeypatch,
):
    config, store, _keys, publisher = issuer
    monkeypatch.setattr(AcmeClient, "renewal_info_url", property(lambda self: None))
    nas = _register(publisher, store, "nas-a")["nas-a"]
    t0 = datetime.now(UTC)
    first, renewal_sequence = _first_certificate_and_next_csr(config, store, publisher, nas, t0)
    record = first.current.record
    assert first.window is None
    renew_at = record.not_before + (record.not_after - record.not_before) * 2 / 3
    marker = read_markers(store)["example"]
    assert marker.next_check <= renew_at

    # Daily looks until two thirds of the lifetime: nothing ordered before it.
    moment = t0 + timedelta(days=1, minutes=1)
    while moment < renew_at - timedelta(minutes=1):
        _tick_and_run(config, store, publisher, moment)
        moment = min(moment + timedelta(days=1), renew_at - timedelta(minutes=1))
    assert len(orders) == 1
    _result, _queue, outcomes = _tick_and_run(
        config, store, publisher, renew_at + timedelta(minutes=1)
    )

    assert [o.result for o in outcomes] == ["issued"], [o.reason for o in outcomes]
    assert len(orders) == 2
    assert _agent_state(store, "nas-a").current.sequence == renewal_sequence
