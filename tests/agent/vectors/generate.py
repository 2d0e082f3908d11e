"""Write the golden vectors of one format version into tests/agent/vectors/v<N>/.

Run once when a new format version is introduced, never to make a failing golden test pass: the
vectors are the promise that what was published yesterday still opens. It refuses to overwrite.

    PYTHONPATH=. python tests/agent/vectors/generate.py v1
    PYTHONPATH=. python tests/agent/vectors/generate.py v2   # from v1's inputs and objects

Keys come from fixed seeds, so everything but the sealed objects (HPKE's ephemeral key is random)
is reproducible; the certificate PEMs are generated once and stored as inputs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from lab.sample_pki import NOW, make_pki
from nas_agent._encoding import parse_timestamp
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    build_index,
    entry_for,
    hpke_info,
    make_plaintext,
    parse_index,
    seal,
    sign_entry,
    sign_index,
)
from nas_agent.bundle.plaintext import decode_plaintext, encode_plaintext
from nas_agent.bundle.rotation import sign_rotation
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


if __name__ == "__main__":
    if sys.argv[1] == "v2":
        main_v2()
    else:
        main(sys.argv[1])
