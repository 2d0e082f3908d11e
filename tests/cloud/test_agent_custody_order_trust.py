# ruff: noqa: F811  (test functions take the imported `issuer` fixture)
"""A journalled order of agent custody (`state/sites/<site>.json` -> agents.<agent>.order) is
placed, resumed or finalized only when the CSR statement journalled with it is the agent's and
signs all of it (cloud.custody.order_journal): the site state is not signed, so whoever can
write it could otherwise have the CA issue the site's names to a key of theirs.

The first test comes from an independent review; it failed before the fix.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.client import AcmeClient
from cloud.custody.agent_side import csr_statement_key, spki_sha256
from cloud.errors import StoreError
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.status import collect
from cloud.pipeline.site_state import AgentOrder, load_site_state, save_site_state
from nas_agent import store_layout
from nas_agent._encoding import b64url_decode, b64url_encode
from nas_agent.custody.keygen import csr_der
from nas_agent.custody.statement import parse_csr_statement
from tests.cloud.test_agent_custody import (
    NAMES,
    _agent_state,
    _register,
    _run,
    _spki,
    issuer,  # noqa: F401  (the fixture)
)


class _Died(BaseException):
    """A run killed mid-way: nothing of certdrop catches it."""


@pytest.fixture
def acme(monkeypatch, orders) -> list[str]:
    """Every call that places, resumes or finalizes an order, by name, in order."""
    calls: list[str] = []
    for name in ("new_order", "resume_order", "finalize"):
        original = getattr(AcmeClient, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(AcmeClient, name, counting)
    return calls


def _killed_in(monkeypatch, method: str, config, store, publisher) -> None:
    """One run that dies when it calls `method` of the ACME client (the order journalled)."""
    original = getattr(AcmeClient, method)

    def dies(self, *args, **kwargs):
        raise _Died

    monkeypatch.setattr(AcmeClient, method, dies)
    with pytest.raises(_Died):
        _run(config, store, publisher)
    monkeypatch.setattr(AcmeClient, method, original)


def _statement(store, agent_id: str) -> bytes:
    return store.get(csr_statement_key(agent_id, "example")).body


def _order_from(body: bytes, **changes) -> AgentOrder:
    """The order a run journals for the statement `body`, with `changes`."""
    statement = parse_csr_statement(body)
    csr = x509.load_der_x509_csr(statement.csr_der)
    order = AgentOrder(
        sequence=statement.sequence,
        csr=b64url_encode(statement.csr_der),
        key_sha256=spki_sha256(csr.public_key()),
        rekey=statement.rekey,
        ordering_since=datetime.now(UTC),
        statement=b64url_encode(body),
    )
    return dataclasses.replace(order, **changes)


def _journal(store, agent_id: str, order: AgentOrder) -> None:
    """What a writer of `state/` does: the agent's entry holds `order`."""
    state = load_site_state(store, "example")
    held = state.agents[agent_id]
    agents = {**state.agents, agent_id: dataclasses.replace(held, order=order)}
    save_site_state(store, dataclasses.replace(state, agents=agents))


def _issued_keys(store, agent_id: str) -> list[bytes]:
    """The SubjectPublicKeyInfo of every certificate the state holds for the agent."""
    held = _agent_state(store, agent_id)
    return [
        _spki(x509.load_pem_x509_certificate(c.leaf_pem.encode()).public_key())
        for c in (held.current, held.pending)
        if c is not None
    ]


def _refused_in_status_and_alerts(config, store, agent_id: str) -> str:
    now = datetime.now(UTC)
    shown = collect(config, store, now).site("example").agents[agent_id]
    assert shown.state == "CSR refused" and "journalled order" in (shown.message or "")
    (alert,) = [a for a in evaluate(collect(config, store, now), now) if a.kind == "csr_refused"]
    assert alert.details["refused"] == {agent_id: shown.code}
    return shown.code


