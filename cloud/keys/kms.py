"""An ECDSA P-256 key that never leaves AWS KMS: the ACME account key of `account_key =
"aws-kms:ARN"`.

`KmsSigningKey` stands where `cryptography` expects an EC private key, as far as signing goes:
`sign(data, ec.ECDSA(hashes.SHA256()))` returns a DER signature (what KMS `Sign` returns),
`curve` and `public_key()` (from KMS `GetPublicKey`). So josepy's ES256 turns its DER into JWS's
64-byte r‖s exactly as for a key in memory, and nothing else in the signing path changes. It has
no private half to export: `private_numbers`, `private_bytes` and `exchange` do not exist.

A message of up to 4096 bytes (every ACME request certdrop signs, in practice) is sent as it is
(`MessageType` RAW); a longer one as its SHA-256 digest (DIGEST), which KMS signs the same way.

The client comes from boto3's usual chain (the function's role, the operator's profile);
AWS_ENDPOINT_URL is honoured; the region is the key's own, from its ARN. It needs
`kms:GetPublicKey` and `kms:Sign` on the key, nothing more.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.account_key import SCHEME
from cloud.errors import AccountKeyError, AccountKeyUnavailable

log = logging.getLogger(__name__)

KEY_SPEC = "ECC_NIST_P256"
KEY_USAGE = "SIGN_VERIFY"
SIGNING_ALGORITHM = "ECDSA_SHA_256"
_RAW_LIMIT = 4096  # KMS signs a RAW message of at most this many bytes
# What KMS answers when it cannot answer now, as opposed to refusing.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "RequestLimitExceeded",
    }
)


@dataclass(frozen=True)
class KmsPublicKey:
    """What `GetPublicKey` says of a key."""

    key: ec.EllipticCurvePublicKey | None  # None: not an EC key
    key_spec: str
    key_usage: str
    signing_algorithms: tuple[str, ...]

    def problem(self) -> str | None:
        """Why this key cannot be an ES256 account key; None when it can."""
        if self.key_spec != KEY_SPEC:
            return f"its key spec is {self.key_spec}, not {KEY_SPEC}: create an {KEY_SPEC} key"
        if self.key_usage != KEY_USAGE:
            return f"its key usage is {self.key_usage}, not {KEY_USAGE}"
        if SIGNING_ALGORITHM not in self.signing_algorithms:
            return f"it does not sign with {SIGNING_ALGORITHM}"
        return None


class KmsSigningKey:
    """The KMS key `arn`, signing ES256 through KMS. The public key is asked once, on first use;
    every `sign` is one KMS `Sign` request."""

    key_size = 256

    def __init__(self, arn: str, client: Any = None):
        self.arn = arn
        self._client = client
        self._public: ec.EllipticCurvePublicKey | None = None

    def __repr__(self) -> str:
        return f"KmsSigningKey({self.arn!r})"

    @property
    def reference(self) -> str:
        return SCHEME + self.arn

    @property
    def curve(self) -> ec.EllipticCurve:
        return ec.SECP256R1()

    def describe(self) -> KmsPublicKey:
        """`GetPublicKey`, as KMS answered it (the doctor shows it)."""
        response = self._request("GetPublicKey", "get_public_key", KeyId=self.arn)
        spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec") or "unknown"
        public = serialization.load_der_public_key(response["PublicKey"])
        return KmsPublicKey(
            key=public if isinstance(public, ec.EllipticCurvePublicKey) else None,
            key_spec=spec,
            key_usage=response.get("KeyUsage") or "unknown",
            signing_algorithms=tuple(response.get("SigningAlgorithms") or ()),
        )

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half; AccountKeyError when the key is not an ECC_NIST_P256 signing key."""
        if self._public is None:
            described = self.describe()
            problem = described.problem()
            if problem is not None or described.key is None:
                raise AccountKeyError(self.reference, problem or "not an EC key")
            self._public = described.key
        return self._public

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """A DER-encoded ECDSA P-256 / SHA-256 signature of `data`, made by KMS."""
        algorithm = getattr(signature_algorithm, "algorithm", None)
        if not isinstance(algorithm, hashes.SHA256):
            raise AccountKeyError(self.reference, f"cannot sign with {signature_algorithm!r}")
        if len(data) <= _RAW_LIMIT:
            message, message_type = data, "RAW"
        else:
            message, message_type = hashlib.sha256(data).digest(), "DIGEST"
        response = self._request(
            "Sign",
            "sign",
            KeyId=self.arn,
            Message=message,
            MessageType=message_type,
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        return response["Signature"]

    def _request(self, operation: str, method: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
        )

        try:
            return getattr(self._kms(), method)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code") or "?"
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            text = f"KMS {operation} refused: {code}: {error.get('Message') or exc}"
            if code in _TRANSIENT_CODES or status >= 500:
                raise AccountKeyUnavailable(self.reference, text) from exc
            if "AccessDenied" in code or status == 403:
                text = f"no permission for kms:{operation} on the key ({code})"
            raise AccountKeyError(self.reference, text) from exc
        except (NoCredentialsError, PartialCredentialsError, NoRegionError) as exc:
            raise AccountKeyError(self.reference, f"KMS {operation}: {exc}") from exc
        except BotoCoreError as exc:  # unreachable, timed out
            text = f"KMS could not be reached for {operation}: {exc}"
            raise AccountKeyUnavailable(self.reference, text) from exc

    def _kms(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            region = self.arn.split(":")[3]
            retries = {"max_attempts": 4, "mode": "standard"}
            config = Config(retries=retries, connect_timeout=5, read_timeout=10)
            self._client = boto3.client("kms", region_name=region, config=config)
        return self._client
