"""Certificate material for the emulator: validating uploads (codes of reference §5.6), describing
certificates the way ``CRT.list`` does (§4), and DSM's built-in self-signed certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from .envelope import ApiFailure

ILLEGAL_CERT = 5510
ILLEGAL_KEY = 5511
ILLEGAL_CHAIN = 5512
EC_UNSUPPORTED = 5529

_PEM = serialization.Encoding.PEM
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
}
_NAME_FIELDS = (
    ("common_name", NameOID.COMMON_NAME, True),
    ("country", NameOID.COUNTRY_NAME, True),
    ("organization", NameOID.ORGANIZATION_NAME, True),
    ("city", NameOID.LOCALITY_NAME, False),
    ("department", NameOID.ORGANIZATIONAL_UNIT_NAME, False),
    ("email", NameOID.EMAIL_ADDRESS, False),
    ("state", NameOID.STATE_OR_PROVINCE_NAME, False),
)


@dataclass(frozen=True)
class Material:
    """A validated key, leaf and chain, all as PEM text."""

    cert_pem: str
    key_pem: str
    chain_pem: str


def _certificates(data: bytes) -> list[x509.Certificate]:
    """Raises ValueError for anything that is not certificates, as DSM refuses it."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except x509.InvalidVersion as exc:  # not a ValueError in cryptography 47
        raise ValueError(str(exc)) from exc


def _private_key(data: bytes) -> Any:
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, password=None)
    return serialization.load_der_private_key(data, password=None)


def _pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(_PEM).decode("ascii") for c in certs)


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def validate_upload(cert: bytes, key: bytes, chain: bytes, accepts_ec_keys: bool) -> Material:
    """Check an uploaded key/cert/chain as DSM does; raise ``ApiFailure`` with DSM's code.

    A ``cert`` part holding several certificates keeps the first as the leaf and the rest in
    front of ``inter_cert`` (emulator choice; whether DSM tolerates it is unknown).
    """
    try:
        certs = _certificates(cert) if cert.strip() else []
    except ValueError:
        raise ApiFailure(ILLEGAL_CERT) from None
    if not certs:
        raise ApiFailure(ILLEGAL_CERT)
    leaf, extra = certs[0], certs[1:]
    try:
        private_key = _private_key(key) if key.strip() else None
    except (ValueError, TypeError, NotImplementedError):
        # TypeError: the key is encrypted; DSM needs it without a passphrase.
        private_key = None
    if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ApiFailure(ILLEGAL_KEY)
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and not accepts_ec_keys:
        raise ApiFailure(EC_UNSUPPORTED)
    if _spki(private_key.public_key()) != _spki(leaf.public_key()):
        raise ApiFailure(ILLEGAL_KEY)  # emulator choice: DSM's code for a mismatch is unknown
    try:
        intermediates = _certificates(chain) if chain.strip() else []
    except ValueError:
        raise ApiFailure(ILLEGAL_CHAIN) from None
    key_pem = private_key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Material(_pem([leaf]), key_pem.decode("ascii"), _pem(extra + intermediates))


def openssl_time(moment: datetime.datetime) -> str:
    """OpenSSL's text form, day space-padded: ``Mar  6 15:49:37 2027 GMT``."""
    utc = moment.astimezone(datetime.timezone.utc)
    month = _MONTHS[utc.month - 1]
    return f"{month} {utc.day:2d} {utc:%H:%M:%S} {utc.year} GMT"


def _name(name: x509.Name) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, oid, always in _NAME_FIELDS:
        values = name.get_attributes_for_oid(oid)
        if values or always:
            out[key] = str(values[0].value) if values else ""
    return out


def _alt_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
    return names + [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def describe(cert_pem: str, chain_pem: str, builtin: bool) -> dict[str, Any]:
    """The certificate-derived fields of a ``CRT.list`` entry."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    subject = _name(cert.subject)
    subject["sub_alt_name"] = _alt_names(cert)
    key = cert.public_key()
    fields: dict[str, Any] = {
        "issuer": _name(cert.issuer),
        "subject": subject,
        # DSM shows "" for its own certificate and the algorithm family for others.
        "key_types": ""
        if builtin
        else ("ECC" if isinstance(key, ec.EllipticCurvePublicKey) else "RSA"),
        "signature_algorithm": _SIGNATURES.get(
            cert.signature_algorithm_oid, cert.signature_algorithm_oid.dotted_string
        ),
        "valid_from": openssl_time(cert.not_valid_before_utc),
        "valid_till": openssl_time(cert.not_valid_after_utc),
    }
    if builtin and chain_pem:
        ca = x509.load_pem_x509_certificate(chain_pem.encode("ascii"))
        fields["self_signed_cacrt_info"] = {
            "issuer": _name(ca.issuer),
            "subject": _name(ca.subject),
        }
    return fields


def _build(
    subject: x509.Name,
    issuer: x509.Name,
    key: Any,
    signer: Any,
    now: datetime.datetime,
    days: int,
    ca: bool,
    alt: x509.SubjectAlternativeName | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if alt is not None:
        builder = builder.add_extension(alt, critical=False)
    return builder.sign(signer, hashes.SHA256())


def builtin_material(now: datetime.datetime) -> Material:
    """DSM's factory certificate: a leaf for "synology" signed by a local "Synology Inc. CA".

    The leaf also names localhost and 127.0.0.1 (emulator choice) so that a client given the CA
    file can verify the emulator's HTTPS listener.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Taipei"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Synology Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, "Synology Inc. CA"),
        ]
    )
    leaf_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Synology Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, "synology"),
        ]
    )
    alt = x509.SubjectAlternativeName(
        [
            x509.DNSName("synology"),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
    )
    ca = _build(ca_name, ca_name, ca_key, ca_key, now, 3650, True, None)
    leaf = _build(leaf_name, ca_name, leaf_key, ca_key, now, 825, False, alt)
    key_pem = leaf_key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Material(_pem([leaf]), key_pem.decode("ascii"), _pem([ca]))
