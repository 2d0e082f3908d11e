"""Issue → publish to agents → each agent opens its own entry (real Pebble + BIND)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.acme.client import AcmeClient
from cloud.errors import UnknownAgent
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_state import load_site_state
from cloud.publish.publisher import Publisher
from cloud.store import StoredObject
from lab.issuer_config import bind_config
from nas_agent.bundle import open_sealed, parse_index, verify_and_open
from nas_agent.enrollment import enrollment_of
from nas_agent.errors import DecryptionFailed, StaleVersion, WrongAgent
from nas_agent.keys import generate_agent_keys
from tests.cloud.issuing import issue_and_publish

HOSTNAMES = ("nas.example.test",)


@pytest.fixture
def fleet(tmp_path, pebble, bind_auth):
    """A configured issuer with three registered agents and a publisher."""
    config = bind_config(tmp_path, pebble, bind_auth)
    store = parts.store(config)
    issuer = init_issuer(parts.keystore(config))
    publisher = Publisher(store, issuer)
    agents = {name: generate_agent_keys(name) for name in ("nas-a", "nas-b", "nas-c")}
    for keys in agents.values():
        publisher.registry.add(enrollment_of(keys), ("example",), datetime.now(UTC))
    return config, store, issuer, publisher, agents


def _fetch(store, agent_id):
    index = store.get(f"agents/{agent_id}/index.json")
    assert isinstance(index, StoredObject)
    return index.body


def _open(store, issuer, keys, *, installed=None, index_of=None):
    index = _fetch(store, index_of or keys.agent_id)
    entry = parse_index(index).entry("example")
    sealed = store.get(f"agents/{index_of or keys.agent_id}/{entry.object_key}").body
    return verify_and_open(
        index,
        sealed,
        site="example",
        agent_id=keys.agent_id,
        agent_private_key=keys.box_key,
        issuer_public_key=issuer.signing_key.public_key(),
        installed_version=installed,
        hostnames=HOSTNAMES,
        now=datetime.now(UTC),
    )


def test_each_of_three_agents_opens_its_own_bundle_of_the_issued_certificate(fleet):
    config, store, issuer, publisher, agents = fleet

    cert = issue_and_publish(config, store, publisher).certificate

    assert load_site_state(store, "example").current.version == 1
    for keys in agents.values():
        opened = _open(store, issuer, keys)
        assert opened.version == 1
        assert opened.entry.cert_sha256 == cert.fingerprint_sha256
        assert opened.plaintext.key_pem.encode() == cert.key_pem
        assert opened.plaintext.chain_pem == cert.chain_pem


def test_an_agent_cannot_open_another_agents_bundle(fleet):
    config, store, issuer, publisher, agents = fleet
    issue_and_publish(config, store, publisher)
    b = agents["nas-b"]

    with pytest.raises(WrongAgent):
        _open(store, issuer, b, index_of="nas-a")
    entry = parse_index(_fetch(store, "nas-a")).entry("example")
    sealed = store.get(f"agents/nas-a/{entry.object_key}").body
    with pytest.raises(DecryptionFailed):
        open_sealed(sealed, recipient_id="nas-b", private_key=b.box_key, site="example", version=1)


def test_nothing_in_the_store_holds_the_plaintext_key(fleet):
    config, store, _issuer, publisher, _agents = fleet
    cert = issue_and_publish(config, store, publisher).certificate

    key_body = cert.key_pem.split(b"\n")[1]
    for info in store.list(""):
        body = store.get(info.key).body
        assert b"PRIVATE KEY" not in body, info.key
        assert key_body not in body, info.key


def test_a_new_issuance_is_the_next_version_and_old_bundles_go(fleet):
    config, store, issuer, publisher, agents = fleet
    issue_and_publish(config, store, publisher)

    outcome = issue_and_publish(config, store, publisher)

    assert outcome.version == 2
    assert load_site_state(store, "example").current.version == 2
    opened = _open(store, issuer, agents["nas-a"], installed=1)
    assert opened.version == 2
    assert [i.key for i in store.list("agents/nas-a/bundles/")] == [
        "agents/nas-a/bundles/example/2.sealed"
    ]
    assert [i.key for i in store.list("escrow/")] == ["escrow/example/2.sealed"]
    with pytest.raises(StaleVersion):
        _open(store, issuer, agents["nas-a"], installed=2)


def test_a_fourth_agent_gets_the_current_certificate_without_a_new_order(fleet, monkeypatch):
    config, store, issuer, publisher, _agents = fleet
    cert = issue_and_publish(config, store, publisher).certificate

    def no_orders(*_args, **_kwargs):
        raise AssertionError("adding an agent placed an ACME order")

    monkeypatch.setattr(AcmeClient, "new_order", no_orders)
    monkeypatch.setattr(AcmeClient, "connect", no_orders)
    late = generate_agent_keys("nas-d")
    record = publisher.registry.add(enrollment_of(late), ("example",), datetime.now(UTC))

    assert publisher.subscribe(record, ("example",)) == (["example"], {})

    opened = _open(store, issuer, late)
    assert opened.entry.cert_sha256 == cert.fingerprint_sha256
    assert opened.version == 1


def test_removing_an_agent_deletes_its_objects_and_registration(fleet):
    config, store, issuer, publisher, agents = fleet
    issue_and_publish(config, store, publisher)

    publisher.remove_agent("nas-b")

    assert list(store.list("agents/nas-b/")) == []
    assert publisher.registry.get("nas-b") is None
    assert _open(store, issuer, agents["nas-a"]).version == 1
    with pytest.raises(UnknownAgent):
        publisher.remove_agent("nas-b")


def test_withdrawing_a_site_removes_only_that_entry(fleet):
    config, store, _issuer, publisher, _agents = fleet
    issue_and_publish(config, store, publisher)

    publisher.withdraw("nas-c", "example")

    assert parse_index(_fetch(store, "nas-c")).entries == ()
    assert list(store.list("agents/nas-c/bundles/")) == []
