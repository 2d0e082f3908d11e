# ruff: noqa: F811  (the test takes the imported `issuer` fixture)
"""An agent-custody leaf the unsigned site state names for another agent than the one it was
ordered for is never delivered: it is refused as escrow.forged and the pending record dropped.
From an independent review: a bare ValueError ended every run of the site before the fix."""

from __future__ import annotations

import json

from cloud.pipeline.site_state import load_site_state
from nas_agent import store_layout
from tests.cloud.test_agent_custody import (
    _register,
    _run,
    issuer,  # noqa: F401  (the fixture)
)


def test_another_agents_pending_leaf_is_dropped_not_a_crash_of_every_run(issuer):
    config, store, _keys, publisher = issuer
    agents = _register(publisher, store, "nas-a", "nas-b")
    agents["nas-a"].post()
    agents["nas-b"].post()
    assert _run(config, store, publisher).result == "issued"

    # The store writer: nas-a's (genuine, signed) certificate record as nas-b's pending one.
    key = store_layout.site_state("example")
    state = json.loads(store.get(key).body)
    state["agents"]["nas-b"]["pending"] = state["agents"]["nas-a"]["current"]
    store.put(key, json.dumps(state).encode())

    outcome = _run(config, store, publisher)  # raised ValueError here before

    assert outcome.result != "failed", outcome.reason
    assert load_site_state(store, "example").agents["nas-b"].pending is None
