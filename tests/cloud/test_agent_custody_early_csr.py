# ruff: noqa: F811  (test functions take the imported `issuer` fixture)
"""The agent's next CSR is posted right after its install, two months before the
renewal; it is re-posted (the same bytes) on a new index meanwhile. It is still accepted when
the CA's window comes, and answered once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.custody.agent_side import csr_statement_key
from tests.cloud.issuing import record_wire
from tests.cloud.test_agent_custody import (
    _agent_state,
    _register,
    issuer,  # noqa: F401  (the fixture)
)
from tests.cloud.test_agent_custody_renewal_due import (
    _first_certificate_and_next_csr,
    _tick_and_run,
)


def test_a_csr_posted_two_months_before_the_window_is_used_for_the_renewal(
    issuer,
    orders,
    pebble,
    monkeypatch,
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    t0 = datetime.now(UTC)
    first, renewal_sequence = _first_certificate_and_next_csr(config, store, publisher, nas, t0)
    key = csr_statement_key("nas-a", "example")
    statement = store.get(key).body
    wire = record_wire(monkeypatch, pebble)

    # Daily ticks for two months; the agent posts the same statement again on day 30.
    issued_on = []
    for day in range(1, 63):
        if day == 30:
            store.put(key, statement)
        _r, _q, outcomes = _tick_and_run(config, store, publisher, t0 + timedelta(days=day))
        issued_on += [day for o in outcomes if o.result == "issued"]
    window = first.window  # Pebble's: a day either side of two thirds of 90 days
    assert window.start - t0 < timedelta(days=60) < window.end - t0
    assert len(issued_on) == 1 and 59 <= issued_on[0] <= 61, issued_on

    held = _agent_state(store, "nas-a")
    assert held.current.sequence == renewal_sequence and held.refusal is None
    assert [o["payload"].get("replaces") for o in wire.placed()] == [first.current.record.ari_id]
    assert len(orders) == 2
