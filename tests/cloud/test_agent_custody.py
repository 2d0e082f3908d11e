"""Agent custody (CSR mode) on the issuer's side, against real Pebble, BIND and the file store:
agents sign CSR statements with real keys; the issuer checks them, orders one certificate per
agent and publishes leaf + chain only (docs/key-custody.md)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.client import AcmeClient
from cloud.cli.main import main
from cloud.config import ConfigError, KeyCustody, parse
from cloud.custody import key_requests
from cloud.custody.agent_side import csr_statement_key, key_requests_key
from cloud.errors import AcmeError
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.status import collect
from cloud.fleet.status_table import render
from cloud.keys.issuer import init_issuer, load_issuer
from cloud.keys.rotation import rotate_escrow, signer_for
from cloud.pipeline import parts
from cloud.pipeline.schedule import due_sites, read_csr_posts, read_markers
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import RenewalWindow, load_site_state, save_site_state
from cloud.pipeline.tick import message_for, run_tick
from cloud.publish.publisher import Publisher
from cloud.store import StoredObject
from lab.issuer_config import bind_config
from nas_agent.bundle import ESCROW_RECIPIENT, open_sealed, parse_index
from nas_agent.bundle.key_requests import parse_key_requests, verify_key_requests
from nas_agent.bundle.sealed import open_sealed_leaf
from nas_agent.custody.keygen import csr_der
from nas_agent.custody.statement import sign_csr_statement
from nas_agent.enrollment import enrollment_of
from nas_agent.errors import MalformedPlaintext
from nas_agent.keys import generate_agent_keys, key_id
from tests.cloud.issuing import record_wire, txt_values

SITE = 'domain = "example.test"\nkey_custody = "agent"'
NAMES = ("*.example.test", "example.test")  # sorted, as the key requests list them
FIVE_A_WEEK = "limits = { certificates_per_exact_set = { count = 5, hours = 168 } }"


class Nas:
    """An agent as far as the issuer sees it: its keys, the site keys it made, its CSRs."""

    def __init__(self, store, agent_id: str):
        self.store = store
        self.keys = generate_agent_keys(agent_id)
        self.agent_id = agent_id
        self.site_key = None
        self.sequence = 1_700_000_000

    def post(
        self,
        *,
        current: str = "",
        rekey: bool = False,
        names: tuple[str, ...] = NAMES,
        new_key: bool = True,
        sequence: int | None = None,
        signer=None,
        agent: str | None = None,
        where: str | None = None,
    ) -> int:
        if new_key or self.site_key is None:
            self.site_key = ec.generate_private_key(ec.SECP256R1())
        self.sequence = sequence if sequence is not None else self.sequence + 1
        body = sign_csr_statement(
            agent_id=agent or self.agent_id,
            site="example",
            sequence=self.sequence,
            current_cert_sha256=current,
            rekey=rekey,
            csr_der=csr_der(self.site_key, names),
            created_at=datetime.now(UTC),
            signing_key=(signer or self.keys).signing_key,
        )
        self.store.put(csr_statement_key(where or self.agent_id, "example"), body)
        return self.sequence


@pytest.fixture
def issuer(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth, site=SITE)
    store = parts.store(config)
    keys = init_issuer(parts.keystore(config))
    publisher = Publisher(store, keys)
    return config, store, keys, publisher


def _register(publisher, store, *agent_ids: str) -> dict[str, Nas]:
    agents = {a: Nas(store, a) for a in agent_ids}
    for nas in agents.values():
        publisher.registry.add(enrollment_of(nas.keys), ("example",), datetime.now(UTC))
    return agents


def _run(config, store, publisher, *, force: bool = False, later: timedelta | None = None):
    """One run of the site; `later`: with the issuer's clock that much ahead."""
    if later is None:
        runner = Runner(config, store, parts.keystore(config), publisher)
    else:
        runner = Runner(
            config, store, parts.keystore(config), publisher, now=lambda: datetime.now(UTC) + later
        )
    return runner.run_site("example", force=force)


def _entry(store, agent_id: str):
    found = store.get(f"agents/{agent_id}/index.json")
    assert isinstance(found, StoredObject)
    return parse_index(found.body).entry("example")


def _leaf(store, nas: Nas):
    entry = _entry(store, nas.agent_id)
    sealed = store.get(f"agents/{nas.agent_id}/{entry.object_key}").body
    return entry, open_sealed_leaf(
        sealed,
        recipient_id=nas.agent_id,
        private_key=nas.keys.box_key,
        site="example",
        version=entry.version,
    )


