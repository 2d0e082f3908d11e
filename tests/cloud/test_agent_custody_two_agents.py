# ruff: noqa: F811  (test functions take the imported `issuer` fixture)
"""Two agents of one agent-custody site, their certificates due at different times:
each renewed at its own time (its own CA window), none twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.pipeline.schedule import read_markers
from tests.cloud.issuing import record_wire
from tests.cloud.test_agent_custody import (
    _agent_state,
    _register,
    issuer,  # noqa: F401  (the fixture)
)
from tests.cloud.test_agent_custody_renewal_due import _runner, _tick_and_run


def test_two_agents_each_renewed_in_its_own_window_and_never_twice(
    issuer,
    orders,
    pebble,
    monkeypatch,
):
    config, store, _keys, publisher = issuer
    agents = _register(publisher, store, "nas-a", "nas-b")
    a, b = agents["nas-a"], agents["nas-b"]
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=7)
    a.post()
    b.post()
    assert _runner(config, store, publisher, t0).run_site("example").result == "issued"
    first_a, first_b = _agent_state(store, "nas-a"), _agent_state(store, "nas-b")
    seq_a = a.post(current=first_a.current.record.cert_sha256)
    seq_b = b.post(current=first_b.current.record.cert_sha256)
    _tick_and_run(config, store, publisher, t0 + timedelta(minutes=1))
    assert len(orders) == 2

    # nas-a's certificate is due now; nas-b's in ten hours (its window: +3 h .. +4 h).
    pebble.set_renewal_info(
        first_a.current.leaf_pem,
        (now - timedelta(hours=2)).isoformat(),
        (now - timedelta(hours=1)).isoformat(),
    )
    pebble.set_renewal_info(
        first_b.current.leaf_pem,
        (now + timedelta(hours=3)).isoformat(),
        (now + timedelta(hours=4)).isoformat(),
    )
    wire = record_wire(monkeypatch, pebble)
    _result, _queue, outcomes = _tick_and_run(config, store, publisher, now)

    assert [o.result for o in outcomes] == ["issued"], [o.reason for o in outcomes]
    assert [o["payload"].get("replaces") for o in wire.placed()] == [first_a.current.record.ari_id]
    assert _agent_state(store, "nas-a").current.sequence == seq_a
    assert _agent_state(store, "nas-b").current.sequence == first_b.current.sequence
    # The marker now looks at nas-b's renewal time at the latest.
    renew_b = _agent_state(store, "nas-b").window.renew_at
    assert read_markers(store)["example"].next_check <= renew_b

    # Hourly ticks until nas-b is renewed: exactly one order more, for nas-b.
    moment = now
    for _ in range(12):
        moment += timedelta(hours=1)
        _tick_and_run(config, store, publisher, moment)
    assert [o["payload"].get("replaces") for o in wire.placed()] == [
        first_a.current.record.ari_id,
        first_b.current.record.ari_id,
    ]
    assert len(orders) == 4
    assert _agent_state(store, "nas-b").current.sequence == seq_b