def test_a_store_writer_cannot_have_a_certificate_issued_to_their_own_key(issuer, acme):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    first = _run(config, store, publisher)
    assert first.result == "issued", first.reason
    state = load_site_state(store, "example")
    held = state.agents["nas-a"]

    # The attacker writes a journalled order with their own CSR into the unsigned site state.
    attacker_key = ec.generate_private_key(ec.SECP256R1())
    forged_order = AgentOrder(
        sequence=held.sequence + 1,
        csr=b64url_encode(csr_der(attacker_key, NAMES)),
        key_sha256="0" * 64,
        rekey=False,
        ordering_since=datetime.now(UTC),
    )
    agents = {**state.agents, "nas-a": dataclasses.replace(held, order=forged_order)}
    save_site_state(store, dataclasses.replace(state, agents=agents))
    acme.clear()

    _run(config, store, publisher)  # the next ordinary run of the site

    after = load_site_state(store, "example").agents["nas-a"]
    assert _spki(attacker_key.public_key()) not in _issued_keys(store, "nas-a"), (
        "the CA issued the site's names to the attacker's key; the certificate sits in clear in"
        " state/sites/example.json"
    )
    assert acme == [] and after.order is None
    assert after.sequence == held.sequence  # a forged order spends no sequence of the agent's
    assert _refused_in_status_and_alerts(config, store, "nas-a").startswith("csr.")