def _agent_state(store, agent_id: str):
    return load_site_state(store, "example").agents[agent_id]


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_custody_is_issuer_by_default_and_anything_else_is_a_clear_error(tmp_path):
    base = '[ca]\ndirectory = "https://ca.test/dir"\nterms_agreed = true\n'
    site = '[sites.a]\ndomain = "a.test"\nchallenge = "dns-persist-01"\n'
    assert parse(base + site, tmp_path / "c.toml").sites["a"].key_custody is KeyCustody.ISSUER
    agent = parse(base + site + 'key_custody = "agent"\n', tmp_path / "c.toml")
    assert agent.sites["a"].key_custody is KeyCustody.AGENT

    with pytest.raises(ConfigError) as raised:
        parse(base + site + 'key_custody = "nas"\n', tmp_path / "c.toml")

    (problem,) = raised.value.problems
    assert problem.key == "sites.a.key_custody"
    assert "'nas'" in problem.cause and '"agent"' in problem.fix


def test_an_agent_csr_gets_a_leaf_only_bundle_and_escrow_holds_no_key(issuer, orders):
    config, store, keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    sequence = nas.post()

    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 1
    entry, leaf = _leaf(store, nas)
    assert (entry.custody, entry.kind) == ("agent", "certdrop-leaf-v1")
    assert leaf.agent_id == "nas-a" and leaf.csr_sequence == sequence
    certificate = x509.load_pem_x509_certificate(leaf.leaf_pem.encode())
    assert _spki(certificate.public_key()) == _spki(nas.site_key.public_key())
    # The escrow copy holds the same leaf, and no key: it is not even a bundle.
    escrow = store.get(f"escrow/example/{entry.version}.sealed").body
    kept = open_sealed_leaf(
        escrow,
        recipient_id=ESCROW_RECIPIENT,
        private_key=keys.escrow_key,
        site="example",
        version=entry.version,
    )
    assert kept.leaf_pem == leaf.leaf_pem
    with pytest.raises(MalformedPlaintext):
        open_sealed(
            escrow,
            recipient_id=ESCROW_RECIPIENT,
            private_key=keys.escrow_key,
            site="example",
            version=entry.version,
        )
    for info in store.list(""):
        assert b"PRIVATE KEY" not in store.get(info.key).body, info.key
    # What the state records for the agent.
    held = _agent_state(store, "nas-a")
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert held.sequence == sequence and held.current.sequence == sequence
    assert held.current.record.cert_sha256 == hashlib.sha256(der).hexdigest()
    assert held.current.record.version == entry.version
    assert held.current.record.not_after == certificate.not_valid_after_utc
    assert held.current.record.ari_id is not None
    assert held.order is None and held.pending is None
    # The agent's key requests name the site, signed by the issuer's key.
    requests = parse_key_requests(store.get(key_requests_key("nas-a")).body)
    verify_key_requests(requests, agent_id="nas-a", issuer_public_key=keys.signing_key.public_key())
    assert [(r.site, r.names, r.key_type) for r in requests.sites] == [
        ("example", NAMES, "ec-p256")
    ]
    # Run again: the statement was answered, nothing is ordered twice for one CSR.
    again = _run(config, store, publisher, force=True)
    assert again.result == "not due" and len(orders) == 1


def test_statements_of_a_foreign_or_unregistered_agent_are_refused(issuer, orders):
    config, store, _keys, publisher = issuer
    agents = _register(publisher, store, "nas-a", "nas-b")
    a, b = agents["nas-a"], agents["nas-b"]
    a.post(signer=b.keys)  # in nas-a's place, signed by nas-b
    b.post(agent="nas-a")  # nas-a's name in nas-b's place
    ghost = Nas(store, "ghost")  # never registered
    ghost.post()

    outcome = _run(config, store, publisher)

    assert len(orders) == 0, outcome.reason
    state = load_site_state(store, "example")
    assert state.agents["nas-a"].refusal.code == "csr.signature_invalid"
    assert state.agents["nas-b"].refusal.code == "csr.wrong_agent"
    assert "ghost" not in state.agents
    assert store.get("agents/ghost/index.json") is None
    shown = render(collect(config, store, datetime.now(UTC)))
    assert "CSR refused: csr.signature_invalid" in shown and "ghost" not in shown


