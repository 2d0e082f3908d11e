"""What the issuer accepts as its own signature: only keys it holds (the key store), never a
key the rotation chain in the (untrusted) store names. From an independent review."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.keys.issuer import init_issuer
from cloud.keys.rotation import CHAIN_FORMAT
from cloud.keys.store import LocalKeyStore
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRecord
from cloud.store.local import LocalStore
from nas_agent import store_layout
from nas_agent._encoding import b64url_encode
from nas_agent.bundle.rotation import sign_rotation
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys, raw_public_bytes

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_key_a_store_writer_puts_at_the_head_of_the_chain_signs_no_registry_record(tmp_path):
    store = LocalStore(tmp_path / "store")
    issuer = init_issuer(LocalKeyStore(tmp_path / "keys"))
    attacker = ed25519.Ed25519PrivateKey.generate()
    # A chain that starts at the attacker's key and ends, genuinely, at the issuer's.
    statement = sign_rotation(attacker, issuer.signing_key.public_key(), sequence=1, issued_at=NOW)
    chain = {
        "format": CHAIN_FORMAT,
        "origin_key": b64url_encode(raw_public_bytes(attacker.public_key())),
        "rotations": [statement.to_json()],
    }
    store.put(store_layout.ISSUER_ROTATIONS, json.dumps(chain).encode())
    rogue_keys = generate_agent_keys("nas-1")
    rogue = AgentRecord("nas-1", enrollment_of(rogue_keys).token(), ("example",), NOW).signed_with(
        attacker
    )
    store.put(store_layout.registry_record("nas-1"), rogue.to_json())

    publisher = Publisher(store, issuer)
    record = publisher.registry.require("nas-1")

    assert publisher.registry.problem(record) is not None
    assert publisher.registry.resign_all() == 0  # and it is not vouched for by re-signing
