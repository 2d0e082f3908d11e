"""Write the golden vectors of one format version into tests/agent/vectors/v<N>/.

Run once when a new format version is introduced, never to make a failing golden test pass: the
vectors are the promise that what was published yesterday still opens. It refuses to overwrite.

    PYTHONPATH=. python tests/agent/vectors/generate.py v1
    PYTHONPATH=. python tests/agent/vectors/generate.py v2   # from v1's inputs and objects
    PYTHONPATH=. python tests/agent/vectors/generate.py csr  # agent custody's three documents

Keys come from fixed seeds, so everything but the sealed objects (HPKE's ephemeral key is random)
is reproducible; the certificate PEMs are generated once and stored as inputs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from lab.sample_pki import NOW, cert_pem, make_pki
from nas_agent._encoding import b64url_encode, parse_timestamp
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    build_index,
    entry_for,
    hpke_info,
    make_leaf_plaintext,
    make_plaintext,
    parse_index,
    seal,
    sign_entry,
    sign_index,
)
from nas_agent.bundle.key_requests import KeyRequest, parse_key_requests, sign_key_requests
from nas_agent.bundle.leaf import encode_leaf_plaintext
from nas_agent.bundle.plaintext import decode_plaintext, encode_plaintext
from nas_agent.bundle.rotation import sign_rotation
from nas_agent.custody.keygen import csr_der
from nas_agent.custody.statement import parse_csr_statement, sign_csr_statement
from nas_agent.enrollment import Enrollment, escrow_key_line, issuer_key_line
from nas_agent.keys import key_id


def seed(label: str) -> bytes:
    return hashlib.sha256(f"certdrop golden vector: {label}".encode()).digest()


def main(version: str) -> None:
    directory = Path(__file__).parent / version
    directory.mkdir()  # fails if the vectors exist
    agent_id, site, bundle_version = "nas-golden", "example.test", 42
    box = x25519.X25519PrivateKey.from_private_bytes(seed("agent box"))
    status = ed25519.Ed25519PrivateKey.from_private_bytes(seed("agent status"))
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(seed("issuer signing"))
    escrow = x25519.X25519PrivateKey.from_private_bytes(seed("issuer escrow"))
    issued = make_pki("golden").issue(("example.test", "*.example.test"))
    inputs = {
        "agent_id": agent_id,
        "site": site,
        "version": bundle_version,
        "issued_at": "2026-11-28T12:00:00Z",
        "now": (NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostnames": ["nas.example.test", "example.test"],
        "seeds": {
            label: seed(label).hex()
            for label in ("agent box", "agent status", "issuer signing", "issuer escrow")
        },
        "key_pem": issued.key_pem,
        "leaf_pem": issued.leaf_pem,
        "chain_pem": issued.chain_pem,
    }
    plaintext = make_plaintext(
        site=site,
        version=bundle_version,
        key_pem=issued.key_pem,
        leaf_pem=issued.leaf_pem,
        chain_pem=issued.chain_pem,
        issued_at=NOW,
    )
    sealed = seal(plaintext, recipient_id=agent_id, recipient_public_key=box.public_key())
    escrowed = seal(
        plaintext, recipient_id=ESCROW_RECIPIENT, recipient_public_key=escrow.public_key()
    )
    entry = sign_entry(plaintext, sealed, agent_id=agent_id, signing_key=signer)
    expected = {
        "info": hpke_info(agent_id, site, bundle_version).decode("ascii"),
        "escrow_info": hpke_info(ESCROW_RECIPIENT, site, bundle_version).decode("ascii"),
        "signed_bytes": entry.signed_bytes().decode("ascii"),
        "signature_hex": entry.signature.hex(),
        "issuer_key_id": entry.issuer_key_id,
        "cert_sha256": entry.cert_sha256,
        "enrollment_token": Enrollment(agent_id, box.public_key(), status.public_key()).token(),
        "issuer_key_line": issuer_key_line(signer.public_key()),
        "escrow_key_line": escrow_key_line(escrow.public_key()),
    }
    (directory / "inputs.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    (directory / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    (directory / "plaintext.json").write_bytes(encode_plaintext(plaintext))
    (directory / "bundle.sealed").write_bytes(sealed)
    (directory / "escrow.sealed").write_bytes(escrowed)
    (directory / "index.json").write_bytes(build_index([entry]))


def main_v2() -> None:
    """Index v2 over v1's sealed object (the sealed format did not change): signed by a second
    issuer key that a rotation statement from v1's key vouches for."""
    v1 = Path(__file__).parent / "v1"
    directory = Path(__file__).parent / "v2"
    directory.mkdir()  # fails if the vectors exist
    v1_inputs = json.loads((v1 / "inputs.json").read_text())
    first = ed25519.Ed25519PrivateKey.from_private_bytes(seed("issuer signing"))
    second = ed25519.Ed25519PrivateKey.from_private_bytes(seed("issuer signing 2"))
    plaintext = decode_plaintext((v1 / "plaintext.json").read_bytes())
    sealed = (v1 / "bundle.sealed").read_bytes()
    issued_at = parse_timestamp("2026-12-01T00:00:00Z")
    expires_at = parse_timestamp("2026-12-08T00:00:00Z")
    rotation = sign_rotation(
        first, second.public_key(), sequence=1, issued_at=parse_timestamp("2026-11-30T00:00:00Z")
    )
    entry = entry_for(
        plaintext,
        sealed,
        agent_id=v1_inputs["agent_id"],
        issuer_key_id=key_id(second.public_key()),
    )
    index = sign_index(
        [entry],
        agent_id=v1_inputs["agent_id"],
        signing_key=second,
        issued_at=issued_at,
        expires_at=expires_at,
        rotations=[rotation],
    )
    parsed = parse_index(index)
    inputs = {
        "from": "v1/inputs.json, v1/plaintext.json and v1/bundle.sealed",
        "seeds": {"issuer signing 2": seed("issuer signing 2").hex()},
        "issued_at": "2026-12-01T00:00:00Z",
        "expires_at": "2026-12-08T00:00:00Z",
        "rotation_issued_at": "2026-11-30T00:00:00Z",
        "now": "2026-12-02T00:00:00Z",
    }
    expected = {
        "index_signed_bytes": parsed.envelope.decode("ascii"),
        "index_signature_hex": parsed.signature.hex(),
        "issuer_key_id": key_id(second.public_key()),
        "rotation_signed_bytes": rotation.signed_bytes().decode("ascii"),
        "rotation_signature_hex": rotation.signature.hex(),
        "first_key_id": key_id(first.public_key()),
    }
    (directory / "inputs.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    (directory / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    (directory / "index.json").write_bytes(index)


def site_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key from a fixed seed (248 bits: below the curve's order)."""
    return ec.derive_private_key(int.from_bytes(seed(label)[:31], "big"), ec.SECP256R1())


def main_csr() -> None:
    """Agent custody (docs/key-custody.md): key requests, a CSR statement and a certdrop-leaf-v1
    sealed to the agent and to escrow, with v1's agent and issuer keys. Ed25519 signatures are
    deterministic; the CSR's and the leaf's ECDSA signatures and the sealed objects are not, so
    the CSR and the certificates are stored as inputs."""
    directory = Path(__file__).parent / "csr"
    directory.mkdir()  # fails if the vectors exist
    agent_id, site, version, sequence = "nas-golden", "example.test", 43, 1764892800
    names = ("*.example.test", "example.test")
    box = x25519.X25519PrivateKey.from_private_bytes(seed("agent box"))
    status = ed25519.Ed25519PrivateKey.from_private_bytes(seed("agent status"))
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(seed("issuer signing"))
    escrow = x25519.X25519PrivateKey.from_private_bytes(seed("issuer escrow"))
    key = site_key("site key")
    pki = make_pki("golden csr")
    request = csr_der(key, names)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.load_der_x509_csr(request).subject)
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=89))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    inputs = {
        "agent_id": agent_id,
        "site": site,
        "version": version,
        "csr_sequence": sequence,
        "names": list(names),
        "key_type": "ec-p256",
        "requests_issued_at": "2026-12-05T00:00:00Z",
        "created_at": "2026-12-05T00:00:00Z",
        "issued_at": "2026-11-28T12:00:00Z",
        "now": "2026-12-06T00:00:00Z",
        "hostnames": ["nas.example.test", "example.test"],
        "seeds": {
            label: seed(label).hex()
            for label in ("agent box", "agent status", "issuer signing", "issuer escrow")
        },
        "site_key_seed": seed("site key")[:31].hex(),
        "csr_der_b64url": b64url_encode(request),
        "leaf_pem": cert_pem(leaf),
        "chain_pem": cert_pem(pki.intermediate.cert),
    }
    requests = sign_key_requests(
        [KeyRequest(site, names, "ec-p256")],
        agent_id=agent_id,
        signing_key=signer,
        issued_at=parse_timestamp(inputs["requests_issued_at"]),
    )
    statement = sign_csr_statement(
        agent_id=agent_id,
        site=site,
        sequence=sequence,
        current_cert_sha256="",
        rekey=False,
        csr_der=request,
        created_at=parse_timestamp(inputs["created_at"]),
        signing_key=status,
    )
    plaintext = make_leaf_plaintext(
        site=site,
        version=version,
        agent_id=agent_id,
        csr_sequence=sequence,
        leaf_pem=inputs["leaf_pem"],
        chain_pem=inputs["chain_pem"],
        issued_at=parse_timestamp(inputs["issued_at"]),
    )
    parsed_requests = parse_key_requests(requests)
    parsed_statement = parse_csr_statement(statement)
    expected = {
        "key_requests_signed_bytes": parsed_requests.envelope.decode("ascii"),
        "key_requests_signature_hex": parsed_requests.signature.hex(),
        "csr_signed_bytes": parsed_statement.envelope.decode("ascii"),
        "csr_signature_hex": parsed_statement.signature.hex(),
        "issuer_key_id": key_id(signer.public_key()),
        "cert_sha256": plaintext.leaf_sha256(),
        "info": hpke_info(agent_id, site, version).decode("ascii"),
        "escrow_info": hpke_info(ESCROW_RECIPIENT, site, version).decode("ascii"),
    }
    (directory / "inputs.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    (directory / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    (directory / "key-requests.json").write_bytes(requests)
    (directory / "csr-statement.json").write_bytes(statement)
    (directory / "leaf-plaintext.json").write_bytes(encode_leaf_plaintext(plaintext))
    (directory / "leaf.sealed").write_bytes(
        seal(plaintext, recipient_id=agent_id, recipient_public_key=box.public_key())
    )
    (directory / "escrow-leaf.sealed").write_bytes(
        seal(plaintext, recipient_id=ESCROW_RECIPIENT, recipient_public_key=escrow.public_key())
    )


if __name__ == "__main__":
    if sys.argv[1] == "v2":
        main_v2()
    elif sys.argv[1] == "csr":
        main_csr()
    else:
        main(sys.argv[1])