def test_a_csr_naming_other_names_than_the_sites_is_refused(issuer, orders):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post(names=(*NAMES, "other.test"))

    _run(config, store, publisher)

    assert len(orders) == 0
    assert _agent_state(store, "nas-a").refusal.code == "csr.names_mismatch"


def test_replayed_and_stale_statements_are_refused_and_a_good_one_still_issues(issuer, orders):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    first = nas.post()
    _run(config, store, publisher)
    issued = _agent_state(store, "nas-a").current.record.cert_sha256

    nas.post(sequence=first - 1, current=issued)  # an older sequence, replayed
    _run(config, store, publisher, force=True)
    assert _agent_state(store, "nas-a").refusal.code == "csr.sequence_stale"

    nas.post(current="ab" * 32, sequence=first + 1)  # names a certificate never delivered
    _run(config, store, publisher, force=True)
    assert _agent_state(store, "nas-a").refusal.code == "csr.current_cert_mismatch"
    assert len(orders) == 1

    nas.post(current=issued, rekey=True)
    outcome = _run(config, store, publisher)
    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 2 and _agent_state(store, "nas-a").refusal is None


def test_a_renewal_needs_a_fresh_key_and_carries_replaces(issuer, orders, monkeypatch, pebble):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    _run(config, store, publisher)
    first = _agent_state(store, "nas-a").current.record

    nas.post(current=first.cert_sha256, new_key=False, rekey=True)  # the same key again
    _run(config, store, publisher)
    assert _agent_state(store, "nas-a").refusal.code == "csr.key_reused"
    assert len(orders) == 1

    wire = record_wire(monkeypatch, pebble)
    sequence = nas.post(current=first.cert_sha256, rekey=True)
    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    (placed,) = wire.placed()
    assert placed["payload"]["replaces"] == first.ari_id
    held = _agent_state(store, "nas-a")
    assert held.current.sequence == sequence and held.current.record.version > first.version
    _, leaf = _leaf(store, nas)
    certificate = x509.load_pem_x509_certificate(leaf.leaf_pem.encode())
    assert _spki(certificate.public_key()) == _spki(nas.site_key.public_key())
    assert store.get(first.escrow_object) is None  # the replaced escrow copy is gone


def test_a_sixth_agent_waits_for_the_exact_set_limit_and_status_says_until_when(
    tmp_path, pebble, bind_auth, orders
):
    config = bind_config(tmp_path, pebble, bind_auth, site=SITE, ca_extra=FIVE_A_WEEK)
    store = parts.store(config)
    publisher = Publisher(store, init_issuer(parts.keystore(config)))
    agents = _register(publisher, store, *(f"nas-{i}" for i in range(1, 7)))
    for nas in agents.values():
        nas.post()

    before = datetime.now(UTC)
    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 5
    state = load_site_state(store, "example")
    waiting = [a for a, e in state.agents.items() if e.waiting is not None]
    issued = [a for a, e in state.agents.items() if e.current is not None]
    assert len(waiting) == 1 and len(issued) == 5
    wait = state.agents[waiting[0]].waiting
    assert wait.held_by == ("certificates per exact set of names",)
    # One token back every 168 h / 5.
    assert before + timedelta(hours=33) < wait.go_at < datetime.now(UTC) + timedelta(hours=34)
    status = collect(config, store, datetime.now(UTC))
    shown = status.site("example").agents[waiting[0]]
    assert shown.state == "CSR waiting for issuance" and shown.until == wait.go_at
    assert f"{waiting[0]}: CSR waiting for issuance (limit until {wait.go_at:%Y-%m-%d %H:%M}" in (
        render(status)
    )


class _Queue:
    def __init__(self):
        self.sent: list[str] = []

    def send(self, bodies):
        self.sent.extend(bodies)


def test_a_csr_posted_after_the_last_run_makes_the_site_due_at_the_next_tick(issuer, orders):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    first = _run(config, store, publisher)  # no CSR yet: nothing to order
    assert first.result == "not due" and len(orders) == 0
    shown = collect(config, store, datetime.now(UTC)).site("example")
    assert shown.key_custody == "agent" and shown.agents["nas-a"].state == "waiting for CSR"
    quiet = _Queue()
    run_tick(config, store, quiet, datetime.now(UTC))
    assert message_for("example") not in quiet.sent

    nas.post()
    queue = _Queue()
    result = run_tick(config, store, queue, datetime.now(UTC))

    assert message_for("example") in queue.sent
    assert [d.reason for d in result.due] == ["an agent posted a CSR statement"]
    assert _run(config, store, publisher).result == "issued"


