"""The CSR statement, `agents/<agent>/csr/<site>.json`: the agent asks the issuer for a
certificate of a site in agent custody, for a key only the agent holds.

    {"format": "certdrop-csr-v1",
     "signed": {"agent": "nas-1", "site": "example.com", "sequence": 1764892800,
                "current_cert_sha256": "<64 hex, or \\"\\" when no certificate is installed>",
                "rekey": false, "csr": "<b64url of the CSR's DER>",
                "created_at": "2026-12-05T00:00:00Z"},
     "signature": "<b64url: Ed25519 by the agent's status key>"}

Signed bytes: b"certdrop csr v1\\n" + canonical JSON of "signed", rebuilt from the checked
values. The agent signs with `sign_csr_statement`; the issuer reads with `parse_csr_statement`
and checks with `verify_csr_statement`. All three are pure: no I/O, no clock. Errors are
`nas_agent.custody.errors.CsrError` subclasses (`csr.*`). docs/bundle-format.md section 10 has
the bytes; tests/agent/vectors/csr pins them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Collection, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from nas_agent._encoding import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    load_json_object,
    parse_timestamp,
    published_json,
)
from nas_agent.bundle.checks import spki_der
from nas_agent.bundle.leaf import MAX_SEQUENCE, is_sequence
from nas_agent.custody.errors import (
    CsrBadSignature,
    CsrCurrentCertMismatch,
    CsrKeyReused,
    CsrKeyTypeMismatch,
    CsrMalformed,
    CsrNamesMismatch,
    CsrRequestInvalid,
    CsrSequenceStale,
    CsrUnsupported,
    CsrWrongAgent,
    CsrWrongSite,
)
from nas_agent.custody.key_types import key_type_of
from nas_agent.ids import is_agent_id, is_site_id

CSR_FORMAT = "certdrop-csr-v1"
CSR_CONTEXT = b"certdrop csr v1\n"
MAX_CSR_STATEMENT_BYTES = 64 * 1024

_SIGNED = frozenset(
    {"agent", "site", "sequence", "current_cert_sha256", "rekey", "csr", "created_at"}
)
_SHA256_HEX = re.compile("[0-9a-f]{64}")
_SIGNATURE_SIZE = 64
_PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


@dataclass(frozen=True)
class CsrStatement:
    agent_id: str
    site: str
    sequence: int
    current_cert_sha256: str  # "" when the agent holds no certificate of the site
    rekey: bool
    csr_der: bytes = field(repr=False)
    created_at: datetime
    signature: bytes = field(default=b"", repr=False)
    envelope: bytes = field(default=b"", repr=False)  # the signed bytes, rebuilt

    def signed_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent_id,
            "site": self.site,
            "sequence": self.sequence,
            "current_cert_sha256": self.current_cert_sha256,
            "rekey": self.rekey,
            "csr": b64url_encode(self.csr_der),
            "created_at": format_timestamp(self.created_at),
        }


@dataclass(frozen=True)
class CheckedCsr:
    """A statement that passed every check of `verify_csr_statement`: order with `csr`."""

    statement: CsrStatement
    csr: x509.CertificateSigningRequest
    key_type: str
    public_key_sha256: str  # hex SHA-256 of the CSR key's SubjectPublicKeyInfo DER


def next_sequence(last_sequence: int | None, now: datetime) -> int:
    """Above every sequence used for the site, also after the agent lost what it used: unix
    seconds are the floor."""
    return max((last_sequence or 0) + 1, int(now.timestamp()))


def sign_csr_statement(
    *,
    agent_id: str,
    site: str,
    sequence: int,
    current_cert_sha256: str,
    rekey: bool,
    csr_der: bytes,
    created_at: datetime,
    signing_key: ed25519.Ed25519PrivateKey,
) -> bytes:
    """The statement's bytes, signed with the agent's status key. ValueError for values the
    issuer would refuse as malformed."""
    statement = CsrStatement(
        agent_id,
        site,
        sequence,
        current_cert_sha256,
        rekey,
        csr_der,
        created_at.replace(microsecond=0),
    )
    signed = statement.signed_json()
    try:
        _checked(signed)
    except CsrMalformed as exc:
        raise ValueError(exc.reason) from None
    document = {
        "format": CSR_FORMAT,
        "signed": signed,
        "signature": b64url_encode(signing_key.sign(CSR_CONTEXT + canonical_json(signed))),
    }
    return published_json(document)


def parse_csr_statement(data: bytes) -> CsrStatement:
    """Read untrusted bytes; raise CsrMalformed or CsrUnsupported, nothing else. The CSR inside
    is not parsed yet (`verify_csr_statement` does)."""
    try:
        document = load_json_object(data, max_size=MAX_CSR_STATEMENT_BYTES)
    except ValueError as exc:
        raise CsrMalformed(f"not a JSON object: {exc}") from exc
    found = document.get("format")
    if found != CSR_FORMAT:
        if isinstance(found, str) and found.startswith("certdrop-csr-"):
            raise CsrUnsupported(f"format {found!r} is one this issuer does not know")
        raise CsrMalformed(f"format is {found!r}, expected {CSR_FORMAT!r}")
    if set(document) != {"format", "signed", "signature"}:
        raise CsrMalformed('holds exactly "format", "signed" and "signature"')
    signed = document["signed"]
    if not isinstance(signed, dict):
        raise CsrMalformed("signed is not an object")
    statement = _checked(signed)
    try:
        signature = b64url_decode(document["signature"])
    except ValueError as exc:
        raise CsrMalformed(f"signature: {exc}") from exc
    if len(signature) != _SIGNATURE_SIZE:
        raise CsrMalformed(f"signature is {len(signature)} bytes, not {_SIGNATURE_SIZE}")
    envelope = CSR_CONTEXT + canonical_json(statement.signed_json())
    return CsrStatement(
        statement.agent_id,
        statement.site,
        statement.sequence,
        statement.current_cert_sha256,
        statement.rekey,
        statement.csr_der,
        statement.created_at,
        signature,
        envelope,
    )


def verify_csr_statement(
    statement: CsrStatement,
    *,
    agent_id: str,
    site: str,
    agent_public_key: ed25519.Ed25519PublicKey,
    names: Sequence[str],
    key_type: str,
    last_sequence: int | None,
    delivered_leaf_pem: str | None,
    accepted_cert_sha256: Collection[str] = (),
) -> CheckedCsr:
    """Believe `statement`, read from `agents/<agent_id>/csr/<site>.json`, only if every check
    of docs/key-custody.md passes, in this order:

    - `agent`/`site` are the path's (CsrWrongAgent, CsrWrongSite);
    - signed by `agent_public_key`, the Ed25519 key of the agent's registered token
      (CsrBadSignature);
    - `sequence` above `last_sequence`, the last one the issuer used for this agent and site,
      None when none (CsrSequenceStale);
    - `current_cert_sha256` is the SHA-256 of `delivered_leaf_pem`, the certificate last
      delivered to this agent for the site, or "" when None, or one of `accepted_cert_sha256`,
      other certificates the agent may still have installed (CsrCurrentCertMismatch);
    - the CSR parses and its SHA-256 signature verifies (CsrRequestInvalid);
    - its SAN dNSNames are exactly `names` (sorted, lowercase), no other SAN, and its subject at
      most a CN equal to the first name (CsrNamesMismatch);
    - its key is of `key_type` (CsrKeyTypeMismatch) and not the delivered certificate's
      (CsrKeyReused).

    Whether the site is in agent custody at all is the issuer's to know before calling this.
    """
    where = {"agent_id": agent_id, "site": site}
    if statement.agent_id != agent_id:
        raise CsrWrongAgent(f"signed for agent {statement.agent_id}", **where)
    if statement.site != site:
        raise CsrWrongSite(f"signed for site {statement.site}", **where)
    try:
        agent_public_key.verify(statement.signature, statement.envelope)
    except InvalidSignature as exc:
        raise CsrBadSignature("the signature is not the agent's", **where) from exc
    if last_sequence is not None and statement.sequence <= last_sequence:
        raise CsrSequenceStale(
            f"sequence {statement.sequence} is not above {last_sequence}, the last one used",
            **where,
        )
    delivered = None if delivered_leaf_pem is None else _certificate(delivered_leaf_pem)
    expected = "" if delivered is None else _sha256(delivered.public_bytes(_DER))
    if statement.current_cert_sha256 != expected and (
        statement.current_cert_sha256 not in accepted_cert_sha256
    ):
        raise CsrCurrentCertMismatch(
            f"names certificate {statement.current_cert_sha256[:16] or '(none)'}, but the one"
            f" delivered is {expected[:16] or '(none)'}",
            **where,
        )
    csr = _request(statement, where)
    _check_names(csr, names, where)
    found = key_type_of(csr.public_key())
    if found != key_type:
        raise CsrKeyTypeMismatch(
            f"the key is {found or 'of another type'}, not {key_type}", **where
        )
    spki = spki_der(csr.public_key())
    if delivered is not None and spki_der(delivered.public_key()) == spki:
        raise CsrKeyReused("the key is the one of the certificate delivered last", **where)
    return CheckedCsr(statement, csr, found, _sha256(spki))


_DER = serialization.Encoding.DER


def _checked(signed: dict[str, Any]) -> CsrStatement:
    if set(signed) != _SIGNED:
        raise CsrMalformed(f"signed holds exactly the fields {sorted(_SIGNED)}")
    if not is_agent_id(signed["agent"]):
        raise CsrMalformed("signed.agent is not an agent id")
    if not is_site_id(signed["site"]):
        raise CsrMalformed("signed.site is not a site id")
    sequence = signed["sequence"]
    if not is_sequence(sequence):
        raise CsrMalformed(f"signed.sequence is not an integer from 1 to {MAX_SEQUENCE}")
    current = signed["current_cert_sha256"]
    if not isinstance(current, str) or (current and _SHA256_HEX.fullmatch(current) is None):
        raise CsrMalformed('signed.current_cert_sha256 is not 64 lowercase hex digits or ""')
    if not isinstance(signed["rekey"], bool):
        raise CsrMalformed("signed.rekey is not true or false")
    try:
        csr_der = b64url_decode(signed["csr"])
        created_at = parse_timestamp(signed["created_at"])
    except ValueError as exc:
        raise CsrMalformed(f"signed: {exc}") from exc
    if not csr_der:
        raise CsrMalformed("signed.csr is empty")
    return CsrStatement(
        signed["agent"], signed["site"], sequence, current, signed["rekey"], csr_der, created_at
    )


def _request(statement: CsrStatement, where: dict[str, str]) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_der_x509_csr(statement.csr_der)
        csr.public_key()
        valid = csr.is_signature_valid
        algorithm = csr.signature_hash_algorithm
    except _PARSE_ERRORS as exc:
        raise CsrRequestInvalid(f"the CSR does not parse: {exc}", **where) from exc
    if not valid:
        raise CsrRequestInvalid("the CSR's signature does not verify", **where)
    if not isinstance(algorithm, hashes.SHA256):
        raise CsrRequestInvalid("the CSR is not signed with SHA-256", **where)
    return csr


def _check_names(
    csr: x509.CertificateSigningRequest, names: Sequence[str], where: dict[str, str]
) -> None:
    wanted = sorted(names)
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        attributes = list(csr.subject)
    except x509.ExtensionNotFound:
        raise CsrNamesMismatch("the CSR has no subjectAltName", **where) from None
    except _PARSE_ERRORS as exc:
        raise CsrRequestInvalid(f"the CSR's extensions do not parse: {exc}", **where) from exc
    dns = [general.value for general in san if isinstance(general, x509.DNSName)]
    if len(dns) != len(san) or sorted(dns) != wanted:
        raise CsrNamesMismatch(
            f"the CSR names {', '.join(sorted(map(str, san)))}, not {', '.join(wanted)}", **where
        )
    for attribute in attributes:
        if attribute.oid != NameOID.COMMON_NAME or attribute.value != wanted[0]:
            raise CsrNamesMismatch(f"the CSR's subject holds {attribute.rfc4514_string()}", **where)


def _certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
