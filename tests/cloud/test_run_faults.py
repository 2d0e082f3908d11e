"""Runs under faults the other fault suites do not inject, against real Pebble and BIND: a
throttled order lookup is no reason to order again, a recorded certificate or a pending
delivery that expired before a run came does not block the site, an absurd Retry-After is the
CA's error, and one site's unreadable state fails that site only (DESIGN section 9, README
"Renewal").

From an independent fault-campaign review: each test failed before its fix; its docstring names
the invariant and what happened instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from cloud.acme.client import AcmeClient
from cloud.acme.http_environment import EnvironmentOnce
from cloud.errors import AcmeError
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys
from tests.cloud import test_exactly_once_repeated_faults
from tests.cloud.issuing import txt_values
from tests.cloud.test_exactly_once_repeated_faults import _KillAfterPending, _Killed, _run

fleet = test_exactly_once_repeated_faults.fleet  # the fixture: the site and agent nas-a


def _fake_response(url: str, status: int, body: str, content_type: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers["Content-Type"] = content_type
    response.url = url
    response.encoding = "utf-8"
    return response


def test_a_throttled_order_lookup_on_resume_does_not_throw_away_the_issued_certificate(
    fleet, pebble, bind_auth, monkeypatch
):
    """README "Order": "a run killed after ordering is resumed, never re-ordered"; DESIGN §9:
    "never orders twice for one certificate"; the certificate is recorded before anyone sees it
    (never lose a certificate the CA issued).

    Run A finalizes its order (Pebble issues the certificate, the key is kept beside the order)
    and loses the download. Run B looks the order up and the CA (or a proxy in front of it)
    answers that POST-as-GET with HTTP 429 Too Many Requests without a problem document — a
    throttle, which says nothing about the order. `AcmeClient.resume_order` treats every
    non-transient error as "unknown to the CA" (translate() makes a bare 429 a terminal
    `clientError`) and run B places a second order with a new key: Pebble issues a second
    certificate and the first one is thrown away. Only a 404 means the order is gone."""
    config, store = fleet
    original_finalize = AcmeClient.finalize
    calls = {"finalize": 0}

    def finalize_then_lose_download(self, orderr, deadline):
        calls["finalize"] += 1
        if calls["finalize"] == 1:
            original_finalize(self, orderr, deadline)
            raise AcmeError("serverInternal", "injected: download failed", transient=True)
        return original_finalize(self, orderr, deadline)

    monkeypatch.setattr(AcmeClient, "finalize", finalize_then_lose_download)
    orders_before = len(pebble.order_ids())
    issued_before = len(pebble.issued_serials())

    assert _run(config, store).result == "failed"
    state = load_site_state(store, "example")
    assert state.order_url is not None and state.order_key is not None
    assert len(pebble.issued_serials()) - issued_before == 1  # the CA issued it

    order_url = state.order_url
    throttled = {"n": 0}
    original_request = requests.Session.request

    def throttle_order_lookup(self, method, url, *args, **kwargs):
        if url == order_url and throttled["n"] == 0:
            throttled["n"] += 1
            return _fake_response(url, 429, "Too Many Requests", "text/plain")
        return original_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(EnvironmentOnce, "request", throttle_order_lookup, raising=False)
    _run(config, store, hours_later=1)
    assert throttled["n"] == 1
    monkeypatch.undo()
    for hours in (3, 8):
        _run(config, store, hours_later=hours)

    state = load_site_state(store, "example")
    assert state.current is not None and state.order_url is None
    orders = len(pebble.order_ids()) - orders_before
    issued = len(pebble.issued_serials()) - issued_before
    assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()
    assert (orders, issued) == (1, 1), (
        f"{orders} orders and {issued} certificates for one certificate: a throttled lookup of "
        "the recorded order was taken for an order the CA no longer has"
    )


def _run_at(config, store, moment, *, force=False, site="example"):
    """A run whose clock (the runner's and the publisher's) reads `moment`."""
    publisher = parts.publisher(config, store)
    publisher.now = lambda: moment
    runner = Runner(
        config, store, parts.keystore(config), publisher, now=lambda: moment, sleep=lambda _s: None
    )
    return runner.run_site(site, force=force)


def test_a_recorded_issuance_that_expired_before_the_next_run_does_not_block_the_site_forever(
    fleet, pebble
):
    """README "Certificate recorded before anyone sees it": "A run that dies from there on is
    finished from escrow by the next run"; the brief's invariant: state always converges on the
    next run, and `certdrop issue` (a forced run) gets a site going again.

    A run dies right after recording its certificate as pending; no run comes until that
    certificate has expired (a 6-day `shortlived` certificate and a week without runs). Every
    run after that — scheduled or forced — starts by finishing the pending record, whose escrow
    copy `open_escrow(unexpired=True)` refuses with `escrow.unavailable` ("its certificate has
    expired; issue it again"). Only EscrowForged drops a pending record, so the run fails, the
    pending record stays, and the next run fails the same way: the site never issues again, and
    the advice "issue it again" cannot be followed."""
    config, store = fleet
    with pytest.raises(_Killed):
        _run(config, _KillAfterPending(store))
    pending = load_site_state(store, "example").pending
    assert pending is not None

    later = pending.not_after + timedelta(days=1)
    outcomes = [
        _run_at(config, store, later),
        _run_at(config, store, later + timedelta(hours=13)),
        _run_at(config, store, later + timedelta(days=2), force=True),  # `certdrop issue`
    ]
    results = [(o.result, o.error.code if o.error else None) for o in outcomes]
    assert any(o.result == "issued" for o in outcomes), (
        f"the site never issues again after its recorded certificate expired: {results}"
    )


def test_an_agent_pending_delivery_of_an_expired_certificate_does_not_block_renewal_forever(
    fleet, pebble
):
    """README "Deliveries per agent": a pending delivery is "retried by every run from escrow —
    never a reason to issue again", and (DESIGN §9) "a failing agent is that agent's pending
    delivery", never a reason for the site to stop issuing; a site whose certificate expired is
    due at once (README "Renewal").

    Agent nas-b's prefix cannot be written at the issuance, so it is the site's pending delivery.
    The site's renewals then do not happen until the certificate has expired (the CA or DNS
    down, the issuer not run). Once runs come again, each starts by redelivering to nas-b from
    escrow; `open_escrow(unexpired=True)` raises `escrow.unavailable` (expired), which
    `_redeliver` does not catch (it catches only EscrowForged): the run fails before it decides
    anything, and so does every later run, forced ones too — the expired site never renews."""
    config, store = fleet
    publisher = parts.publisher(config, store)
    publisher.registry.add(
        enrollment_of(generate_agent_keys("nas-b")), ("example",), datetime.now(UTC)
    )
    from cloud.errors import StoreError
    from lab.faults import FailingStore

    nas_b_down = FailingStore(
        store,
        lambda key, _body: key.startswith("agents/nas-b/"),
        lambda key: StoreError(key, "injected: AccessDenied"),
    )
    first = _run(config, nas_b_down)
    assert first.result == "issued" and first.undelivered == ("nas-b",)
    current = load_site_state(store, "example").current

    later = current.not_after + timedelta(days=1)
    outcomes = [
        _run_at(config, store, later),
        _run_at(config, store, later + timedelta(hours=13)),
        _run_at(config, store, later + timedelta(days=2), force=True),
    ]
    results = [(o.result, o.error.code if o.error else None) for o in outcomes]
    assert any(o.result == "issued" for o in outcomes), (
        f"an expired site with one pending agent delivery never renews: {results}"
    )


def test_an_absurd_retry_after_from_the_ca_is_an_acme_error_not_a_crash(
    fleet, pebble, bind_auth, monkeypatch
):
    """README exit codes: 4 is "ACME: the CA refused, rate-limited"; 1 is "unexpected failure —
    a bug"; README "Issuing": ACME problems "become errors carrying the ACME `code`
    (`rateLimited`, …), the identifier and Retry-After"; every failure a clear error with a
    stable code.

    The CA answers the newOrder with a `rateLimited` problem and `Retry-After: 10**15` (a
    misconfigured CA or proxy). `RetryAfterNetwork._check_response` computes
    `utcnow() + timedelta(seconds=10**15)` before anything else, which raises OverflowError;
    `translate` does not know it, so it leaves `AcmeClient._call` and the pipeline (which
    catches only CertdropError) untranslated: `run_site` raises instead of returning a failed
    outcome, nothing is recorded (no failure, no backoff), and the CLI exits 1 with a
    traceback. An unparseable or absurd Retry-After should be clamped or ignored, as
    cloud/acme/ari.py already does for the renewal-info answer."""
    config, store = fleet
    original_request = requests.Session.request
    hit = {"n": 0}

    def rate_limited_new_order(self, method, url, *args, **kwargs):
        if method == "POST" and url.rstrip("/").endswith("order-plz"):
            hit["n"] += 1
            response = _fake_response(
                url,
                429,
                '{"type": "urn:ietf:params:acme:error:rateLimited", '
                '"detail": "too many new orders recently"}',
                "application/problem+json",
            )
            response.headers["Retry-After"] = str(10**15)
            return response
        return original_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(EnvironmentOnce, "request", rate_limited_new_order, raising=False)
    try:
        outcome = _run(config, store, force=True)
    except OverflowError as exc:  # what happens today
        pytest.fail(f"run_site raised {exc!r} instead of a rateLimited failure (exit 1)")
    assert hit["n"] >= 1
    assert outcome.result == "failed"
    assert outcome.error is not None and outcome.error.code.startswith("acme")
    assert load_site_state(store, "example").next_attempt is not None  # backs off


def test_a_store_read_failing_for_one_site_is_that_sites_outcome_not_the_runs_end(fleet, pebble):
    """README exit codes: `certdrop run` prints each site's row and exits 5 for the object store;
    the pipeline's own rule (Runner.run_site: "the store failed: this site's outcome, not the
    run's end"; `run_many` runs sites in a pool, one outcome each).

    A transient S3 error (500/SlowDown) on the GET of one site's state (`state/sites/<site>.json`)
    is read in `_SiteRun.__init__`, outside the `try` that turns CertdropErrors into outcomes:
    `run_site` raises StoreError, so `run_many` (`certdrop run`) raises, every other site's
    outcome is lost (no table printed), the indexes are not re-signed and no alert is sent."""
    config, store = fleet
    from cloud.errors import StoreError

    class StateReadFails:
        def __init__(self, inner):
            self._inner = inner

        def get(self, key, **kwargs):
            if key == "state/sites/example.json":
                raise StoreError(key, "injected: HTTP 503 SlowDown")
            return self._inner.get(key, **kwargs)

        def __getattr__(self, name):
            return getattr(self._inner, name)

    faulty = StateReadFails(store)
    runner = Runner(
        config,
        faulty,
        parts.keystore(config),
        parts.publisher(config, faulty),
        sleep=lambda _s: None,
    )
    try:
        outcomes = runner.run_many(["example"], force=True)
    except StoreError as exc:
        pytest.fail(f"run_many raised {exc!r}: no outcome for the site (nor for any other)")
    assert [o.result for o in outcomes] == ["failed"]
    assert outcomes[0].error is not None and outcomes[0].error.code.startswith("store")