@pytest.mark.parametrize("dies_in", ["new_order", "finalize"])
def test_a_run_killed_after_journalling_is_resumed_and_issues_exactly_once(
    issuer, acme, monkeypatch, dies_in
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    sequence = nas.post()
    _killed_in(monkeypatch, dies_in, config, store, publisher)
    journalled = _agent_state(store, "nas-a").order
    assert journalled.sequence == sequence
    assert b64url_decode(journalled.statement) == _statement(store, "nas-a")

    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert acme.count("new_order") == 1  # the killed run's order is finished, not placed again
    held = _agent_state(store, "nas-a")
    assert held.order is None and held.refusal is None
    assert held.current.sequence == held.sequence == sequence
    assert _issued_keys(store, "nas-a") == [_spki(nas.site_key.public_key())]


def test_a_journalled_order_whose_csr_was_swapped_is_refused_and_the_statement_ordered_later(
    issuer, acme, monkeypatch
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    _killed_in(monkeypatch, "finalize", config, store, publisher)  # placed, URL saved
    genuine = _agent_state(store, "nas-a").order
    attacker_key = ec.generate_private_key(ec.SECP256R1())
    swapped = b64url_encode(csr_der(attacker_key, NAMES))
    _journal(store, "nas-a", dataclasses.replace(genuine, csr=swapped))
    acme.clear()

    outcome = _run(config, store, publisher)

    assert outcome.result != "issued" and acme == []
    assert _agent_state(store, "nas-a").order is None
    assert _refused_in_status_and_alerts(config, store, "nas-a") == "csr.order_unsigned"

    # The agent's statement was not used up: the next run orders it, for the agent's key.
    assert _run(config, store, publisher).result == "issued"
    assert _issued_keys(store, "nas-a") == [_spki(nas.site_key.public_key())]


def test_a_journalled_order_holding_another_agents_statement_is_refused(issuer, acme):
    config, store, _keys, publisher = issuer
    agents = _register(publisher, store, "nas-a", "nas-b")
    agents["nas-a"].post()
    agents["nas-b"].post()
    assert _run(config, store, publisher).result == "issued"
    agents["nas-b"].post()  # nas-b's next statement, signed by nas-b
    _journal(store, "nas-a", _order_from(_statement(store, "nas-b")))
    acme.clear()

    _run(config, store, publisher)

    assert acme == []
    assert _agent_state(store, "nas-a").order is None
    assert _spki(agents["nas-b"].site_key.public_key()) not in _issued_keys(store, "nas-a")
    assert _refused_in_status_and_alerts(config, store, "nas-a") == "csr.wrong_agent"


def test_an_older_statement_of_the_agent_is_not_resurrected_as_a_journalled_order(issuer, acme):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    answered = _statement(store, "nas-a")  # a store reader keeps a copy
    assert _run(config, store, publisher).result == "issued"
    held = _agent_state(store, "nas-a")
    nas.post(current=held.current.record.cert_sha256)  # the CSR for the next renewal
    _journal(store, "nas-a", _order_from(answered))
    acme.clear()

    _run(config, store, publisher)

    assert acme == []
    after = _agent_state(store, "nas-a")
    assert after.order is None and after.current == held.current and after.pending is None
    assert _refused_in_status_and_alerts(config, store, "nas-a") == "csr.sequence_stale"


@pytest.mark.parametrize(
    "change",
    [{"sequence": 1}, {"key_sha256": "0" * 64}, {"rekey": True}, {"statement": "not base64!"}],
    ids=["sequence", "key", "rekey", "statement"],
)
def test_a_journalled_order_its_statement_does_not_sign_is_refused(issuer, acme, change):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    assert _run(config, store, publisher).result == "issued"
    nas.post(current=_agent_state(store, "nas-a").current.record.cert_sha256)
    _journal(store, "nas-a", _order_from(_statement(store, "nas-a"), **change))
    acme.clear()

    _run(config, store, publisher)

    assert acme == [] and _agent_state(store, "nas-a").order is None
    code = _refused_in_status_and_alerts(config, store, "nas-a")
    assert code == ("csr.malformed" if "statement" in change else "csr.order_unsigned")


def _drop_statement_field(store) -> None:
    """The site state as a version that did not journal statements wrote it."""
    key = store_layout.site_state("example")
    body = json.loads(store.get(key).body)
    del body["agents"]["nas-a"]["order"]["statement"]
    store.put(key, json.dumps(body).encode())


def test_an_order_journalled_before_statements_were_is_resumed_with_the_agents_statement(
    issuer, acme, monkeypatch
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    sequence = nas.post()
    _killed_in(monkeypatch, "finalize", config, store, publisher)
    _drop_statement_field(store)
    assert _agent_state(store, "nas-a").order.statement is None

    outcome = _run(config, store, publisher)

    assert outcome.result == "issued", outcome.reason
    assert acme.count("new_order") == 1  # finished, not ordered a second time
    assert _agent_state(store, "nas-a").current.sequence == sequence
    assert _issued_keys(store, "nas-a") == [_spki(nas.site_key.public_key())]


def test_an_order_journalled_before_statements_were_for_a_csr_since_replaced_converges(
    issuer, acme, monkeypatch
):
    config, store, _keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    _killed_in(monkeypatch, "finalize", config, store, publisher)
    _drop_statement_field(store)
    nas.post(rekey=True)  # the agent made a new key since: the journalled CSR is no longer its
    acme.clear()

    _run(config, store, publisher)

    assert acme == [] and _agent_state(store, "nas-a").order is None
    assert _refused_in_status_and_alerts(config, store, "nas-a") == "csr.order_unsigned"

    assert _run(config, store, publisher).result == "issued"  # the agent's statement, read again
    assert _issued_keys(store, "nas-a") == [_spki(nas.site_key.public_key())]


def test_a_pending_leaf_whose_escrow_copy_the_issuer_did_not_vouch_for_is_dropped(issuer, orders):
    # Its statement gone (a copy from before statements, or planted): nothing to deliver, ever,
    # so the pending record goes instead of being retried for good.

    from cloud.publish.publisher import Publisher
    from lab.faults import FailingStore

    config, store, keys, publisher = issuer
    nas = _register(publisher, store, "nas-a")["nas-a"]
    nas.post()
    unwritable = FailingStore(
        store,
        lambda key, _body: key.startswith("agents/nas-a/") and "/bundles/" in key,
        lambda key: StoreError(key, "down"),
    )
    _run(config, unwritable, Publisher(unwritable, keys))
    pending = _agent_state(store, "nas-a").pending
    assert pending is not None
    store.delete(store_layout.escrow_statement("example", pending.record.version))

    _run(config, store, publisher)

    entry = _agent_state(store, "nas-a")
    assert entry.pending is None and entry.current is None
