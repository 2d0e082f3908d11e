"""A store writer without issuer keys and the sealed `order_key` in the unsigned site state:
anyone with the escrow public key (a line `init` prints) can seal a key of their own there. A
resumed order not finalized yet now gets a fresh key, so the CA never certifies the planted one;
a finalized order whose kept key is not its certificate's is dropped, not resumed for ever.
(From an independent review: the first test failed before the fix.)"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.client import AcmeClient
from cloud.errors import AcmeError
from cloud.pipeline.site_state import load_site_state, save_site_state
from cloud.publish.order_keys import seal_order_key
from cloud.store import StoredObject
from lab.issuer_config import bind_config
from nas_agent import store_layout
from nas_agent.bundle import open_sealed, parse_index
from tests.cloud.issuing import enroll_agents
from tests.cloud.test_exactly_once_repeated_faults import _run


@pytest.fixture
def fleet(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    store, issuer, (keys,) = enroll_agents(config)
    return config, store, keys, issuer.escrow_key.public_key()


def test_a_store_writer_cannot_choose_the_key_a_resumed_order_is_finalized_with(fleet, monkeypatch):
    config, store, agent_keys, escrow_public = fleet
    original = AcmeClient.finalize
    calls = {"n": 0}

    def lost_before_finalize(self, orderr, deadline):
        calls["n"] += 1
        if calls["n"] == 1:  # run A: dies (a CA 5xx) before the CSR reaches the CA
            raise AcmeError("serverInternal", "injected: finalize failed", transient=True)
        return original(self, orderr, deadline)

    monkeypatch.setattr(AcmeClient, "finalize", lost_before_finalize)
    first = _run(config, store)
    assert first.result == "failed"
    state = load_site_state(store, "example")
    assert state is not None and state.order_url is not None and state.order_key is not None

    # The attacker, holding only the escrow PUBLIC key, swaps in a key of their own.
    attacker_key = ec.generate_private_key(ec.SECP256R1())
    attacker_pem = attacker_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    forged = seal_order_key(attacker_pem, escrow_public, "example", state.order_url)
    save_site_state(store, dataclasses.replace(state, order_key=forged))

    second = _run(config, store, hours_later=6)  # the next run, after the backoff
    assert second.result == "issued", second.reason

    # What the agent receives: the CA's certificate, and the attacker's key with it.
    index = parse_index(store.get(store_layout.agent_index("nas-a")).body)
    entry = index.entries[0]
    sealed = store.get(store_layout.agent_prefix("nas-a") + entry.object_key)
    assert isinstance(sealed, StoredObject)
    plaintext = open_sealed(
        sealed.body, recipient_id="nas-a", private_key=agent_keys.box_key,
        site="example", version=entry.version,
    )  # fmt: skip
    leaf = x509.load_pem_x509_certificate(plaintext.leaf_pem.encode())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    to_attacker = leaf.public_key().public_bytes(*spki) == attacker_key.public_key().public_bytes(
        *spki
    )
    assert not to_attacker, "the CA issued the site's certificate to the attacker's key"


def test_a_finalized_order_whose_kept_key_was_swapped_is_dropped_and_ordered_anew(
    fleet, pebble, monkeypatch
):
    config, store, _agent_keys, escrow_public = fleet
    original = AcmeClient.finalize
    calls = {"n": 0}

    def download_lost(self, orderr, deadline):
        calls["n"] += 1
        finished = original(self, orderr, deadline)
        if calls["n"] == 1:  # run A: the CA issued, the download is lost
            raise AcmeError("serverInternal", "injected: download failed", transient=True)
        return finished

    monkeypatch.setattr(AcmeClient, "finalize", download_lost)
    assert _run(config, store).result == "failed"
    state = load_site_state(store, "example")
    assert state is not None and state.order_url is not None and state.order_key is not None
    attacker_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    forged = seal_order_key(attacker_pem, escrow_public, "example", state.order_url)
    save_site_state(store, dataclasses.replace(state, order_key=forged))

    second = _run(config, store, hours_later=6)
    dropped = load_site_state(store, "example")
    third = _run(config, store, hours_later=12)

    assert (second.result, second.error.code) == ("failed", "issuance.kept_key_mismatch")
    assert dropped.order_url is None and dropped.order_key is None
    assert third.result == "issued", third.reason


def test_a_kept_order_key_that_does_not_open_is_as_none(fleet, monkeypatch):
    # Not sealed by the issuer (noted by the review: its InvalidTag ended every run): the order
    # is not resumed with it, a new one is placed and issued.
    config, store, _agent_keys, _escrow_public = fleet
    original = AcmeClient.finalize
    calls = {"n": 0}

    def download_lost(self, orderr, deadline):
        calls["n"] += 1
        finished = original(self, orderr, deadline)
        if calls["n"] == 1:
            raise AcmeError("serverInternal", "injected: download failed", transient=True)
        return finished

    monkeypatch.setattr(AcmeClient, "finalize", download_lost)
    assert _run(config, store).result == "failed"
    state = load_site_state(store, "example")
    save_site_state(store, dataclasses.replace(state, order_key="bm90IHNlYWxlZA"))

    again = _run(config, store, hours_later=6)

    assert again.result == "issued", again.reason
