"""The golden vectors of agent custody (tests/agent/vectors/csr, written once by
`generate.py csr`): the key requests, the CSR statement and the certdrop-leaf-v1 plaintext, its
sealed object and escrow copy. Every byte docs/bundle-format.md sections 9-11 describe is pinned
here; a change that fails these changed the wire format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from nas_agent._encoding import b64url_decode, parse_timestamp
from nas_agent.bundle import ESCROW_RECIPIENT, HeldKeys, make_leaf_plaintext
from nas_agent.bundle.checks import load_leaf
from nas_agent.bundle.key_requests import (
    KeyRequest,
    parse_key_requests,
    sign_key_requests,
    verify_key_requests,
)
from nas_agent.bundle.leaf import decode_leaf_plaintext, encode_leaf_plaintext
from nas_agent.bundle.plaintext import decode_plaintext
from nas_agent.bundle.sealed import open_sealed_any, open_sealed_leaf
from nas_agent.custody.statement import (
    parse_csr_statement,
    sign_csr_statement,
    verify_csr_statement,
)
from nas_agent.errors import DecryptionFailed, MalformedPlaintext

VECTORS = Path(__file__).parent / "vectors" / "csr"
INPUTS = json.loads((VECTORS / "inputs.json").read_text())
EXPECTED = json.loads((VECTORS / "expected.json").read_text())


def _key(cls, label):
    return cls.from_private_bytes(bytes.fromhex(INPUTS["seeds"][label]))


def _site_key():
    return ec.derive_private_key(int(INPUTS["site_key_seed"], 16), ec.SECP256R1())


def test_the_key_requests_bytes_are_pinned():
    signer = _key(ed25519.Ed25519PrivateKey, "issuer signing")
    body = (VECTORS / "key-requests.json").read_bytes()

    again = sign_key_requests(
        [KeyRequest(INPUTS["site"], tuple(INPUTS["names"]), INPUTS["key_type"])],
        agent_id=INPUTS["agent_id"],
        signing_key=signer,
        issued_at=parse_timestamp(INPUTS["requests_issued_at"]),
    )
    parsed = parse_key_requests(body)

    assert again == body
    assert parsed.envelope.decode("ascii") == EXPECTED["key_requests_signed_bytes"]
    assert parsed.signature.hex() == EXPECTED["key_requests_signature_hex"]
    assert parsed.issuer_key_id == EXPECTED["issuer_key_id"]
    verify_key_requests(parsed, agent_id=INPUTS["agent_id"], issuer_public_key=signer.public_key())


def test_the_csr_statement_bytes_are_pinned_and_the_issuer_accepts_them():
    status = _key(ed25519.Ed25519PrivateKey, "agent status")
    body = (VECTORS / "csr-statement.json").read_bytes()

    again = sign_csr_statement(
        agent_id=INPUTS["agent_id"],
        site=INPUTS["site"],
        sequence=INPUTS["csr_sequence"],
        current_cert_sha256="",
        rekey=False,
        csr_der=b64url_decode(INPUTS["csr_der_b64url"]),
        created_at=parse_timestamp(INPUTS["created_at"]),
        signing_key=status,
    )
    parsed = parse_csr_statement(body)
    checked = verify_csr_statement(
        parsed,
        agent_id=INPUTS["agent_id"],
        site=INPUTS["site"],
        agent_public_key=status.public_key(),
        names=INPUTS["names"],
        key_type=INPUTS["key_type"],
        last_sequence=None,
        delivered_leaf_pem=None,
    )

    assert again == body
    assert parsed.envelope.decode("ascii") == EXPECTED["csr_signed_bytes"]
    assert parsed.signature.hex() == EXPECTED["csr_signature_hex"]
    assert checked.csr.public_key().public_numbers() == _site_key().public_key().public_numbers()


def test_the_leaf_plaintext_bytes_are_pinned_and_hold_no_key():
    data = (VECTORS / "leaf-plaintext.json").read_bytes()

    plaintext = make_leaf_plaintext(
        site=INPUTS["site"],
        version=INPUTS["version"],
        agent_id=INPUTS["agent_id"],
        csr_sequence=INPUTS["csr_sequence"],
        leaf_pem=INPUTS["leaf_pem"],
        chain_pem=INPUTS["chain_pem"],
        issued_at=parse_timestamp(INPUTS["issued_at"]),
    )

    assert encode_leaf_plaintext(plaintext) == data
    assert encode_leaf_plaintext(decode_leaf_plaintext(data)) == data
    assert plaintext.leaf_sha256() == EXPECTED["cert_sha256"]
    assert b"PRIVATE KEY" not in data and b"key_pem" not in data


@pytest.mark.parametrize(
    ("name", "recipient", "label"),
    [
        ("leaf.sealed", "agent", "agent box"),
        ("escrow-leaf.sealed", ESCROW_RECIPIENT, "issuer escrow"),
    ],
)
def test_the_sealed_leaf_opens_for_its_recipient_only_to_the_plaintext(name, recipient, label):
    recipient_id = INPUTS["agent_id"] if recipient == "agent" else recipient
    sealed = (VECTORS / name).read_bytes()
    key = _key(x25519.X25519PrivateKey, label)
    where = {"recipient_id": recipient_id, "private_key": key}
    where.update(site=INPUTS["site"], version=INPUTS["version"])

    leaf = open_sealed_leaf(sealed, **where)
    either = open_sealed_any(sealed, **where)

    assert leaf == either == decode_leaf_plaintext((VECTORS / "leaf-plaintext.json").read_bytes())
    with pytest.raises(DecryptionFailed):
        open_sealed_leaf(sealed, **dict(where, private_key=x25519.X25519PrivateKey.generate()))


def test_the_leaf_installs_with_the_pending_key_of_its_csr_only():
    leaf = decode_leaf_plaintext((VECTORS / "leaf-plaintext.json").read_bytes())
    certificate = load_leaf(leaf.leaf_pem)

    which, key = HeldKeys(INPUTS["csr_sequence"], _site_key()).pick(leaf, certificate)

    assert which == "pending"
    assert key.private_numbers() == _site_key().private_numbers()


def test_the_bundle_reader_stays_strict_and_refuses_a_leaf():
    with pytest.raises(MalformedPlaintext):
        decode_plaintext((VECTORS / "leaf-plaintext.json").read_bytes())


def test_a_leaf_plaintext_carrying_a_key_is_refused():
    document = json.loads((VECTORS / "leaf-plaintext.json").read_bytes())
    document["key_pem"] = "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"

    with pytest.raises(MalformedPlaintext):
        decode_leaf_plaintext(json.dumps(document).encode())
