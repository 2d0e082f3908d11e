"""Exactly once under faults (DESIGN §9): a version names one certificate, one agent's failure is
that agent's pending delivery, a store failing mid-run loses no outcome, and versions only grow
across `site remove` / `site add` — against real Pebble and BIND, with a store made to fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cloud.cli.exit_codes import EXIT_DNS, EXIT_OK
from cloud.cli.main import main
from cloud.config import load
from cloud.dns01.providers.rfc2136 import Rfc2136Provider
from cloud.errors import DnsProviderError, StoreError
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.status import collect
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from cloud.store import StoredObject
from lab.faults import FailingStore
from lab.issuer_config import bind_config
from lab.pebble import Pebble
from nas_agent import store_layout
from nas_agent.bundle import parse_index
from tests.cloud.issuing import enroll_agents, txt_values


def _failing(store, fail):
    return FailingStore(store, fail, lambda key: StoreError(key, "injected: no answer"))


@pytest.fixture
def fleet(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    store, issuer, _ = enroll_agents(config, ("nas-a", "nas-b"))
    return config, store, issuer


def _run(config, store, *, force=False, site="example", hours_later=0):
    later = datetime.now(UTC) + timedelta(hours=hours_later)
    publisher = parts.publisher(config, store)
    # No pause between the pipeline's retries of a failed store write: the faults are injected.
    runner = Runner(
        config, store, parts.keystore(config), publisher, now=lambda: later, sleep=lambda _s: None
    )
    return runner.run_site(site, force=force)


def _entry(store, agent_id):
    found = store.get(store_layout.agent_index(agent_id))
    assert isinstance(found, StoredObject)
    entry = parse_index(found.body).entry("example")
    return entry.version, entry.cert_sha256


def test_a_version_never_names_two_certificates_when_the_state_save_fails(fleet, pebble):
    config, store, _issuer = fleet
    assert _run(config, store).result == "issued"
    seen = {_entry(store, "nas-a")}
    # The renewal's final record of the site fails once: the certificate already reached agents.
    final_save = {"left": 1}

    def fail_final_save(key, body):
        if key != store_layout.site_state("example"):
            return False
        state = json.loads(body)
        if state["pending"] is None and (state["current"] or {}).get("version") == 2:
            final_save["left"] -= 1
            return final_save["left"] >= 0
        return False

    flaky = _failing(store, fail_final_save)
    orders_before = len(pebble.order_ids())

    failed = _run(config, flaky, force=True)
    seen.add(_entry(store, "nas-a"))
    healed = _run(config, store)
    seen.add(_entry(store, "nas-a"))

    assert failed.result == "failed" and flaky.failed
    assert "version 2 is recorded and may already have reached agents" in failed.reason
    assert healed.result == "issued"  # finished from escrow
    versions = [version for version, _sha in seen]
    assert len(versions) == len(set(versions)), f"one version, two certificates: {seen}"
    assert len(pebble.order_ids()) == orders_before + 1  # the renewal's order, not a second one
    state = load_site_state(store, "example")
    assert state.current.version == 2 and state.pending is None


def test_one_agent_that_cannot_be_written_is_its_own_pending_delivery(fleet, pebble):
    config, store, _issuer = fleet
    orders_before = len(pebble.order_ids())
    broken = _failing(store, lambda key, _body: key.startswith("agents/nas-b/"))

    first = _run(config, broken)
    # Past any backoff: nas-b still down is retried, and nothing is ordered for it.
    again = _run(config, broken, hours_later=2)
    healed = _run(config, store, hours_later=4)

    assert first.result == "issued"
    assert first.undelivered == ("nas-b",)
    assert "not yet delivered to nas-b" in first.reason
    assert _entry(store, "nas-a")[0] == 1
    assert again.result == "not due" and again.undelivered == ("nas-b",)
    assert healed.undelivered == ()
    assert _entry(store, "nas-b") == _entry(store, "nas-a")
    assert len(pebble.order_ids()) == orders_before + 1
    assert load_site_state(store, "example").undelivered == {}


def test_a_store_failing_to_record_a_failure_loses_no_outcome(fleet, tmp_path):
    config, store, _issuer = fleet
    text = config.source.read_text()
    config.source.write_text(
        text + '\n[sites.other]\nprovider = "dns"\ndomain = "other.example.test"\n'
    )
    config = load(config.source)
    (tmp_path / "tsig").write_text("AAAA" + (tmp_path / "tsig").read_text()[4:])  # DNS refuses
    flaky = _failing(store, lambda key, _body: key == store_layout.site_state("other"))
    runner = Runner(config, flaky, parts.keystore(config), parts.publisher(config, store))

    try:
        outcomes = runner.run_many(["example", "other"], concurrency=2)
    except StoreError as exc:
        pytest.fail(f"the store's failure escaped the run and took its table with it: {exc}")

    assert [o.site for o in outcomes] == ["example", "other"]
    assert [o.result for o in outcomes] == ["failed", "failed"]
    assert "not recorded" in outcomes[1].reason


def test_versions_keep_growing_after_a_site_is_removed_and_added_again(fleet, capsys):
    config, store, _issuer = fleet
    source = str(config.source)
    assert main(["-c", source, "issue", "example"]) == EXIT_OK

    assert main(["-c", source, "site", "remove", "example"]) == EXIT_OK
    assert main(["-c", source, "site", "add", "example", "--domain", "example.test",
                 "--provider", "dns"]) == EXIT_OK  # fmt: skip
    assert main(["-c", source, "issue", "example"]) == EXIT_OK

    assert load_site_state(store, "example").current.version == 2
    assert "version 2" in capsys.readouterr().out


def test_txt_values_a_failed_cleanup_left_are_told_alerted_and_removed_by_the_next_run(
    fleet, pebble, bind_auth, monkeypatch, capsys
):
    config, store, _issuer = fleet
    source = str(config.source)
    original = Rfc2136Provider.remove_txts  # remove_txt goes through it too

    def dns_api_down(self, records):
        raise DnsProviderError("rfc2136", records[0].fqdn, "injected: the DNS API is down")

    monkeypatch.setattr(Rfc2136Provider, "remove_txts", dns_api_down)
    issued = main(["-c", source, "issue", "example"])
    told = capsys.readouterr().out
    left = txt_values(bind_auth.address, "_acme-challenge.example.test.")
    state = load_site_state(store, "example")
    alerts = [
        a.kind for a in evaluate(collect(config, store, datetime.now(UTC)), datetime.now(UTC))
    ]
    status = main(["-c", source, "status"])
    shown = capsys.readouterr().out
    orders = len(pebble.order_ids())

    monkeypatch.setattr(Rfc2136Provider, "remove_txts", original)
    healed = main(["-c", source, "run"])  # not forced: the journal makes the site due

    assert issued == EXIT_DNS
    assert "TXT left" in told
    assert len(left) == 2 and len(state.leftover_txt) == 2
    assert "txt_left" in alerts
    assert status == EXIT_OK and "TXT left" in shown
    assert healed == EXIT_OK
    assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()
    assert load_site_state(store, "example").leftover_txt == ()
    assert len(pebble.order_ids()) == orders  # removing values orders nothing


def test_a_store_failing_at_any_one_write_of_a_renewal_loses_and_doubles_nothing(
    fleet, pebble, bind_auth
):
    config, store, _issuer = fleet
    assert _run(config, store).result == "issued"
    writes = _count_writes(config, store)
    seen: dict[int, str] = {}
    hours = 0

    for nth in range(1, writes + 1):
        state = load_site_state(store, "example")
        version, orders, issued = (
            state.current.version,
            len(pebble.order_ids()),
            len(pebble.issued_serials()),
        )
        calls = {"n": 0}

        def fail_nth(_key, _body, nth=nth, calls=calls):
            calls["n"] += 1
            return calls["n"] == nth

        hours += 2
        _run(config, _failing(store, fail_nth), force=True, hours_later=hours)
        for _ in range(3):  # the next runs finish what the failure left
            hours += 2
            _run(config, store, hours_later=hours)

        state = load_site_state(store, "example")
        where = f"store write {nth} of {writes} failed"
        added = int(state.current.version != version)
        assert len(pebble.order_ids()) - orders == added, f"{where}: an extra order"
        assert len(pebble.issued_serials()) - issued == added, f"{where}: a certificate lost"
        assert state.pending is None and state.order_url is None and not state.undelivered, where
        assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set(), where
        for agent_id in ("nas-a", "nas-b"):
            agent_version, sha = _entry(store, agent_id)
            assert seen.setdefault(agent_version, sha) == sha, f"{where}: one version, two certs"
            assert agent_version == state.current.version, where


def _count_writes(config, store) -> int:
    writes = []
    counting = FailingStore(store, lambda key, _body: writes.append(key) or False)
    assert _run(config, counting, force=True).result == "issued"
    return len(writes)


def test_half_the_nonces_rejected_place_no_extra_order(tmp_path, bind_resolver, bind_auth):
    with Pebble(tmp_path / "pebble", bind_resolver.address, nonce_reject_percent=50) as flaky:
        config = bind_config(tmp_path, flaky, bind_auth)
        init_issuer(parts.keystore(config))
        store = parts.store(config)
        results = [_run(config, store, force=True, hours_later=h).result for h in range(4)]

        assert results == ["issued"] * 4
        assert len(flaky.order_ids()) == 4
        assert len(flaky.issued_serials()) == 4
        assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()


def test_a_journal_with_a_wrongly_computed_zone_heals_itself_or_is_given_up_by_name(
    fleet, bind_auth, capsys
):
    from cloud.dns01.providers.base import TxtRecord
    from cloud.dns01.solver import ChallengeJournal

    config, store, _issuer = fleet
    journal = ChallengeJournal(store, "example")
    fqdn = "_acme-challenge.example.test."
    placed = TxtRecord("example.test.", fqdn, "placed-by-a-run____________________________")
    parts.provider(config, "dns").add_txt(placed)
    # What a run with a bad `resolvers` setting journalled: the right name, the wrong zone.
    wrong = TxtRecord("wrong-zone.test.", fqdn, "placed-by-a-run____________________________")
    long_ago = datetime.now(UTC) - timedelta(days=8)
    lost = TxtRecord(
        "gone.test.", "_acme-challenge.gone.test.", "nobody-can-remove-this_____________________"
    )
    journal.record("dns", [("example.test", wrong)], datetime.now(UTC))
    journal.record("dns", [("gone.test", lost)], long_ago)

    assert main(["-c", str(config.source), "run"]) == EXIT_OK  # due: values to remove

    assert txt_values(bind_auth.address, fqdn) == set()
    assert journal.entries() == ()
    assert load_site_state(store, "example").leftover_txt == ()
    told = capsys.readouterr().err
    assert "nobody-can-remove-this_____________________" in told and "remove it by hand" in told
