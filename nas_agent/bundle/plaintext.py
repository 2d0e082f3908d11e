"""The bundle plaintext: what a sealed object holds once opened, and its canonical JSON encoding.

    {"chain_pem": ..., "format": "certdrop-bundle-v1", "issued_at": "2026-11-28T09:00:00Z",
     "key_pem": "-----BEGIN PRIVATE KEY-----...", "leaf_pem": ..., "names": ["*.example.com",
     "example.com"], "not_after": ..., "not_before": ..., "site": "example.com", "version": 7}

Canonical JSON (sorted keys, no whitespace, ASCII with \\u escapes), so the bytes are the same on
every Python. The decoder reads untrusted bytes and raises only MalformedPlaintext or
UnsupportedFormat. The private key lives in this object in memory only; repr leaves it out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nas_agent._encoding import canonical_json, format_timestamp, load_json_object, parse_timestamp
from nas_agent.errors import MalformedPlaintext, UnsupportedFormat
from nas_agent.ids import SITE_ID_PATTERN, is_site_id

PLAINTEXT_FORMAT = "certdrop-bundle-v1"
MAX_PLAINTEXT_BYTES = 256 * 1024
# Versions are JSON numbers: stay inside what every JSON reader holds exactly.
MAX_VERSION = 2**53 - 1

_FIELDS = frozenset(
    {
        "format",
        "site",
        "version",
        "key_pem",
        "leaf_pem",
        "chain_pem",
        "names",
        "not_before",
        "not_after",
        "issued_at",
    }
)


@dataclass(frozen=True)
class BundlePlaintext:
    site: str
    version: int
    key_pem: str = field(repr=False)
    leaf_pem: str
    chain_pem: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issued_at: datetime

    def leaf_sha256(self) -> str:
        """Hex SHA-256 of the leaf certificate's DER: the fingerprint the signed entry carries."""
        leaf = x509.load_pem_x509_certificate(self.leaf_pem.encode("ascii"))
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


def is_version(value: object) -> bool:
    return type(value) is int and 1 <= value <= MAX_VERSION


def make_plaintext(
    *, site: str, version: int, key_pem: str, leaf_pem: str, chain_pem: str, issued_at: datetime
) -> BundlePlaintext:
    """Build a plaintext for the cloud, taking names and validity from the leaf certificate."""
    if not is_site_id(site):
        raise ValueError(f"site {site!r} does not match {SITE_ID_PATTERN}")
    if not is_version(version):
        raise ValueError(f"version {version!r} is not an integer from 1 to {MAX_VERSION}")
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode("ascii"))
    return BundlePlaintext(
        site=site,
        version=version,
        key_pem=key_pem,
        leaf_pem=leaf_pem,
        chain_pem=chain_pem,
        names=dns_names(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        # The wire format holds whole seconds.
        issued_at=issued_at.astimezone(timezone.utc).replace(microsecond=0),
    )


def dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The DNS names of the certificate's subjectAltName, sorted; none if it has no SAN."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(sorted(set(san.value.get_values_for_type(x509.DNSName))))


def encode_plaintext(plaintext: BundlePlaintext) -> bytes:
    return canonical_json(
        {
            "format": PLAINTEXT_FORMAT,
            "site": plaintext.site,
            "version": plaintext.version,
            "key_pem": plaintext.key_pem,
            "leaf_pem": plaintext.leaf_pem,
            "chain_pem": plaintext.chain_pem,
            "names": list(plaintext.names),
            "not_before": format_timestamp(plaintext.not_before),
            "not_after": format_timestamp(plaintext.not_after),
            "issued_at": format_timestamp(plaintext.issued_at),
        }
    )


def decode_plaintext(data: bytes) -> BundlePlaintext:
    """Read opened bytes; raise MalformedPlaintext or UnsupportedFormat, nothing else."""
    document = read_document(data, PLAINTEXT_FORMAT, "bundle plaintext", _FIELDS)
    return BundlePlaintext(
        site=document["site"],
        version=document["version"],
        key_pem=pem_field(document, "key_pem"),
        leaf_pem=pem_field(document, "leaf_pem"),
        chain_pem=pem_field(document, "chain_pem"),
        names=names_field(document["names"]),
        not_before=timestamp_field(document, "not_before"),
        not_after=timestamp_field(document, "not_after"),
        issued_at=timestamp_field(document, "issued_at"),
    )


def read_document(
    data: bytes, format_name: str, what: str, fields: frozenset[str]
) -> dict[str, Any]:
    """The opened bytes as a JSON object of format `format_name` holding exactly `fields`, its
    `site` and `version` checked; a later version of the same format (`what` in the message) is
    UnsupportedFormat, anything else MalformedPlaintext."""
    try:
        document = load_json_object(data, max_size=MAX_PLAINTEXT_BYTES)
    except ValueError as exc:
        raise MalformedPlaintext(f"not a JSON object: {exc}") from exc
    found = document.get("format")
    if found != format_name:
        family = format_name.rsplit("-", 1)[0] + "-"  # "certdrop-bundle-" of "…-v1"
        if isinstance(found, str) and found.startswith(family):
            raise UnsupportedFormat(what, found)
        raise MalformedPlaintext(f"format is {found!r}, expected {format_name!r}")
    if set(document) != fields:
        missing = sorted(fields - set(document))
        extra = sorted(set(document) - fields)
        raise MalformedPlaintext(f"fields missing {missing}, unexpected {extra}")
    if not is_site_id(document["site"]):
        raise MalformedPlaintext(f"site is not a site id ({SITE_ID_PATTERN})")
    if not is_version(document["version"]):
        raise MalformedPlaintext(f"version is not an integer from 1 to {MAX_VERSION}")
    return document


def pem_field(document: dict[str, Any], name: str) -> str:
    value = document[name]
    # Only ASCII: a lone surrogate or any other character could not even be encoded for the parser.
    if not isinstance(value, str) or not value.isascii() or "-----BEGIN " not in value:
        raise MalformedPlaintext(f"{name} is not PEM text")
    return value


def names_field(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(name, str) and name.isascii() and name for name in value
    ):
        raise MalformedPlaintext("names is not a list of ASCII DNS names")
    return tuple(value)


def timestamp_field(document: dict[str, Any], name: str) -> datetime:
    try:
        return parse_timestamp(document[name])
    except ValueError as exc:
        raise MalformedPlaintext(f"{name}: {exc}") from exc
