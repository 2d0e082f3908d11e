"""Index v2 and key rotation chains, as the agent reads them: every refusal by its class."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab.sample_bundles import NOW, make_world
from nas_agent.bundle import entry_for, parse_index, sign_index, verify_entry, verify_index
from nas_agent.bundle.rotation import IssuerTrust, RotationStatement, follow_chain, sign_rotation
from nas_agent.errors import (
    BadSignature,
    BundleError,
    IndexExpired,
    IndexRolledBack,
    MalformedIndex,
    RotationFork,
    RotationInvalid,
    UnknownIssuerKey,
    UnsupportedFormat,
    WrongAgent,
)
from nas_agent.keys import key_id

WORLD = make_world()
ISSUER = WORLD.issuer.signing_key
PLAINTEXT = WORLD.plaintext(version=3)
SEALED = WORLD.publish(PLAINTEXT, "nas-a").sealed


def _entry(agent_id: str = "nas-a", key: ed25519.Ed25519PrivateKey = ISSUER):
    return entry_for(PLAINTEXT, SEALED, agent_id=agent_id, issuer_key_id=key_id(key.public_key()))


def _index(*, agent_id: str = "nas-a", key=ISSUER, issued=NOW, days=7, rotations=()) -> bytes:
    return sign_index(
        [_entry(agent_id, key)],
        agent_id=agent_id,
        signing_key=key,
        issued_at=issued,
        expires_at=issued + timedelta(days=days),
        rotations=rotations,
    )


def _verify(data: bytes, *, now=NOW, agent_id="nas-a", accepted=None, key=ISSUER):
    index = parse_index(data)
    return verify_index(
        index,
        agent_id=agent_id,
        issuer_public_key=key.public_key(),
        now=now,
        accepted_issued_at=accepted,
    )


def test_a_signed_index_verifies_and_its_entry_too():
    index = _verify(_index())
    entry = verify_entry(
        index.entry(PLAINTEXT.site),
        agent_id="nas-a",
        issuer_public_key=ISSUER.public_key(),
        installed_version=2,
    )
    assert (entry.version, entry.custody, entry.kind) == (3, "issuer", "certdrop-bundle-v1")
    assert index.expires_at == NOW + timedelta(days=7)


def test_an_expired_index_is_refused_at_its_expiry():
    with pytest.raises(IndexExpired):
        _verify(_index(), now=NOW + timedelta(days=7))
    _verify(_index(), now=NOW + timedelta(days=7) - timedelta(seconds=1))


def test_an_index_signed_before_the_accepted_one_is_rolled_back():
    with pytest.raises(IndexRolledBack):
        _verify(_index(), accepted=NOW + timedelta(seconds=1))
    _verify(_index(), accepted=NOW)  # the same index again is fine


def test_an_index_for_another_agent_is_refused():
    with pytest.raises(WrongAgent):
        _verify(_index(agent_id="nas-b"))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["signed"].update(expires_at="2099-01-01T00:00:00Z"),  # extend its life
        lambda d: d["signed"].update(issued_at="2026-01-01T00:00:00Z"),
        lambda d: d["signed"]["entries"][0].update(
            version=4, object="bundles/example.test/4.sealed"
        ),
        lambda d: d["signed"]["entries"][0].update(custody="agent"),
        lambda d: d["signed"]["entries"].clear(),  # withhold the entry
    ],
)
def test_any_change_to_the_signed_part_breaks_the_one_signature(change):
    document = json.loads(_index())
    change(document)
    with pytest.raises(BadSignature):
        _verify(json.dumps(document).encode(), now=NOW + timedelta(days=1))


def test_entries_cannot_be_carried_from_one_index_into_a_newer_one():
    older = json.loads(_index())
    newer = json.loads(
        sign_index(
            [],
            agent_id="nas-a",
            signing_key=ISSUER,
            issued_at=NOW + timedelta(days=1),
            expires_at=NOW + timedelta(days=8),
        )
    )
    newer["signed"]["entries"] = older["signed"]["entries"]
    with pytest.raises(BadSignature):
        _verify(json.dumps(newer).encode(), now=NOW + timedelta(days=1))


def test_an_entry_of_a_custody_this_agent_cannot_open_is_refused_for_its_site_only():
    entry = dataclasses.replace(_entry(), custody="agent")
    data = sign_index(
        [entry],
        agent_id="nas-a",
        signing_key=ISSUER,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    index = _verify(data)
    with pytest.raises(UnsupportedFormat):
        verify_entry(
            index.entries[0],
            agent_id="nas-a",
            issuer_public_key=ISSUER.public_key(),
            installed_version=None,
        )


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("rotations"),
        lambda d: d["signed"].update(expires_at=d["signed"]["issued_at"]),
        lambda d: d["signed"]["entries"][0].update(kind="x"),
        lambda d: d["signed"]["entries"][0].update(custody="nobody"),
        lambda d: d["signed"].update(extra=1),
        lambda d: d.update(signature="AAAA"),
    ],
)
def test_malformed_v2_indexes_are_refused_before_any_signature_check(change):
    document = json.loads(_index())
    change(document)
    with pytest.raises(MalformedIndex):
        parse_index(json.dumps(document).encode())


# --- rotation chains -------------------------------------------------------------------------

K1 = ed25519.Ed25519PrivateKey.generate()
K2 = ed25519.Ed25519PrivateKey.generate()
R1 = sign_rotation(ISSUER, K1.public_key(), sequence=1, issued_at=NOW)
R2 = sign_rotation(K1, K2.public_key(), sequence=2, issued_at=NOW)


def _chain(*statements):
    return parse_index(_index(key=K2, rotations=statements)).rotations


def test_the_chain_leads_from_the_configured_key_to_the_newest():
    followed = follow_chain(ISSUER.public_key(), _chain(R1, R2))
    assert followed.key_id == key_id(K2.public_key())
    assert followed.trust.sequence == 2
    # An agent enrolled after rotation 1 pins K1 and walks from there.
    later = follow_chain(K1.public_key(), _chain(R1, R2))
    assert later.key_id == key_id(K2.public_key())
    assert later.trust.anchor_key_id == key_id(K1.public_key())


def test_a_statement_not_signed_by_the_key_it_retires_is_refused():
    forged = sign_rotation(K2, K1.public_key(), sequence=1, issued_at=NOW)
    forged = dataclasses.replace(forged, previous_key_id=key_id(ISSUER.public_key()))
    with pytest.raises(RotationInvalid):
        follow_chain(ISSUER.public_key(), _chain(forged))


def test_a_second_successor_of_a_key_the_agent_followed_is_a_fork():
    remembered = IssuerTrust(key_id(ISSUER.public_key()), 1, key_id(K1.public_key()))
    other = ed25519.Ed25519PrivateKey.generate()
    fork = sign_rotation(ISSUER, other.public_key(), sequence=1, issued_at=NOW)
    with pytest.raises(RotationFork):
        follow_chain(ISSUER.public_key(), _chain(fork), remembered=remembered)


def test_a_chain_shorter_than_the_one_followed_is_refused():
    remembered = IssuerTrust(key_id(ISSUER.public_key()), 2, key_id(K2.public_key()))
    with pytest.raises(RotationFork):
        follow_chain(ISSUER.public_key(), _chain(R1), remembered=remembered)


def test_a_chain_that_never_names_the_configured_key_is_refused():
    stranger = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(UnknownIssuerKey):
        follow_chain(stranger.public_key(), _chain(R1, R2))


def test_statements_out_of_sequence_do_not_parse():
    document = json.loads(_index(key=K2, rotations=(R1, R2)))
    document["rotations"].reverse()
    with pytest.raises(MalformedIndex):
        parse_index(json.dumps(document).encode())


def test_every_refusal_here_is_a_bundle_refusal():
    for cls in (IndexExpired, IndexRolledBack, RotationFork, RotationInvalid):
        assert issubclass(cls, BundleError) and cls.code.startswith("bundle.")


def test_a_chain_naming_the_anchor_further_on_cannot_walk_the_agent_back_to_a_retired_key():
    """Review finding: statements before the anchor are never verified, so a forged chain that
    names the configured key again at its end must not become a new starting point."""
    followed = follow_chain(ISSUER.public_key(), _chain(R1, R2))  # honest: at K2, anchor at 0
    junk = ed25519.Ed25519PrivateKey.generate()

    def unsigned(sequence, new_key):
        return RotationStatement(
            sequence=sequence,
            previous_key_id="0" * 16,
            new_key=new_key,
            new_key_id=key_id(new_key),
            issued_at=NOW,
            signature=b"\0" * 64,
        )

    forged = (
        unsigned(1, junk.public_key()),
        unsigned(2, K2.public_key()),
        unsigned(3, ISSUER.public_key()),  # "the anchor is here": the retired key follows it
    )
    with pytest.raises(RotationFork):
        follow_chain(ISSUER.public_key(), forged, remembered=followed.trust)
