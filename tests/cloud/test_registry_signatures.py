"""Registry records are the issuer's word (DESIGN §8): whoever can write `state/agents/` cannot
choose the keys a bundle is sealed to. Driven through the CLI against Pebble and BIND."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cloud.cli.exit_codes import EXIT_OK
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.status import collect
from cloud.keys.issuer import load_issuer
from cloud.pipeline import parts
from cloud.store import StoredObject
from lab.issuer_config import bind_config
from nas_agent import store_layout
from nas_agent._encoding import b64url_encode, canonical_json
from nas_agent.bundle import open_sealed
from nas_agent.enrollment import enrollment_of
from nas_agent.errors import AgentError
from nas_agent.keys import generate_agent_keys, generate_issuer_keys, key_id
from tests.cloud.test_cli_issue import _run


@pytest.fixture
def issued(tmp_path, pebble, bind_auth):
    """`init`, agents nas-1 and nas-2 added for example, version 1 issued to both."""
    config = bind_config(tmp_path, pebble, bind_auth)
    agents = {a: generate_agent_keys(a) for a in ("nas-1", "nas-2")}
    assert _run("--config", config.source, "init").returncode == EXIT_OK
    for keys in agents.values():
        token = enrollment_of(keys).token()
        added = _run("--config", config.source, "agent", "add", token, "--site", "example")
        assert added.returncode == EXIT_OK, added.stderr
    first = _run("--config", config.source, "issue", "example")
    assert first.returncode == EXIT_OK, first.stderr
    return config, parts.store(config), agents


def _rogue_record(token: str, *, signed_by_attacker: bool) -> bytes:
    """nas-1's record with the attacker's token: as written before records were signed, or
    signed in the record's format by a key of the attacker's own."""
    body = {
        "id": "nas-1",
        "token": token,
        "sites": ["example"],
        "added_at": "2025-01-01T00:00:00+00:00",
    }
    if signed_by_attacker:
        key = generate_issuer_keys().signing_key
        kid = key_id(key.public_key())
        content = {**body, "issuer_key_id": kid}
        signed = b"certdrop registry record v1\n" + canonical_json(content)
        body = {**content, "signature": b64url_encode(key.sign(signed))}
    return json.dumps(body).encode()


def _opened_by(store, agent_id: str, box_key) -> list[int]:
    """The versions under agents/<agent_id>/ that `box_key` opens."""
    opened = []
    for info in store.list(store_layout.agent_bundles(agent_id, "example")):
        version = int(info.key.rsplit("/", 1)[1].split(".")[0])
        found = store.get(info.key)
        assert isinstance(found, StoredObject)
        try:
            open_sealed(
                found.body, recipient_id=agent_id, private_key=box_key, site="example",
                version=version,
            )  # fmt: skip
        except AgentError:
            continue
        opened.append(version)
    return opened


@pytest.mark.parametrize(
    ("signed_by_attacker", "code"),
    [(False, "registry.record_unsigned"), (True, "registry.record_tampered")],
)
def test_a_rogue_enrollment_written_into_the_registry_gets_nothing_sealed_to_it(
    issued, signed_by_attacker, code
):
    config, store, agents = issued
    attacker = generate_agent_keys("nas-1")
    rogue = _rogue_record(enrollment_of(attacker).token(), signed_by_attacker=signed_by_attacker)
    store.put(store_layout.registry_record("nas-1"), rogue)

    renewed = _run("--config", config.source, "issue", "example")
    listed = _run("--config", config.source, "agent", "list")
    status = _run("--config", config.source, "status")

    assert _opened_by(store, "nas-1", attacker.box_key) == []
    assert _opened_by(store, "nas-1", agents["nas-1"].box_key) == [1]  # nothing new at all
    assert _opened_by(store, "nas-2", agents["nas-2"].box_key) == [2]  # the others still get it
    assert "not yet delivered to nas-1" in renewed.stdout
    assert code in renewed.stderr  # logged where it was refused
    assert code in listed.stdout
    assert code in status.stdout
    now = datetime.now(UTC)
    alerts = [a for a in evaluate(collect(config, store, now), now) if a.site == "example"]
    pending = [a for a in alerts if a.kind == "delivery_pending"]
    assert len(pending) == 1 and code in pending[0].message and "nas-1" in pending[0].message


def test_a_record_written_before_signing_is_refused_until_added_again(issued):
    config, store, agents = issued
    key = store_layout.registry_record("nas-1")
    old_style = json.loads(store.get(key).body)
    del old_style["issuer_key_id"], old_style["signature"]
    store.put(key, json.dumps(old_style).encode())

    refused = _run("--config", config.source, "issue", "example")
    token = enrollment_of(agents["nas-1"]).token()
    readded = _run("--config", config.source, "agent", "add", token, "--site", "example")
    listed = _run("--config", config.source, "agent", "list")

    assert "not yet delivered to nas-1" in refused.stdout
    assert readded.returncode == EXIT_OK, readded.stderr
    assert "registry.record_unsigned" in readded.stdout
    assert "delivered current certificates of: example" in readded.stdout
    assert _opened_by(store, "nas-1", agents["nas-1"].box_key) == [2]
    assert "registry.record" not in listed.stdout and "signed" in listed.stdout


def test_agent_resign_signs_a_record_as_the_store_holds_it(issued):
    config, store, _agents = issued
    key = store_layout.registry_record("nas-2")
    old_style = json.loads(store.get(key).body)
    del old_style["issuer_key_id"], old_style["signature"]
    store.put(key, json.dumps(old_style).encode())

    resigned = _run("--config", config.source, "agent", "resign", "nas-2")
    renewed = _run("--config", config.source, "issue", "example")

    assert resigned.returncode == EXIT_OK, resigned.stderr
    assert renewed.returncode == EXIT_OK, renewed.stdout + renewed.stderr
    assert "not yet delivered" not in renewed.stdout


def test_site_remove_leaves_the_remaining_records_signed(issued):
    config, store, _agents = issued

    removed = _run("--config", config.source, "site", "remove", "example")
    listed = _run("--config", config.source, "agent", "list")

    assert removed.returncode == EXIT_OK, removed.stderr
    issuer = load_issuer(parts.keystore(config))
    publisher = parts.publisher(config, store)
    for agent_id in ("nas-1", "nas-2"):
        record = publisher.registry.require(agent_id)
        assert record.sites == ()
        publisher.registry.verify(record)  # raises unless the issuer signed it
        assert record.issuer_key_id == key_id(issuer.signing_key.public_key())
    assert listed.stdout.count("signed") == 2


def test_a_record_copied_into_another_agents_place_speaks_for_neither(issued):
    # Signed for nas-1, it verifies wherever it lies: a copy at nas-2's place made
    # `agent resign nas-2` (or set_sites) rewrite nas-1's record (noted by the review). It reads
    # as no record: commands for nas-2 find none, and `agent add` replaces it.
    config, store, agents = issued
    nas1 = store.get(store_layout.registry_record("nas-1"))
    assert isinstance(nas1, StoredObject)
    store.put(store_layout.registry_record("nas-2"), nas1.body)
    registry = parts.publisher(config, store).registry

    assert registry.get("nas-2") is None
    assert [r.agent_id for r in registry.all()] == ["nas-1"]
    resign = _run("--config", config.source, "agent", "resign", "nas-2")
    assert resign.returncode != EXIT_OK and "nas-2" in resign.stderr
    assert store.get(store_layout.registry_record("nas-1")).body == nas1.body
    token = enrollment_of(agents["nas-2"]).token()
    again = _run("--config", config.source, "agent", "add", token, "--site", "example")
    assert again.returncode == EXIT_OK, again.stderr
    assert registry.get("nas-2").agent_id == "nas-2"
