"""The CSR statement as the issuer checks it (`verify_csr_statement`, which the cloud imports):
each refusal has its own stable `csr.*` code, and a statement the agent makes passes them all."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from lab.sample_pki import cert_pem, make_pki
from nas_agent.custody.errors import CsrError
from nas_agent.custody.key_types import KEY_TYPES, generate_key, key_type_of
from nas_agent.custody.keygen import csr_der
from nas_agent.custody.statement import (
    next_sequence,
    parse_csr_statement,
    sign_csr_statement,
    verify_csr_statement,
)
from tests.agent.custody_issuer import sha256_of_pem

NAMES = ("*.example.test", "example.test")
NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
STATUS = ed25519.Ed25519PrivateKey.generate()
STRANGER = ed25519.Ed25519PrivateKey.generate()
KEY = generate_key("ec-p256")


def _statement(*, request=None, sequence=1764892800, current="", signing_key=STATUS, **more):
    body = sign_csr_statement(
        agent_id=more.get("agent", "nas-a"),
        site=more.get("site", "example.test"),
        sequence=sequence,
        current_cert_sha256=current,
        rekey=False,
        csr_der=request or csr_der(KEY, NAMES),
        created_at=NOW,
        signing_key=signing_key,
    )
    return parse_csr_statement(body)


def _verify(statement, **changes):
    options = {
        "agent_id": "nas-a",
        "site": "example.test",
        "agent_public_key": STATUS.public_key(),
        "names": NAMES,
        "key_type": "ec-p256",
        "last_sequence": None,
        "delivered_leaf_pem": None,
    }
    options.update(changes)
    return verify_csr_statement(statement, **options)


def _code(statement, **changes) -> str:
    with pytest.raises(CsrError) as caught:
        _verify(statement, **changes)
    return caught.value.code


def _delivered(key) -> str:
    pki = make_pki()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=60))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), False)
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    return cert_pem(certificate)


def test_a_statement_the_agent_makes_passes_every_check():
    checked = _verify(_statement())

    assert checked.key_type == "ec-p256"
    assert len(checked.public_key_sha256) == 64


def test_a_statement_naming_the_delivered_certificate_passes():
    delivered = _delivered(generate_key("ec-p256"))
    statement = _statement(current=sha256_of_pem(delivered))

    assert _verify(statement, delivered_leaf_pem=delivered, last_sequence=1)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"agent_id": "nas-b"}, "csr.wrong_agent"),
        ({"site": "other.test"}, "csr.wrong_site"),
        (
            {"agent_public_key": ed25519.Ed25519PrivateKey.generate().public_key()},
            "csr.signature_invalid",
        ),
        ({"last_sequence": 1764892800}, "csr.sequence_stale"),
        ({"names": ("example.test",)}, "csr.names_mismatch"),
        ({"key_type": "rsa-2048"}, "csr.key_type_mismatch"),
    ],
)
def test_each_refusal_has_its_code(changes, code):
    assert _code(_statement(), **changes) == code


def test_a_statement_naming_no_certificate_when_one_was_delivered_is_refused():
    assert _code(_statement(), delivered_leaf_pem=_delivered(KEY)) == "csr.current_cert_mismatch"


def test_a_csr_reusing_the_delivered_certificates_key_is_refused():
    delivered = _delivered(KEY)
    statement = _statement(current=sha256_of_pem(delivered))

    assert _code(statement, delivered_leaf_pem=delivered) == "csr.key_reused"


def test_a_statement_naming_a_certificate_the_issuer_accepts_besides_the_delivered_one_passes():
    installed = _delivered(generate_key("ec-p256"))  # delivered before the last one
    statement = _statement(current=sha256_of_pem(installed))
    delivered = _delivered(generate_key("ec-p256"))

    accepted = {"", sha256_of_pem(installed)}
    assert _verify(statement, delivered_leaf_pem=delivered, accepted_cert_sha256=accepted)
    assert _verify(_statement(), delivered_leaf_pem=delivered, accepted_cert_sha256=accepted)


def test_a_statement_naming_a_certificate_not_accepted_is_refused():
    statement = _statement(current=sha256_of_pem(_delivered(generate_key("ec-p256"))))
    accepted = ("", "ab" * 32)

    code = _code(statement, delivered_leaf_pem=_delivered(KEY), accepted_cert_sha256=accepted)

    assert code == "csr.current_cert_mismatch"


def test_the_key_of_the_delivered_certificate_is_refused_whatever_the_statement_names():
    accepted = ("",)

    code = _code(_statement(), delivered_leaf_pem=_delivered(KEY), accepted_cert_sha256=accepted)

    assert code == "csr.key_reused"


def test_a_csr_that_does_not_parse_is_refused():
    assert _code(_statement(request=b"not a CSR")) == "csr.request_invalid"


def test_a_csr_with_another_common_name_is_refused():
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil.test")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), False)
        .sign(KEY, hashes.SHA256())
    )
    der = request.public_bytes(serialization.Encoding.DER)

    assert _code(_statement(request=der)) == "csr.names_mismatch"


def test_a_statement_changed_after_signing_is_refused():
    statement = _statement()
    body = json.loads(
        sign_csr_statement(
            agent_id="nas-a",
            site="example.test",
            sequence=statement.sequence,
            current_cert_sha256="",
            rekey=False,
            csr_der=statement.csr_der,
            created_at=NOW,
            signing_key=STATUS,
        )
    )
    body["signed"]["rekey"] = True

    assert _code(parse_csr_statement(json.dumps(body).encode())) == "csr.signature_invalid"


@pytest.mark.parametrize(
    ("field", "value"),
    [("sequence", 0), ("sequence", "1"), ("rekey", 1), ("current_cert_sha256", "ABC"), ("csr", "")],
)
def test_a_malformed_statement_is_refused_before_any_check(field, value):
    body = json.loads(
        sign_csr_statement(
            agent_id="nas-a",
            site="example.test",
            sequence=5,
            current_cert_sha256="",
            rekey=False,
            csr_der=csr_der(KEY, NAMES),
            created_at=NOW,
            signing_key=STATUS,
        )
    )
    body["signed"][field] = value

    with pytest.raises(CsrError) as caught:
        parse_csr_statement(json.dumps(body).encode())

    assert caught.value.code == "csr.malformed"


def test_the_sequence_has_unix_seconds_as_its_floor():
    assert next_sequence(None, NOW) == int(NOW.timestamp())
    assert next_sequence(int(NOW.timestamp()) + 7, NOW) == int(NOW.timestamp()) + 8


@pytest.mark.parametrize("key_type", [t for t in KEY_TYPES if not t.startswith("rsa-4")])
def test_every_key_type_makes_a_csr_of_that_type(key_type):
    key = generate_key(key_type)

    request = x509.load_der_x509_csr(csr_der(key, NAMES))

    assert key_type_of(request.public_key()) == key_type
