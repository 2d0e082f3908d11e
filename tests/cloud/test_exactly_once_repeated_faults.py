"""Exactly-once under repeated faults (DESIGN §9), against real Pebble and BIND: found by an
independent review, each test failed before its fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.acme.client import AcmeClient
from cloud.errors import AcmeError
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from lab.issuer_config import bind_config
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys
from tests.cloud.issuing import enroll_agents


@pytest.fixture
def fleet(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    store, _, _ = enroll_agents(config)
    return config, store


def _run(config, store, *, force=False, hours_later=0.0):
    later = datetime.now(UTC) + timedelta(hours=hours_later)
    runner = Runner(
        config,
        store,
        parts.keystore(config),
        parts.publisher(config, store),
        now=lambda: later,
        sleep=lambda _s: None,
    )
    return runner.run_site("example", force=force)


def test_a_finalized_order_survives_two_failed_downloads_in_a_row(fleet, pebble, monkeypatch):
    """Run A finalizes and loses the download (a CA 5xx); run B resumes that order with the kept
    key and loses the download again; run C must finish the same order. The CA issued one
    certificate: no second order may be placed for it."""
    config, store = fleet
    original = AcmeClient.finalize
    calls = {"n": 0}

    def flaky_finalize(self, orderr, deadline):
        calls["n"] += 1
        if calls["n"] == 1:  # run A: the CA finalizes and issues, the answer is lost
            original(self, orderr, deadline)
        if calls["n"] <= 2:  # run A, then run B: download fails
            raise AcmeError("serverInternal", "injected: download failed", transient=True)
        return original(self, orderr, deadline)

    monkeypatch.setattr(AcmeClient, "finalize", flaky_finalize)
    orders_before = len(pebble.order_ids())

    a = _run(config, store)
    assert a.result == "failed"
    state = load_site_state(store, "example")
    assert state.order_url is not None and state.order_key is not None  # A kept the key

    b = _run(config, store, hours_later=1)
    assert b.result == "failed"
    after_b = load_site_state(store, "example")

    c = _run(config, store, hours_later=3)
    assert c.result == "issued", c.reason
    orders = len(pebble.order_ids()) - orders_before
    assert orders == 1, (
        f"{orders} orders for one certificate: the issued one was thrown away "
        f"(order_key after run B: {after_b.order_key!r})"
    )


class _Killed(BaseException):
    """The process dying at this point (what SIGKILL would do, without leaving the test)."""


class _KillAfterPending:
    """The real store; the process dies at the first write after the state recorded a pending
    certificate (version reserved, escrow written, state saved as pending)."""

    def __init__(self, store):
        self._store = store
        self.armed = False

    def put(self, key, body, **kwargs):
        if self.armed:
            raise _Killed(key)
        etag = self._store.put(key, body, **kwargs)
        if key.startswith("state/sites/") and b'"pending": {' in body:
            self.armed = True
        return etag

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_forced_run_killed_after_recording_its_certificate_is_finished_by_the_schedule(
    fleet, pebble
):
    """`certdrop issue` (a forced run) dies once the certificate is recorded as pending. README:
    "A run that dies from there on is finished from escrow by the next run"; DESIGN §9: "the
    status tells the truth about every pending piece". The scheduled runs (tick, `certdrop run`)
    pick sites from the schedule markers: the pending certificate must make the site due, and
    `certdrop status` must not call the site healthy meanwhile."""
    from cloud.fleet.status import collect
    from cloud.pipeline.schedule import due_sites, read_journalled, read_markers

    config, store = fleet
    assert _run(config, store).result == "issued"  # v1, next check weeks away
    killing = _KillAfterPending(store)
    with pytest.raises(_Killed):
        _run(config, killing, force=True)
    state = load_site_state(store, "example")
    assert state.pending is not None and state.pending.version == 2
    assert state.current.version == 1

    an_hour_later = datetime.now(UTC) + timedelta(hours=1)
    status = collect(config, store, an_hour_later).site("example")
    due = due_sites(config.sites, read_markers(store), an_hour_later, read_journalled(store))
    assert_due = [d.site for d in due] == ["example"]
    assert status.health != "healthy", (
        f"status says healthy with version {state.pending.version} recorded and unpublished "
        f"(and the schedule finishes it: {assert_due})"
    )
    assert [d.site for d in due] == ["example"], (
        "the recorded certificate is not finished by any scheduled run: "
        f"next check {read_markers(store)['example'].next_check:%Y-%m-%d}"
    )


def test_a_ca_outage_does_not_block_redelivery_from_escrow_nor_fail_a_site_not_due(
    fleet, pebble, monkeypatch
):
    """One agent's prefix could not be written: its delivery is pending, "retried by every run
    from escrow — never a reason to issue again" (README). Redelivery needs no CA. But once the
    ARI window is to be read again, every run first connects to the CA; with the CA unreachable
    the run fails before redelivering (and records an ACME failure with a backoff for a site
    that is not due, alerting `issuance_failed`). `_with_window`'s own docstring: "on a failed
    fetch the old window stays and the next check is in an hour"."""
    from cloud.errors import StoreError
    from lab.faults import FailingStore

    config, store = fleet
    publisher = parts.publisher(config, store)
    publisher.registry.add(
        enrollment_of(generate_agent_keys("nas-b")), ("example",), datetime.now(UTC)
    )
    broken = FailingStore(
        store, lambda key, _b: key.startswith("agents/nas-b/"), lambda k: StoreError(k, "down")
    )
    first = _run(config, broken)
    assert first.result == "issued" and first.undelivered == ("nas-b",)
    window = load_site_state(store, "example").window
    assert window is not None  # Pebble offers ARI
    hours = (window.next_check - datetime.now(UTC)).total_seconds() / 3600 + 0.1

    def ca_down(self, **_kwargs):
        raise AcmeError("connection", "injected: the CA cannot be reached", transient=True)

    monkeypatch.setattr(AcmeClient, "connect", ca_down)
    later = _run(config, store, hours_later=hours)
    state = load_site_state(store, "example")
    assert later.undelivered == () and state.undelivered == {}, (
        f"nas-b still undelivered while the CA is down: {later.result}: {later.reason}"
    )
    assert later.result == "not due" and state.failures == 0, (later.result, later.reason)
