"""Golden vectors: fail when the wire format changes. Stored in tests/agent/vectors/v1/ and v2/
(written once each by vectors/generate.py under Python 3.8 with cryptography 47.0.0). v1's index
stays for agents in the upgrade window; v2 signs the index as a whole, over v1's sealed object.

What is deterministic is rebuilt from the inputs and compared byte for byte: the plaintext, the
HPKE `info`, the signed bytes and the Ed25519 signature, index.json, the key lines. The sealed
objects cannot be rebuilt (HPKE's ephemeral key is random), so they must keep opening forever.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from nas_agent._encoding import parse_timestamp
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    build_index,
    entry_for,
    hpke_info,
    make_plaintext,
    open_sealed,
    parse_index,
    sign_entry,
    sign_index,
    verify_and_open,
)
from nas_agent.bundle.plaintext import decode_plaintext, encode_plaintext
from nas_agent.bundle.rotation import sign_rotation
from nas_agent.enrollment import (
    Enrollment,
    escrow_key_line,
    issuer_key_line,
    parse_enrollment_token,
)
from nas_agent.keys import key_id, raw_public_bytes

V1 = Path(__file__).parent / "vectors" / "v1"


@pytest.fixture(scope="module")
def inputs():
    return json.loads((V1 / "inputs.json").read_text())


@pytest.fixture(scope="module")
def expected():
    return json.loads((V1 / "expected.json").read_text())


@pytest.fixture(scope="module")
def keys(inputs):
    seeds = {label: bytes.fromhex(value) for label, value in inputs["seeds"].items()}
    return {
        "box": x25519.X25519PrivateKey.from_private_bytes(seeds["agent box"]),
        "status": ed25519.Ed25519PrivateKey.from_private_bytes(seeds["agent status"]),
        "signer": ed25519.Ed25519PrivateKey.from_private_bytes(seeds["issuer signing"]),
        "escrow": x25519.X25519PrivateKey.from_private_bytes(seeds["issuer escrow"]),
    }


@pytest.fixture(scope="module")
def plaintext(inputs):
    return make_plaintext(
        site=inputs["site"],
        version=inputs["version"],
        key_pem=inputs["key_pem"],
        leaf_pem=inputs["leaf_pem"],
        chain_pem=inputs["chain_pem"],
        issued_at=parse_timestamp(inputs["issued_at"]),
    )


def test_the_plaintext_encoding_is_unchanged(plaintext):
    assert encode_plaintext(plaintext) == (V1 / "plaintext.json").read_bytes()


def test_the_hpke_info_is_unchanged(inputs, expected):
    site, version = inputs["site"], inputs["version"]
    assert hpke_info(inputs["agent_id"], site, version) == expected["info"].encode("ascii")
    assert hpke_info(ESCROW_RECIPIENT, site, version) == expected["escrow_info"].encode("ascii")


def test_the_signed_bytes_and_the_signature_are_unchanged(inputs, expected, keys, plaintext):
    sealed = (V1 / "bundle.sealed").read_bytes()
    entry = sign_entry(plaintext, sealed, agent_id=inputs["agent_id"], signing_key=keys["signer"])
    assert entry.signed_bytes() == expected["signed_bytes"].encode("ascii")
    assert entry.signature.hex() == expected["signature_hex"]
    assert entry.issuer_key_id == expected["issuer_key_id"] == key_id(keys["signer"].public_key())
    assert entry.cert_sha256 == expected["cert_sha256"]
    assert build_index([entry]) == (V1 / "index.json").read_bytes()


def test_the_stored_object_still_opens_to_the_stored_plaintext(inputs, keys):
    opened = open_sealed(
        (V1 / "bundle.sealed").read_bytes(),
        recipient_id=inputs["agent_id"],
        private_key=keys["box"],
        site=inputs["site"],
        version=inputs["version"],
    )
    assert opened == decode_plaintext((V1 / "plaintext.json").read_bytes())


def test_the_stored_escrow_object_still_opens_with_the_escrow_key(inputs, keys, plaintext):
    opened = open_sealed(
        (V1 / "escrow.sealed").read_bytes(),
        recipient_id=ESCROW_RECIPIENT,
        private_key=keys["escrow"],
        site=inputs["site"],
        version=inputs["version"],
    )
    assert opened == plaintext


def test_the_stored_index_and_object_pass_every_agent_check(inputs, keys, plaintext):
    opened = verify_and_open(
        (V1 / "index.json").read_bytes(),
        (V1 / "bundle.sealed").read_bytes(),
        site=inputs["site"],
        agent_id=inputs["agent_id"],
        agent_private_key=keys["box"],
        issuer_public_key=keys["signer"].public_key(),
        installed_version=inputs["version"] - 1,
        hostnames=inputs["hostnames"],
        now=parse_timestamp(inputs["now"]),
    )
    assert opened.plaintext == plaintext


def test_the_sealed_object_header_is_unchanged():
    for name in ("bundle.sealed", "escrow.sealed"):
        assert (V1 / name).read_bytes()[:5] == b"CDSB\x01"


def test_the_key_lines_are_unchanged(inputs, expected, keys):
    enrollment = Enrollment(
        inputs["agent_id"], keys["box"].public_key(), keys["status"].public_key()
    )
    assert enrollment.token() == expected["enrollment_token"]
    assert issuer_key_line(keys["signer"].public_key()) == expected["issuer_key_line"]
    assert escrow_key_line(keys["escrow"].public_key()) == expected["escrow_key_line"]
    parsed = parse_enrollment_token(expected["enrollment_token"])
    assert raw_public_bytes(parsed.box_public_key) == raw_public_bytes(keys["box"].public_key())


# --- index v2 (tests/agent/vectors/v2/, over v1's sealed object) ---------------------------

V2 = Path(__file__).parent / "vectors" / "v2"


@pytest.fixture(scope="module")
def v2():
    inputs = json.loads((V2 / "inputs.json").read_text())
    second = bytes.fromhex(inputs["seeds"]["issuer signing 2"])
    return (
        inputs,
        json.loads((V2 / "expected.json").read_text()),
        ed25519.Ed25519PrivateKey.from_private_bytes(second),
    )


def test_the_v2_index_rebuilds_byte_for_byte(v2, inputs, keys, plaintext):
    v2_inputs, expected, second = v2
    sealed = (V1 / "bundle.sealed").read_bytes()
    rotation = sign_rotation(
        keys["signer"],
        second.public_key(),
        sequence=1,
        issued_at=parse_timestamp(v2_inputs["rotation_issued_at"]),
    )
    assert rotation.signed_bytes() == expected["rotation_signed_bytes"].encode("ascii")
    assert rotation.signature.hex() == expected["rotation_signature_hex"]
    entry = entry_for(
        plaintext, sealed, agent_id=inputs["agent_id"], issuer_key_id=key_id(second.public_key())
    )
    index = sign_index(
        [entry],
        agent_id=inputs["agent_id"],
        signing_key=second,
        issued_at=parse_timestamp(v2_inputs["issued_at"]),
        expires_at=parse_timestamp(v2_inputs["expires_at"]),
        rotations=[rotation],
    )
    assert index == (V2 / "index.json").read_bytes()
    parsed = parse_index(index)
    assert parsed.envelope == expected["index_signed_bytes"].encode("ascii")
    assert parsed.signature.hex() == expected["index_signature_hex"]
    assert parsed.issuer_key_id == expected["issuer_key_id"]


def test_the_v2_index_passes_every_agent_check_from_the_first_key(v2, inputs, keys, plaintext):
    v2_inputs, _expected, _second = v2
    opened = verify_and_open(
        (V2 / "index.json").read_bytes(),
        (V1 / "bundle.sealed").read_bytes(),
        site=inputs["site"],
        agent_id=inputs["agent_id"],
        agent_private_key=keys["box"],
        issuer_public_key=keys["signer"].public_key(),  # pinned before the rotation
        installed_version=inputs["version"] - 1,
        hostnames=inputs["hostnames"],
        now=parse_timestamp(v2_inputs["now"]),
    )
    assert opened.plaintext == plaintext
