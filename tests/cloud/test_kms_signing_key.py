"""The KMS account key without a CA: DER signatures as JWS's r‖s, long messages as digests, KMS
failures as errors with codes, and `ca.account_key`'s grammar.

KMS is played by a fake that answers only the two calls the key may make and fails the test on
anything else; the signatures it returns are made with a key of its own, as KMS would."""

from __future__ import annotations

import hashlib
from typing import Any

import josepy as jose
import pytest
from acme import jws
from botocore.exceptions import ClientError, EndpointConnectionError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from cloud.acme.account_key import FILE, AccountKeyRef, KmsJWK, parse_ref
from cloud.config import parse
from cloud.errors import AccountKeyError, AccountKeyUnavailable, ConfigError
from cloud.keys.kms import KmsSigningKey

ARN = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class FakeKms:
    """KMS's GetPublicKey and Sign for one P-256 key; any other call fails the test."""

    def __init__(self, *, spec: str = "ECC_NIST_P256", signature: bytes | None = None):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.spec = spec
        self.signature = signature  # a fixed DER signature to answer with
        self.signed: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def get_public_key(self, *, KeyId: str) -> dict[str, Any]:
        assert KeyId == ARN
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "KeyId": KeyId,
            "PublicKey": der,
            "KeySpec": self.spec,
            "KeyUsage": "SIGN_VERIFY",
            "SigningAlgorithms": ["ECDSA_SHA_256"],
        }

    def sign(self, **params: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        assert params["KeyId"] == ARN and params["SigningAlgorithm"] == "ECDSA_SHA_256"
        self.signed.append(params)
        if self.signature is not None:
            return {"Signature": self.signature}
        if params["MessageType"] == "DIGEST":
            algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
        else:
            algorithm = ec.ECDSA(hashes.SHA256())
        return {"Signature": self.key.sign(params["Message"], algorithm)}

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected KMS call {name}")


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "said KMS"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Sign")


def test_a_kms_signature_becomes_the_64_byte_r_s_a_jws_carries_and_verifies():
    kms = FakeKms()
    jwk = KmsJWK(KmsSigningKey(ARN, client=kms))

    signed = jws.JWS.sign(b'{"x": 1}', key=jwk, alg=jose.ES256, nonce=b"n", url="https://ca/")

    assert len(signed.signature.signature) == 64
    assert signed.verify(jose.JWKEC(key=kms.key.public_key()))
    assert [p["MessageType"] for p in kms.signed] == ["RAW"]


def test_short_r_and_s_keep_their_leading_zeros_in_the_jws_signature():
    der = utils.encode_dss_signature(1, 2)
    jwk = KmsJWK(KmsSigningKey(ARN, client=FakeKms(signature=der)))

    signed = jws.JWS.sign(b"{}", key=jwk, alg=jose.ES256, nonce=None)

    assert signed.signature.signature == (1).to_bytes(32, "big") + (2).to_bytes(32, "big")


def test_a_message_over_4096_bytes_is_signed_as_its_sha256_digest():
    kms = FakeKms()
    key = KmsSigningKey(ARN, client=kms)
    message = b"x" * 4097

    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))

    (sent,) = kms.signed
    assert (sent["MessageType"], sent["Message"]) == ("DIGEST", hashlib.sha256(message).digest())
    kms.key.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_the_jwk_of_a_kms_key_serializes_its_public_half_only():
    kms = FakeKms()
    jwk = KmsJWK(KmsSigningKey(ARN, client=kms))
    public = jose.JWKEC(key=kms.key.public_key())

    assert jwk.to_json() == public.to_json()
    assert "d" not in jwk.to_json()
    assert jwk.thumbprint() == public.thumbprint()
    assert not isinstance(jwk.signer, ec.EllipticCurvePrivateKey)


def test_a_key_of_another_spec_is_refused_naming_the_spec_it_needs():
    key = KmsSigningKey(ARN, client=FakeKms(spec="ECC_NIST_P384"))

    with pytest.raises(AccountKeyError) as caught:
        key.public_key()

    assert caught.value.code == "account_key.unusable"
    assert "ECC_NIST_P384, not ECC_NIST_P256" in str(caught.value)


@pytest.mark.parametrize(
    ("error", "code", "transient"),
    [
        (_client_error("AccessDeniedException", 400), "account_key.unusable", False),
        (_client_error("DisabledException", 400), "account_key.unusable", False),
        (_client_error("NotFoundException", 400), "account_key.unusable", False),
        (_client_error("ThrottlingException", 400), "account_key.unavailable", True),
        (_client_error("KMSInternalException", 500), "account_key.unavailable", True),
        (EndpointConnectionError(endpoint_url="https://kms"), "account_key.unavailable", True),
    ],
    ids=["access-denied", "disabled", "not-found", "throttled", "internal", "unreachable"],
)
def test_kms_failures_are_terminal_or_transient_account_key_errors(error, code, transient):
    kms = FakeKms()
    kms.error = error

    with pytest.raises(AccountKeyError) as caught:
        KmsSigningKey(ARN, client=kms).sign(b"m", ec.ECDSA(hashes.SHA256()))

    assert (caught.value.code, caught.value.transient) == (code, transient)
    assert caught.value.key == f"aws-kms:{ARN}"
    assert isinstance(caught.value, AccountKeyUnavailable) is transient


def test_a_denied_sign_names_the_permission():
    kms = FakeKms()
    kms.error = _client_error("AccessDeniedException", 400)

    with pytest.raises(AccountKeyError) as caught:
        KmsSigningKey(ARN, client=kms).sign(b"m", ec.ECDSA(hashes.SHA256()))

    assert "no permission for kms:Sign on the key" in str(caught.value)


# --- ca.account_key -------------------------------------------------------------------------

CA = """
[ca]
directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
terms_agreed = true
"""


def test_the_account_key_is_kept_in_the_key_store_unless_a_kms_key_is_named(tmp_path):
    assert parse(CA, tmp_path / "c.toml").ca.account_key == FILE
    named = parse(CA + f'account_key = "aws-kms:{ARN}"\n', tmp_path / "c.toml")
    assert named.ca.account_key == AccountKeyRef(ARN)
    assert str(named.ca.account_key) == f"aws-kms:{ARN}"
    assert parse_ref("file") == FILE


@pytest.mark.parametrize(
    "value",
    [
        "aws-kms:arn:aws:kms:eu-central-1:111122223333:alias/certdrop",  # an alias can move
        "aws-kms:1234abcd-12ab-34cd-56ef-1234567890ab",  # a bare key id names no region
        "kms:" + ARN,
        "/etc/certdrop/account.pem",
    ],
)
def test_an_account_key_that_names_no_kms_key_arn_is_a_config_problem(tmp_path, value):
    with pytest.raises(ConfigError) as caught:
        parse(CA + f'account_key = "{value}"\n', tmp_path / "c.toml")

    (problem,) = caught.value.problems
    assert problem.key == "ca.account_key"
    assert "aws-kms:arn:aws:kms:REGION:ACCOUNT:key/ID" in problem.fix
