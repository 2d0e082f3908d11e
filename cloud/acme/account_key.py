"""The ACME account's key: where it is kept (`ca.account_key`), the JWK that signs with it, and
the account's record in the key store.

    account_key = "file"          the default: a P-256 key made here, kept as a PKCS#8 PEM in the
                                  key store (keys_dir's owner-only file, or the stack's ACME
                                  account secret)
    account_key = "aws-kms:ARN"   an ECC_NIST_P256 KMS key (a key ARN, not an alias: an alias can
                                  be pointed at another key); every signature is a KMS `Sign`
                                  request, and no private key is ever in this process

One record per CA directory, under `record_name`:

    {"directory": URL, "uri": the account's URL, "key": PEM | "kms_key": ARN,
     "next": {"key": PEM} | {"kms_key": ARN}}       "next" only while a rollover is under way
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import josepy as jose
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.certificate_keys import pkcs8_pem
from cloud.errors import AccountKeyError

if TYPE_CHECKING:
    from cloud.keys.kms import KmsSigningKey

FILE_NAME = "file"
SCHEME = "aws-kms:"  # how `ca.account_key` names a KMS key
_KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/"
    r"(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
EXAMPLE = (
    'write "file" (a key kept in the key store) or "aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID"'
)


@dataclass(frozen=True)
class AccountKeyRef:
    """Where the account key is: a KMS key (`kms_arn`), or a key kept in the key store (None)."""

    kms_arn: str | None = None

    def __str__(self) -> str:
        return SCHEME + self.kms_arn if self.kms_arn else FILE_NAME


FILE = AccountKeyRef()


def parse_ref(text: str) -> AccountKeyRef:
    """`ca.account_key`'s value; ValueError saying what is wrong."""
    if text == FILE_NAME:
        return FILE
    if not text.startswith(SCHEME):
        raise ValueError(f"{text!r} is neither {FILE_NAME!r} nor {SCHEME}ARN")
    arn = text[len(SCHEME) :]
    if not _KMS_KEY_ARN.match(arn):
        raise ValueError(f"{arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
    return AccountKeyRef(arn)


def record_name(directory: str, *, staging: bool = False) -> str:
    """The key store's name for the account at `directory` (a dry run's has its own)."""
    kind = "acme-account-staging-" if staging else "acme-account-"
    return kind + hashlib.sha256(directory.encode()).hexdigest()[:16]


class KmsJWK(jose.JWKEC):
    """An EC JWK whose private half is a KMS key: josepy's ES256 calls `key.sign` (KMS `Sign`,
    DER) and makes r‖s of it; everything that serializes the JWK (the `jwk` header, thumbprints,
    EAB) sees the public key only."""

    __slots__ = ("key",)  # josepy takes the fields' names from the class's own slots

    def __init__(self, signer: KmsSigningKey):
        super().__init__(key=signer)

    @property
    def signer(self) -> KmsSigningKey:
        return cast("KmsSigningKey", self.key._wrapped)

    def public_key(self) -> jose.JWKEC:
        return jose.JWKEC(key=self.signer.public_key())

    def fields_to_partial_json(self) -> dict[str, Any]:
        return self.public_key().fields_to_partial_json()


@dataclass(frozen=True)
class AccountKey:
    """The key an account signs with: where it is, and the JWK that signs."""

    ref: AccountKeyRef
    jwk: jose.JWK
    pem: bytes | None = None  # a file key's PKCS#8 PEM; None for a KMS key

    def fields(self) -> dict[str, str]:
        if self.ref.kms_arn is not None:
            return {"kms_key": self.ref.kms_arn}
        assert self.pem is not None
        return {"key": self.pem.decode()}


def new_key(ref: AccountKeyRef) -> AccountKey:
    """A fresh P-256 key for FILE; the named KMS key otherwise, its public half asked now (an
    AccountKeyError before anything is sent when it is not an ECC_NIST_P256 signing key)."""
    if ref.kms_arn is None:
        key = ec.generate_private_key(ec.SECP256R1())
        return AccountKey(FILE, jose.JWKEC(key=key), pkcs8_pem(key))
    jwk = _kms_jwk(ref.kms_arn)
    jwk.signer.public_key()
    return AccountKey(ref, jwk)


def _kms_jwk(arn: str) -> KmsJWK:
    # Imported here: only an account kept in KMS needs the KMS client's code.
    from cloud.keys.kms import KmsSigningKey

    return KmsJWK(KmsSigningKey(arn))


def key_from_fields(fields: Mapping[str, Any]) -> AccountKey:
    """The key a record names (a KMS key is not asked for anything yet)."""
    if isinstance(fields.get("kms_key"), str):
        ref = parse_ref(SCHEME + fields["kms_key"])
        assert ref.kms_arn is not None
        return AccountKey(ref, _kms_jwk(ref.kms_arn))
    pem = fields["key"].encode()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the account key is not an EC key")
    return AccountKey(FILE, jose.JWKEC(key=key), pem)


@dataclass(frozen=True)
class AccountRecord:
    directory: str
    uri: str
    key: AccountKey
    next: AccountKey | None = None  # the key a rollover under way moves to

    def dumps(self) -> bytes:
        record: dict[str, Any] = {"directory": self.directory, "uri": self.uri}
        record.update(self.key.fields())
        if self.next is not None:
            record["next"] = self.next.fields()
        return json.dumps(record).encode()

    @classmethod
    def loads(cls, data: bytes, name: str) -> AccountRecord:
        """The record stored as `name`; AccountKeyError when it cannot be read."""
        try:
            record = json.loads(data)
            following = record.get("next")
            return cls(
                directory=record["directory"],
                uri=record["uri"],
                key=key_from_fields(record),
                next=key_from_fields(following) if following is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AccountKeyError(name, f"the stored account record does not load ({exc})") from exc
