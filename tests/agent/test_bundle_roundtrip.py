"""Sealing, signing and opening bundles end to end, as the cloud and the agents use them."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization

from lab.sample_bundles import AGENTS, SITE, make_world
from lab.sample_pki import NAMES, NOW
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    build_index,
    make_plaintext,
    name_covers,
    open_sealed,
    parse_index,
    seal,
    verify_entry,
)
from nas_agent.bundle.plaintext import decode_plaintext, encode_plaintext
from nas_agent.errors import DecryptionFailed, StaleVersion, WrongAgent


@pytest.fixture(scope="module")
def world():
    return make_world()


def test_each_of_three_agents_opens_its_own_bundle(world):
    plaintext = world.plaintext(version=3)
    for agent_id in AGENTS:
        published = world.publish(plaintext, agent_id)
        opened = world.open_published(agent_id, published)
        assert (opened.site, opened.version) == (SITE, 3)
        assert opened.plaintext == plaintext
        assert opened.material.names == tuple(sorted(NAMES))
        assert opened.entry.agent_id == agent_id


def test_the_same_bundle_is_sealed_differently_for_each_agent(world):
    plaintext = world.plaintext()
    sealed = {world.publish(plaintext, agent_id).sealed for agent_id in AGENTS}
    assert len(sealed) == len(AGENTS)


def test_agent_b_cannot_open_the_object_sealed_for_agent_a(world):
    sealed = world.publish(world.plaintext(), "nas-a").sealed
    for recipient_id in ("nas-a", "nas-b"):
        with pytest.raises(DecryptionFailed):
            open_sealed(
                sealed,
                recipient_id=recipient_id,
                private_key=world.agents["nas-b"].box_key,
                site=SITE,
                version=1,
            )


def test_an_object_opens_only_for_the_recipient_site_and_version_it_was_sealed_for(world):
    sealed = world.publish(world.plaintext(version=5), "nas-a").sealed
    key = world.agents["nas-a"].box_key
    for recipient_id, site, version in (
        ("nas-b", SITE, 5),
        ("nas-a", "other.test", 5),
        ("nas-a", SITE, 4),
    ):
        with pytest.raises(DecryptionFailed):
            open_sealed(
                sealed, recipient_id=recipient_id, private_key=key, site=site, version=version
            )
    opened = open_sealed(sealed, recipient_id="nas-a", private_key=key, site=SITE, version=5)
    assert opened.version == 5


def test_the_escrow_copy_opens_with_the_escrow_key_and_reseals_for_a_new_agent(world):
    plaintext = world.plaintext(version=2)
    escrow = seal(
        plaintext,
        recipient_id=ESCROW_RECIPIENT,
        recipient_public_key=world.issuer.escrow_key.public_key(),
    )
    recovered = open_sealed(
        escrow,
        recipient_id=ESCROW_RECIPIENT,
        private_key=world.issuer.escrow_key,
        site=SITE,
        version=2,
    )
    assert recovered == plaintext
    opened = world.open_published("nas-c", world.publish(recovered, "nas-c"))
    assert opened.plaintext.key_pem == plaintext.key_pem


def test_one_index_carries_an_entry_per_site_and_each_opens(world):
    first = world.publish(world.plaintext(site="example.test", version=7), "nas-a")
    second = world.publish(world.plaintext(site="other-site", version=2), "nas-a")
    index_bytes = build_index([second.entry, first.entry])
    assert parse_index(index_bytes).sites == ("example.test", "other-site")
    for published in (first, second):
        opened = world.open("nas-a", index_bytes, published.sealed, site=published.entry.site)
        assert opened.version == published.entry.version


def test_the_entry_binds_the_certificate_and_the_sealed_object(world):
    plaintext = world.plaintext(version=9)
    published = world.publish(plaintext, "nas-b")
    entry = parse_index(build_index([published.entry])).entry(SITE)
    assert entry == published.entry
    assert entry.object_key == f"bundles/{SITE}/9.sealed"
    assert entry.object_sha256 == hashlib.sha256(published.sealed).hexdigest()
    assert entry.not_after == plaintext.not_after
    leaf = world.open_published("nas-b", published).material.leaf
    assert (
        entry.cert_sha256
        == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    )


def test_an_agent_can_check_an_entry_before_downloading_its_object(world):
    published = world.publish(world.plaintext(version=4), "nas-a")
    entry = parse_index(build_index([published.entry])).entry(SITE)
    public = world.issuer.signing_key.public_key()
    assert (
        verify_entry(entry, agent_id="nas-a", issuer_public_key=public, installed_version=3)
        == entry
    )
    with pytest.raises(WrongAgent):
        verify_entry(entry, agent_id="nas-b", issuer_public_key=public, installed_version=None)


def test_the_installed_version_again_is_up_to_date_and_an_older_one_is_a_replay(world):
    published = world.publish(world.plaintext(version=4), "nas-a")
    with pytest.raises(StaleVersion) as same:
        world.open_published("nas-a", published, installed_version=4)
    assert same.value.up_to_date
    with pytest.raises(StaleVersion) as older:
        world.open_published("nas-a", published, installed_version=5)
    assert not older.value.up_to_date
    assert (older.value.version, older.value.installed_version) == (4, 5)
    assert world.open_published("nas-a", published, installed_version=3).version == 4


def test_rsa_and_p384_bundles_open_too(world):
    for key_type in ("rsa2048", "ec384"):
        published = world.publish(world.plaintext(key_type=key_type), "nas-a")
        assert world.open_published("nas-a", published).plaintext.key_pem.startswith(
            "-----BEGIN PRIVATE KEY-----"
        )


def test_a_bundle_opens_at_the_edges_of_its_validity(world):
    plaintext = world.plaintext()
    published = world.publish(plaintext, "nas-a")
    for now in (plaintext.not_before, plaintext.not_after):
        assert world.open_published("nas-a", published, now=now).version == 1


def test_configured_hostnames_match_case_insensitively_and_with_a_trailing_dot(world):
    published = world.publish(world.plaintext(), "nas-a")
    opened = world.open_published(
        "nas-a", published, hostnames=("NAS.Example.Test.", "example.test")
    )
    assert opened.version == 1


def test_wildcards_cover_exactly_one_leftmost_label():
    assert name_covers("*.example.com", "nas.example.com")
    assert name_covers("*.Example.COM", "NAS.example.com")
    assert not name_covers("*.example.com", "a.b.example.com")
    assert not name_covers("*.example.com", "example.com")
    assert not name_covers("*.example.com", ".example.com")
    assert not name_covers("*.example.com", "nas.example.org")
    assert not name_covers("nas*.example.com", "nas1.example.com")
    assert not name_covers("*.*.example.com", "a.b.example.com")
    assert name_covers("example.com", "example.com.")
    assert name_covers("*.example.com", "*.example.com")


def test_the_plaintext_encoding_round_trips_and_is_canonical(world):
    plaintext = world.plaintext(version=12)
    data = encode_plaintext(plaintext)
    assert decode_plaintext(data) == plaintext
    document = json.loads(data)
    assert json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii") == data
    assert document["format"] == "certdrop-bundle-v1"


def test_no_repr_shows_the_private_key(world):
    plaintext = world.plaintext()
    opened = world.open_published("nas-a", world.publish(plaintext, "nas-a"))
    body = plaintext.key_pem.splitlines()[1]
    for shown in (repr(plaintext), repr(opened), repr(opened.material), str(opened)):
        assert body not in shown and "PRIVATE KEY" not in shown


def test_issued_at_is_kept_in_whole_seconds_utc(world):
    issued = world.pki.issue()
    paris = timezone(timedelta(hours=1))
    moment = (NOW + timedelta(microseconds=700_000)).astimezone(paris)
    plaintext = make_plaintext(
        site=SITE,
        version=1,
        key_pem=issued.key_pem,
        leaf_pem=issued.leaf_pem,
        chain_pem=issued.chain_pem,
        issued_at=moment,
    )
    assert plaintext.issued_at == NOW and plaintext.issued_at.utcoffset() == timedelta(0)
    assert decode_plaintext(encode_plaintext(plaintext)).issued_at == NOW
