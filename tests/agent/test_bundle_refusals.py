"""The tamper suite: every way a bundle can be wrong is refused, each with its own error class.

`refused(cls, ...)` asserts the exact class, not a subclass or a parent, so a check that fires for
the wrong reason fails the test.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab.sample_bundles import SITE, Published, make_world, resign, seal_raw
from lab.sample_pki import NOW, cert_pem, key_pem, make_pki, new_key
from nas_agent.bundle import build_index, sign_entry, verify_entry
from nas_agent.bundle.plaintext import encode_plaintext
from nas_agent.errors import (
    BadSignature,
    BundleError,
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    ContentMismatch,
    DecryptionFailed,
    KeyMismatch,
    MalformedIndex,
    MalformedPlaintext,
    MalformedSealedObject,
    NamesNotCovered,
    SealedHashMismatch,
    SiteNotInIndex,
    StaleVersion,
    UnknownIssuerKey,
    UnsupportedFormat,
    WrongAgent,
)

# Regions of a v1 sealed object: magic, format version, HPKE enc, ciphertext body, tag.
REGIONS = {
    "magic": range(0, 4),
    "version": range(4, 5),
    "enc": range(5, 37),
    "body": range(37, 60),
    "tag": range(-16, 0),
}
ON_RESIGNED_OBJECT = {
    "magic": MalformedSealedObject,
    "version": UnsupportedFormat,
    "enc": DecryptionFailed,
    "body": DecryptionFailed,
    "tag": DecryptionFailed,
}


@pytest.fixture(scope="module")
def world():
    return make_world()


@pytest.fixture(scope="module")
def plaintext(world):
    return world.plaintext(version=2)


@pytest.fixture(scope="module")
def published(world, plaintext):
    return world.publish(plaintext, "nas-a")


def refused(cls, call, *args, **kwargs) -> BundleError:
    with pytest.raises(BundleError) as caught:
        call(*args, **kwargs)
    assert type(caught.value) is cls, f"expected {cls.__name__}, got {caught.value!r}"
    return caught.value


def flip(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


def forge(world, plaintext, *, sealed=None, **entry_changes) -> Published:
    """Publish for nas-a as an issuer that seals and signs whatever it is handed."""
    if sealed is None:
        sealed = world.publish(plaintext, "nas-a").sealed
    entry = sign_entry(plaintext, sealed, agent_id="nas-a", signing_key=world.issuer.signing_key)
    return Published(resign(entry, world.issuer.signing_key, **entry_changes), sealed)


def forge_opened_bytes(world, data: bytes) -> Published:
    """An object that opens to `data`, sealed for nas-a (site, version 2) and signed."""
    agent = world.agents["nas-a"].box_key.public_key()
    sealed = seal_raw(data, agent, recipient_id="nas-a", site=SITE, version=2)
    return forge(world, world.plaintext(version=2), sealed=sealed)


# The sealed object


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_any_flipped_bit_in_the_sealed_object_breaks_its_signed_hash(world, published, region):
    index_bytes = build_index([published.entry])
    for position in REGIONS[region]:
        tampered = flip(published.sealed, position)
        refused(SealedHashMismatch, world.open, "nas-a", index_bytes, tampered)


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_a_tampered_object_signed_anyway_is_refused_by_its_region(
    world, plaintext, published, region
):
    for position in REGIONS[region]:
        forged = forge(world, plaintext, sealed=flip(published.sealed, position))
        refused(ON_RESIGNED_OBJECT[region], world.open_published, "nas-a", forged)


@pytest.mark.parametrize("length", [0, 5, 36, 52])
def test_a_truncated_object_signed_anyway_is_malformed(world, plaintext, published, length):
    forged = forge(world, plaintext, sealed=published.sealed[:length])
    refused(MalformedSealedObject, world.open_published, "nas-a", forged)


def test_an_object_sealed_for_another_agent_and_signed_for_this_one_does_not_open(world, plaintext):
    forged = forge(world, plaintext, sealed=world.publish(plaintext, "nas-b").sealed)
    refused(DecryptionFailed, world.open_published, "nas-a", forged)


# The index


def test_changing_any_signed_field_breaks_the_signature(world, published):
    document = json.loads(build_index([published.entry]))
    other_hash = "0" * 64
    changes = {
        "agent": "nas-b",
        "version": 3,
        "cert_sha256": other_hash,
        "object_sha256": other_hash,
        "not_after": "2030-01-01T00:00:00Z",
    }
    for name, value in changes.items():
        entry = dict(document["entries"][0], **{name: value})
        if name == "version":
            entry["object"] = f"bundles/{SITE}/3.sealed"
        tampered = json.dumps({"format": document["format"], "entries": [entry]}).encode()
        refused(BadSignature, world.open, "nas-a", tampered, published.sealed)


def test_renaming_the_site_in_the_index_breaks_the_signature(world, published):
    document = json.loads(build_index([published.entry]))
    entry = dict(document["entries"][0], site="other.test", object="bundles/other.test/2.sealed")
    tampered = json.dumps({"format": document["format"], "entries": [entry]}).encode()
    refused(SiteNotInIndex, world.open, "nas-a", tampered, published.sealed)
    refused(BadSignature, world.open, "nas-a", tampered, published.sealed, site="other.test")


def test_every_flipped_bit_in_the_signature_is_refused(world, published):
    for position in range(64):
        signature = flip(published.entry.signature, position)
        entry = dataclasses.replace(published.entry, signature=signature)
        refused(BadSignature, world.open, "nas-a", build_index([entry]), published.sealed)


def test_every_flipped_bit_in_index_json_is_refused(world, published):
    index_bytes = build_index([published.entry])
    index_stage = {
        MalformedIndex,
        BadSignature,
        UnknownIssuerKey,
        SiteNotInIndex,
        UnsupportedFormat,
    }
    for position in range(len(index_bytes)):
        with pytest.raises(BundleError) as caught:
            world.open("nas-a", flip(index_bytes, position), published.sealed)
        assert type(caught.value) in index_stage, (position, caught.value)


def test_an_index_that_is_not_an_index_is_malformed(world, published):
    good = json.loads(build_index([published.entry]))
    entry = good["entries"][0]
    cases = [
        b"",
        b"[]",
        b"\xff\xfe{}",
        b'{"format": "certdrop-index-v1", "entries": {}}',
        b'{"format": "certdrop-index-v1", "format": "certdrop-index-v1", "entries": []}',
        b'{"format": "certdrop-index-v1", "entries": [], "extra": 1}',
        json.dumps({"format": "certdrop-index-v1", "entries": [entry, entry]}).encode(),
        json.dumps({"format": "certdrop-index-v1", "entries": [dict(entry, extra=1)]}).encode(),
        json.dumps({"format": "certdrop-index-v1", "entries": [dict(entry, version=2.0)]}).encode(),
        json.dumps(
            {"format": "certdrop-index-v1", "entries": [dict(entry, version=True)]}
        ).encode(),
        json.dumps(
            {"format": "certdrop-index-v1", "entries": [dict(entry, object="../x")]}
        ).encode(),
        json.dumps(
            {"format": "certdrop-index-v1", "entries": [dict(entry, signature="AA")]}
        ).encode(),
        b"[" * 100_000,
        b" " * (1024 * 1024 + 1),
    ]
    for case in cases:
        refused(MalformedIndex, world.open, "nas-a", case, published.sealed)


def test_an_index_of_a_future_format_asks_for_an_upgrade(world, published):
    document = json.loads(build_index([published.entry]))
    document["format"] = "certdrop-index-v3"
    error = refused(UnsupportedFormat, world.open, "nas-a", json.dumps(document).encode(), b"")
    assert error.found == "certdrop-index-v3"


def test_an_index_without_the_site_says_so(world, published):
    error = refused(
        SiteNotInIndex, world.open, "nas-a", build_index([published.entry]), b"", site="else.test"
    )
    assert (error.site, error.agent_id) == ("else.test", "nas-a")


# Who signed it, for whom, which version


def test_entries_signed_by_another_issuer_key_name_an_unknown_key(world, published):
    other = ed25519.Ed25519PrivateKey.generate()
    entry = sign_entry(
        world.plaintext(version=2), published.sealed, agent_id="nas-a", signing_key=other
    )
    error = refused(UnknownIssuerKey, world.open, "nas-a", build_index([entry]), published.sealed)
    assert error.key_id == entry.issuer_key_id and error.key_id != published.entry.issuer_key_id


def test_another_key_posing_under_the_pinned_key_id_fails_the_signature(world, published):
    other = ed25519.Ed25519PrivateKey.generate()
    entry = resign(published.entry, other)  # keeps the pinned key's id
    refused(BadSignature, world.open, "nas-a", build_index([entry]), published.sealed)


def test_an_entry_swapped_into_another_agents_index_is_refused(world):
    plaintext = world.plaintext(version=2)
    for_a = world.publish(plaintext, "nas-a")
    error = refused(WrongAgent, world.open, "nas-b", build_index([for_a.entry]), for_a.sealed)
    assert (error.addressee, error.agent_id) == ("nas-a", "nas-b")


def test_replaying_an_older_version_is_refused(world):
    old = world.publish(world.plaintext(version=6), "nas-a")
    error = refused(StaleVersion, world.open_published, "nas-a", old, installed_version=7)
    assert not error.up_to_date
    verify = {"agent_id": "nas-a", "issuer_public_key": world.issuer.signing_key.public_key()}
    refused(StaleVersion, verify_entry, old.entry, installed_version=6, **verify)


# What is inside


def test_a_plaintext_naming_another_site_or_version_than_the_entry_is_refused(world):
    for field, other in (
        ("site", world.plaintext(site="other.test", version=2)),
        ("version", world.plaintext(version=3)),
    ):
        forged = forge_opened_bytes(world, encode_plaintext(other))
        assert refused(ContentMismatch, world.open_published, "nas-a", forged).field == field


@pytest.mark.parametrize(
    "change",
    [
        {"cert_sha256": "ab" * 32},
        {"not_after": NOW + timedelta(days=400)},
    ],
)
def test_an_entry_whose_certificate_facts_differ_from_the_bundle_is_refused(
    world, plaintext, change
):
    error = refused(
        ContentMismatch, world.open_published, "nas-a", forge(world, plaintext, **change)
    )
    assert error.field == next(iter(change))


@pytest.mark.parametrize(
    "field, value",
    [
        ("names", ("example.test", "*.example.test", "extra.test")),
        ("not_before", NOW - timedelta(days=30)),
        ("not_after", NOW + timedelta(days=30)),
    ],
)
def test_metadata_that_disagrees_with_its_own_certificate_is_refused(
    world, plaintext, field, value
):
    tampered = dataclasses.replace(plaintext, **{field: value})
    # The entry signs the leaf's real not_after: only the plaintext's copy is wrong.
    forged = forge(world, tampered, not_after=plaintext.not_after)
    assert refused(ContentMismatch, world.open_published, "nas-a", forged).field == field


def test_a_key_that_is_not_the_certificates_is_refused(world, plaintext):
    tampered = dataclasses.replace(plaintext, key_pem=key_pem(new_key("ec")))
    refused(KeyMismatch, world.open_published, "nas-a", forge(world, tampered))


def test_a_chain_that_did_not_issue_the_leaf_is_refused(world, plaintext):
    stranger = make_pki("stranger").issue()
    tampered = dataclasses.replace(plaintext, chain_pem=stranger.chain_pem)
    error = refused(ChainInvalid, world.open_published, "nas-a", forge(world, tampered))
    assert "the leaf" in error.reason


def test_a_broken_link_further_up_the_chain_is_refused(world, plaintext):
    chain = (world.pki.intermediate.cert, make_pki("stranger").root.cert)
    tampered = dataclasses.replace(plaintext, chain_pem="".join(cert_pem(c) for c in chain))
    error = refused(ChainInvalid, world.open_published, "nas-a", forge(world, tampered))
    assert "chain certificate 1 is not issued by chain certificate 2" in error.reason


def test_a_chain_up_to_the_root_is_accepted(world, plaintext):
    chain = (world.pki.intermediate.cert, world.pki.root.cert)
    full = dataclasses.replace(plaintext, chain_pem="".join(cert_pem(c) for c in chain))
    assert world.open_published("nas-a", forge(world, full)).material.chain == chain


def test_an_expired_certificate_is_refused(world):
    expired = world.plaintext(
        version=2, not_before=NOW - timedelta(days=90), not_after=NOW - timedelta(seconds=1)
    )
    error = refused(
        CertificateExpired, world.open_published, "nas-a", world.publish(expired, "nas-a")
    )
    assert error.not_after == expired.not_after


def test_a_certificate_not_yet_valid_is_refused(world):
    early = world.plaintext(version=2, not_before=NOW + timedelta(seconds=1))
    error = refused(
        CertificateNotYetValid, world.open_published, "nas-a", world.publish(early, "nas-a")
    )
    assert error.not_before == early.not_before


def test_names_that_do_not_cover_the_hostnames_are_refused(world):
    published = world.publish(world.plaintext(version=2, names=("*.example.test",)), "nas-a")
    error = refused(
        NamesNotCovered,
        world.open_published,
        "nas-a",
        published,
        hostnames=("nas.example.test", "a.b.example.test", "example.test"),
    )
    assert error.missing == ("a.b.example.test", "example.test")


def _pem(key, private_format, encryption) -> str:
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption).decode()


@pytest.mark.parametrize(
    "kind", ["ed25519", "rsa1024", "pkcs1", "encrypted", "two keys", "garbage"]
)
def test_a_key_that_is_not_one_supported_pkcs8_key_is_malformed(world, plaintext, kind):
    key = new_key("ec")
    pems = {
        "ed25519": lambda: key_pem(new_key("ed25519")),
        "rsa1024": lambda: key_pem(new_key("rsa1024")),
        "pkcs1": lambda: _pem(
            key, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
        "encrypted": lambda: _pem(
            key,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
        "two keys": lambda: key_pem(key) + key_pem(key),
        "garbage": lambda: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }
    tampered = dataclasses.replace(plaintext, key_pem=pems[kind]())
    refused(MalformedPlaintext, world.open_published, "nas-a", forge(world, tampered))


def test_certificates_that_do_not_parse_are_malformed(world, plaintext):
    garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    for change in (
        {"chain_pem": garbage},
        {"leaf_pem": plaintext.leaf_pem + plaintext.chain_pem},
    ):
        forged = forge(
            world,
            plaintext,
            sealed=world.publish(dataclasses.replace(plaintext, **change), "nas-a").sealed,
        )
        refused(MalformedPlaintext, world.open_published, "nas-a", forged)


@pytest.mark.parametrize(
    "data", [b"not json", b"{}", b'{"format": "certdrop-bundle-v1"}', b"\xc3\x28", b"[1]"]
)
def test_opened_bytes_that_are_not_a_bundle_are_malformed(world, data):
    refused(MalformedPlaintext, world.open_published, "nas-a", forge_opened_bytes(world, data))


def test_a_plaintext_of_a_future_format_asks_for_an_upgrade(world, plaintext):
    document = json.loads(encode_plaintext(plaintext))
    document["format"] = "certdrop-bundle-v2"
    forged = forge_opened_bytes(world, json.dumps(document).encode())
    assert refused(UnsupportedFormat, world.open_published, "nas-a", forged).found == (
        "certdrop-bundle-v2"
    )


def test_every_refusal_names_the_agent_site_and_version(world):
    narrow = world.plaintext(version=2, names=("*.example.test",))
    error = refused(NamesNotCovered, world.open_published, "nas-a", world.publish(narrow, "nas-a"))
    assert (error.agent_id, error.site, error.version) == ("nas-a", SITE, 2)
    assert "agent nas-a, site example.test, version 2" in str(error)
