"""A site's next version is chosen near the highest one the issuer vouched for
(cloud.publish.versions): the reservations under `state/versions/<site>/` and the site state's
current version are unsigned.

The first three tests are from an independent review and failed before the fix: a store writer
planted a reservation (or a current version) just under MAX_VERSION, the next genuine issuance was
signed into the agent's index as MAX_VERSION, the agent's ratchet moved there, and every later
run got a certificate from the CA, then crashed (a new order each time, no backoff). Now such
numbers are passed over and the site goes on from its genuine top. The attacker writes to the
store; they hold no issuer key unless a test says so.
"""

from __future__ import annotations

import json
from dataclasses import replace

from cloud.cli.exit_codes import EXIT_OK
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from cloud.publish.versions import VERSION_GAP
from nas_agent import cycle, store_layout
from nas_agent.bundle import parse_index
from nas_agent.bundle.plaintext import MAX_VERSION
from tests.cloud import test_agent_custody, test_index_trust
from tests.cloud.test_escrow_trust import SITE, _save_state, _served_sha256, _state
from tests.cloud.test_index_trust import Fleet, _config_of

fleet = test_index_trust.fleet  # the fixture: nas-1 installed version 1 of SITE
issuer = test_agent_custody.issuer  # an agent-custody site, no agent yet


def _reserve(fleet: Fleet, version: int) -> None:
    fleet.store.put(store_layout.version_reservation(SITE, version), b"{}")


def _issued_and_installed(fleet: Fleet) -> int:
    """`certdrop issue` then the agent's run: the version the index names, once installed."""
    issued = fleet.certdrop("issue", SITE)
    assert issued.returncode == EXIT_OK, issued.stderr
    assert "Traceback" not in issued.stderr, issued.stderr[-3000:]
    (entry,) = parse_index(fleet.index_bytes()).entries
    installed = fleet.agent()
    assert installed.returncode == cycle.EXIT_OK, installed.stderr
    assert _served_sha256(fleet) == entry.cert_sha256
    return entry.version


def test_a_planted_reservation_does_not_make_the_issuer_sign_a_huge_version(fleet):
    _reserve(fleet, MAX_VERSION - 1)

    assert _issued_and_installed(fleet) == 2
    assert _issued_and_installed(fleet) == 3  # and it stays healed


def test_a_planted_current_version_does_not_make_the_issuer_sign_a_huge_version(fleet):
    state = _state(fleet)
    state["current"]["version"] = MAX_VERSION - 1
    _save_state(fleet, state)

    assert _issued_and_installed(fleet) == 2


def test_a_planted_top_reservation_does_not_crash_every_run(fleet):
    """With MAX_VERSION itself reserved, the next version was out of range."""
    _reserve(fleet, MAX_VERSION)

    assert _issued_and_installed(fleet) == 2
    assert _issued_and_installed(fleet) == 3


def test_a_version_a_failed_attempt_reserved_is_skipped_over(fleet):
    """A run reserves its version before the statement vouching for it: an attempt failing in
    between leaves its reservation unused. It is the issuer's, never given to another
    certificate, and so is a run of them within VERSION_GAP of the top."""
    for version in range(2, 2 + VERSION_GAP):
        _reserve(fleet, version)

    assert _issued_and_installed(fleet) == 2 + VERSION_GAP


def test_taken_numbers_beyond_the_gap_are_stepped_over_never_reused(fleet):
    """A run of taken numbers from the start on reaching past VERSION_GAP (those a removed site
    kept when its statements went, or planted, a write each) is walked over, never reused: one
    version names one certificate."""
    for version in range(2, 2 * VERSION_GAP):
        _reserve(fleet, version)

    assert _issued_and_installed(fleet) == 2 * VERSION_GAP


def test_no_version_is_left_past_max_version_and_nothing_is_ordered(fleet, orders):
    """A statement the issuer did sign for MAX_VERSION (before versions were bounded): the run
    fails with a stable code before any order, and is backed off like any failure."""
    config = _config_of(fleet)
    publisher = parts.publisher(config, fleet.store)
    current = load_site_state(fleet.store, SITE).current
    assert current is not None
    plaintext = publisher.open_escrow(SITE, current)
    publisher.escrow_statements.write(replace(plaintext, version=MAX_VERSION))
    runner = Runner(config, fleet.store, parts.keystore(config), publisher)

    outcome = runner.run_site(SITE, force=True)

    assert outcome.result == "failed", outcome.reason
    assert outcome.error is not None and outcome.error.code == "version.exhausted"
    assert orders == []
    state = load_site_state(fleet.store, SITE)
    assert state.ordering_since is None and state.next_attempt is not None


def test_an_agent_custody_site_passes_over_a_planted_version_too(issuer, orders):
    config, store, _keys, publisher = issuer
    nas = test_agent_custody._register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    assert test_agent_custody._run(config, store, publisher).result == "issued"
    first = test_agent_custody._entry(store, "nas-a").version
    store.put(store_layout.version_reservation("example", MAX_VERSION - 1), b"{}")
    state = json.loads(store.get(store_layout.site_state("example")).body)
    state["agents"]["nas-a"]["current"]["record"]["version"] = MAX_VERSION - 1
    store.put(store_layout.site_state("example"), json.dumps(state).encode())
    nas.post(rekey=True)

    outcome = test_agent_custody._run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 2
    assert test_agent_custody._entry(store, "nas-a").version == first + 1
