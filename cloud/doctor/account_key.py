"""The doctor's account key check: the KMS key `ca.account_key` names exists, is an ECC_NIST_P256
signing key, and may be used to sign (one test signature, checked against its public key); and
the accounts the key store holds sign with the configured key. It asks the CA nothing and needs
no more than the issue function's own permissions (kms:GetPublicKey, kms:Sign)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.account_key import AccountKeyRef, AccountRecord, record_name
from cloud.doctor.report import Context, Finding, Report
from cloud.errors import AccountKeyError, CertdropError
from cloud.keys.kms import KmsSigningKey
from cloud.pipeline import parts

TITLE = "ACME account key: where it is kept, and that it signs"
_PROBE = b"certdrop doctor: may this key sign?"


def check(context: Context) -> Report:
    config = context.config
    ref = config.ca.account_key
    findings = [Finding("ca.account_key", True, _where(ref, context))]
    if ref.kms_arn is not None:
        findings += _kms(KmsSigningKey(ref.kms_arn))
    accounts = [(config.ca.directory, False), (config.ca.staging_directory, True)]
    for directory, staging in accounts:
        if directory is not None:
            findings += _account(context, ref, directory, staging)
    return Report(TITLE, tuple(findings))


def _where(ref: AccountKeyRef, context: Context) -> str:
    if ref.kms_arn is not None:
        return f"{ref}: signatures are KMS Sign requests; no private key leaves KMS"
    secrets = context.config.storage.key_secrets
    where = "Secrets Manager" if secrets else f"{context.config.storage.keys_dir}"
    return f'{ref}: a key kept in the key store ({where}); "aws-kms:ARN" keeps it in KMS'


def _kms(key: KmsSigningKey) -> list[Finding]:
    try:
        described = key.describe()
    except AccountKeyError as exc:
        return [Finding("kms:GetPublicKey", False, f"{exc.cause} ({exc.code})")]
    problem = described.problem()
    spec = f"{described.key_spec}, {described.key_usage}, {', '.join(described.signing_algorithms)}"
    findings = [Finding("kms:GetPublicKey", problem is None, problem or spec)]
    if problem is not None or described.key is None:
        return findings
    try:
        signature = key.sign(_PROBE, ec.ECDSA(hashes.SHA256()))
        described.key.verify(signature, _PROBE, ec.ECDSA(hashes.SHA256()))
    except AccountKeyError as exc:
        return [*findings, Finding("kms:Sign", False, f"{exc.cause} ({exc.code})")]
    except (InvalidSignature, ValueError):
        text = "a test signature does not verify with the key's public half"
        return [*findings, Finding("kms:Sign", False, text)]
    text = "a test signature verifies with the key's public half"
    return [*findings, Finding("kms:Sign", True, text)]


def _account(context: Context, ref: AccountKeyRef, directory: str, staging: bool) -> list[Finding]:
    name = record_name(directory, staging=staging)
    try:
        stored = parts.keystore(context.config).load(name)
        record = AccountRecord.loads(stored, name) if stored is not None else None
    except CertdropError as exc:
        return [Finding(directory, False, f"account record not read: {exc} ({exc.code})")]
    if record is None:
        text = "no account yet: the first run registers one with this key"
        return [Finding(directory, True, text)] if not staging else []
    if record.next is not None:
        text = (
            f"the account {record.uri} is being moved from {record.key.ref} to "
            f"{record.next.ref}: the next run (or `certdrop account rollover`) finishes it"
        )
        return [Finding(directory, True, text)]
    if record.key.ref != ref:
        text = (
            f"the account {record.uri} signs with {record.key.ref}, not this key: run "
            f'`certdrop account rollover --to {ref}`, or set account_key = "{record.key.ref}"'
        )
        return [Finding(directory, False, text)]
    return [Finding(directory, True, f"the account {record.uri} signs with this key")]