def test_a_refused_csr_fires_an_alert_naming_the_agent_and_its_code(issuer):
    config, store, _keys, publisher = issuer
    agents = _register(publisher, store, "nas-a", "nas-b")
    agents["nas-a"].post(names=("example.test",))
    _run(config, store, publisher)

    alerts = evaluate(collect(config, store, datetime.now(UTC)), datetime.now(UTC))

    (refused,) = [a for a in alerts if a.kind == "csr_refused"]
    assert refused.site == "example"
    assert refused.details["refused"] == {"nas-a": "csr.names_mismatch"}


class _Died(BaseException):
    """A run killed mid-way: nothing of certdrop catches it."""


def test_a_run_killed_after_ordering_is_finished_by_the_next_with_no_second_order(
    issuer, orders, monkeypatch, bind_auth
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    sequence = nas.post()
    original = AcmeClient.finalize

    def dies(self, *args, **kwargs):
        raise _Died

    monkeypatch.setattr(AcmeClient, "finalize", dies)
    with pytest.raises(_Died):
        _run(config, store, publisher)
    journalled = _agent_state(store, "nas-a").order
    assert journalled.sequence == sequence and journalled.url == orders[0]

    monkeypatch.setattr(AcmeClient, "finalize", original)
    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 1  # resumed, not ordered again
    held = _agent_state(store, "nas-a")
    assert held.order is None and held.current.sequence == sequence
    assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()


def test_escrow_rotation_reseals_an_agent_custody_leaf_copy(issuer, orders):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    assert _run(config, store, publisher).result == "issued"
    entry, leaf = _leaf(store, nas)

    resealed = rotate_escrow(parts.keystore(config), store)

    rotated = load_issuer(parts.keystore(config))
    kept = open_sealed_leaf(
        store.get(f"escrow/example/{entry.version}.sealed").body,
        recipient_id=ESCROW_RECIPIENT,
        private_key=rotated.escrow_key,
        site="example",
        version=entry.version,
    )
    assert resealed == 1 and not rotated.retired_escrow_keys
    assert kept.leaf_pem == leaf.leaf_pem


def test_a_signing_key_rotation_signs_the_key_requests_again(issuer, orders):
    config, store, keys, publisher = issuer
    _register(publisher, store, "nas-a")
    key_requests.sync(publisher, config, datetime.now(UTC))
    before = parse_key_requests(store.get(key_requests_key("nas-a")).body)

    assert main(["-c", str(config.source), "issuer", "rotate"]) == 0

    successor = signer_for(load_issuer(parts.keystore(config)), store)
    after = parse_key_requests(store.get(key_requests_key("nas-a")).body)
    verify_key_requests(after, agent_id="nas-a", issuer_public_key=successor.key.public_key())
    assert before.issuer_key_id == key_id(keys.signing_key.public_key())
    assert after.issuer_key_id == successor.key_id != before.issuer_key_id
    assert after.sites == before.sites and after.issued_at >= before.issued_at


# --- what the agent has installed is not always what was delivered last ---------------------


def test_an_agent_that_installed_nothing_gets_its_rekey_ordered(issuer, orders):
    """The documented recovery (bundle.key_missing -> `certdrop-agent rekey SITE`): the agent
    lost the pending key before v1 arrived, so it installed nothing and its rekey names none."""
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    assert _run(config, store, publisher).result == "issued"

    sequence = nas.post(current="", rekey=True)
    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    held = _agent_state(store, "nas-a")
    assert len(orders) == 2 and held.refusal is None and held.current.sequence == sequence


def test_an_agent_still_serving_the_certificate_before_the_last_is_ordered_for(issuer, orders):
    """A store writer put back an older statement (N1) the agent had replaced (N2): the issuer
    ordered N1, whose key the agent deleted, so the agent still serves v1. Its next statement
    names v1, the certificate delivered before the last, and is ordered (a day later: the N1
    order was this agent's rekey of the day)."""
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    _run(config, store, publisher)
    served = _agent_state(store, "nas-a").current.record.cert_sha256  # the agent installs v1
    key = csr_statement_key("nas-a", "example")
    nas.post(current=served, rekey=True)  # N1 (rekey run twice by the operator)
    n1 = store.get(key).body
    nas.post(current=served, rekey=True)  # N2: the agent deleted N1's key
    store.put(key, n1)  # put back before the issuer looks
    _run(config, store, publisher)
    assert len(orders) == 2  # for a key the agent no longer has (bundle.key_missing)
    assert _agent_state(store, "nas-a").previous_cert_sha256 == served

    sequence = nas.post(current=served, rekey=True)  # the agent still serves v1
    outcome = _run(config, store, publisher, later=timedelta(hours=25))

    assert outcome.result == "issued", outcome.reason
    held = _agent_state(store, "nas-a")
    assert len(orders) == 3 and held.refusal is None and held.current.sequence == sequence


def test_a_rekey_after_a_round_trip_through_issuer_custody_is_ordered(
    tmp_path, pebble, bind_auth, orders
):
    """agent -> issuer -> agent custody: the agent installed the issuer-custody certificate in
    between, so its rekey names that one, not the agent-custody one delivered before."""
    config = bind_config(tmp_path, pebble, bind_auth, site=SITE)
    store = parts.store(config)
    publisher = Publisher(store, init_issuer(parts.keystore(config)))
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    assert _run(config, store, publisher).result == "issued"
    config = bind_config(tmp_path, pebble, bind_auth)  # back to issuer custody
    assert _run(config, store, publisher).result == "issued"
    installed = load_site_state(store, "example").current.cert_sha256  # the agent installs it

    config = bind_config(tmp_path, pebble, bind_auth, site=SITE)  # agent custody again
    sequence = nas.post(current=installed, rekey=True)
    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    held = _agent_state(store, "nas-a")
    assert held.refusal is None and len(orders) == 3 and held.current.sequence == sequence


# --- rekeys and the tokens the site's agents share --------------------------------------------


def test_one_agents_rekeys_wait_a_day_each_and_leave_the_others_their_tokens(
    tmp_path, pebble, bind_auth, orders
):
    """Agents are semi-trusted: an agent posting rekey after rekey gets one order a day; the
    others are shown waiting, not refused, and another agent's first certificate still fits."""
    config = bind_config(tmp_path, pebble, bind_auth, site=SITE, ca_extra=FIVE_A_WEEK)
    store = parts.store(config)
    publisher = Publisher(store, init_issuer(parts.keystore(config)))
    rogue = _register(publisher, store, "nas-rogue")["nas-rogue"]
    rogue.post()
    _run(config, store, publisher)
    for _ in range(4):
        rogue.post(current=_agent_state(store, "nas-rogue").current.record.cert_sha256, rekey=True)
        _run(config, store, publisher)
    assert len(orders) == 2  # the first certificate and one rekey
    held = _agent_state(store, "nas-rogue")
    assert held.refusal is None and held.waiting.held_by == (
        "one rekey order per agent per 24 hours",
    )
    assert held.waiting.go_at == held.rekeyed_at + timedelta(hours=24)
    shown = collect(config, store, datetime.now(UTC)).site("example").agents["nas-rogue"]
    assert shown.state == "CSR waiting for issuance" and shown.until == held.waiting.go_at

    victim = Nas(store, "nas-victim")
    publisher.registry.add(enrollment_of(victim.keys), ("example",), datetime.now(UTC))
    victim.post()
    _run(config, store, publisher)
    assert _agent_state(store, "nas-victim").current is not None

    outcome = _run(config, store, publisher, later=timedelta(hours=25))  # the day is over
    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 4 and _agent_state(store, "nas-rogue").waiting is None


def test_a_due_renewal_takes_the_last_token_before_another_agents_rekey(
    tmp_path, pebble, bind_auth, orders
):
    """One token left: nas-a (the more urgent by expiry) asks for a rekey, nas-b's renewal is
    due. The renewal is ordered; the rekey waits for the CA's limits."""
    three = "limits = { certificates_per_exact_set = { count = 3, hours = 168 } }"
    config = bind_config(tmp_path, pebble, bind_auth, site=SITE, ca_extra=three)
    store = parts.store(config)
    publisher = Publisher(store, init_issuer(parts.keystore(config)))
    agents = _register(publisher, store, "nas-a", "nas-b")
    for nas in agents.values():
        nas.post()
    _run(config, store, publisher)  # two tokens spent, one left
    a, b = _agent_state(store, "nas-a"), _agent_state(store, "nas-b")
    assert a.current.record.not_after <= b.current.record.not_after
    now = datetime.now(UTC)
    state = load_site_state(store, "example")
    due = RenewalWindow(
        now - timedelta(days=1), now + timedelta(days=1), now, now + timedelta(days=1)
    )
    agents_now = {**state.agents, "nas-b": replace(b, window=due)}  # inside the CA's window
    save_site_state(store, replace(state, agents=agents_now))
    agents["nas-a"].post(current=a.current.record.cert_sha256, rekey=True)
    renewal = agents["nas-b"].post(current=b.current.record.cert_sha256)

    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert len(orders) == 3
    assert _agent_state(store, "nas-b").current.sequence == renewal
    waiting = _agent_state(store, "nas-a").waiting
    assert waiting.held_by == ("certificates per exact set of names",)
    assert _agent_state(store, "nas-a").current.sequence == a.current.sequence


# --- the schedule and the backoff ---------------------------------------------------------------


def test_only_a_statement_of_a_well_formed_agent_makes_the_site_due_and_never_ends_a_backoff(
    issuer, orders, monkeypatch
):
    """Objects under `agents/` not named `agents/<agent id>/csr/<site>.json` make no site due;
    a statement posted while the site backs off makes it due, and its run does not go to the CA
    (the order in flight waits out the backoff)."""
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        raise AcmeError("serverInternal", "the CA fails for now", transient=True)

    monkeypatch.setattr(AcmeClient, "finalize", failing)
    assert _run(config, store, publisher).result == "failed"
    now = datetime.now(UTC)
    state = load_site_state(store, "example")
    assert state.next_attempt is not None and state.next_attempt > now  # backing off

    for stray in ("Bad_Agent/csr/example.json", "nas-a/x/csr/example.json", "nas-a/csr.json"):
        store.put(f"agents/{stray}", b"anything")
    markers = read_markers(store)
    assert not due_sites(config.sites, markers, now, (), read_csr_posts(store, config.sites))

    store.put("agents/ghost/csr/example.json", b"anything")  # well formed, never registered
    due = due_sites(config.sites, markers, now, (), read_csr_posts(store, config.sites))
    assert [d.reason for d in due] == ["an agent posted a CSR statement"]
    outcome = _run(config, store, publisher)

    assert outcome.result == "not due" and "backing off" in outcome.reason
    assert len(calls) == 1 and len(orders) == 1
    assert _agent_state(store, "nas-a").order is not None  # kept for the run after the backoff


# --- untrusted sizes --------------------------------------------------------------------------


def test_a_csr_statement_is_read_with_a_size_cap_and_a_larger_one_is_refused(
    issuer, orders, monkeypatch
):
    """agents/<agent>/csr/* is writable by the agent and any store writer (S3 takes 5 GB in one
    PUT): read with max_bytes, a larger object is a malformed statement."""
    config, store, _keys, publisher = issuer
    _register(publisher, store, "nas-a")
    store.put(csr_statement_key("nas-a", "example"), b" " * (1024 * 1024))
    caps = []
    original = type(store).get

    def spying(self, key, **kwargs):
        if "/csr/" in key:
            caps.append(kwargs.get("max_bytes"))
        return original(self, key, **kwargs)

    monkeypatch.setattr(type(store), "get", spying)
    _run(config, store, publisher)

    assert caps == [64 * 1024]
    held = _agent_state(store, "nas-a")
    assert held.refusal.code == "csr.malformed" and "65536" in held.refusal.message
    assert len(orders) == 0


def test_key_requests_are_read_with_a_size_cap_and_a_larger_one_is_replaced(issuer, monkeypatch):
    config, store, keys, publisher = issuer
    _register(publisher, store, "nas-a")
    store.put(key_requests_key("nas-a"), b" " * (1024 * 1024))
    caps = []
    original = type(store).get

    def spying(self, key, **kwargs):
        if key == key_requests_key("nas-a"):
            caps.append(kwargs.get("max_bytes"))
        return original(self, key, **kwargs)

    monkeypatch.setattr(type(store), "get", spying)
    written = key_requests.sync(publisher, config, datetime.now(UTC))

    assert caps == [256 * 1024] and written == ["nas-a"]
    document = parse_key_requests(store.get(key_requests_key("nas-a")).body)
    verify_key_requests(document, agent_id="nas-a", issuer_public_key=keys.signing_key.public_key())


def test_certdrop_issue_of_an_agent_custody_site_says_what_it_did(issuer, orders, capsys):
    # One certificate per NAS for the key each made: nothing of the site's to print or write;
    # before, the command asserted a certificate and ended in a traceback.
    from cloud.cli.main import main

    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()

    code = main(["-c", str(config.source), "issue", "example", "--out", str(config.source.parent)])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("example  issued")
    assert "keys never leave its NAS units" in err
    assert _agent_state(store, "nas-a").current is not None
