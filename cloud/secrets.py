"""Secrets by reference: configuration names where a secret lives, never the secret itself.

env:NAME               the environment variable NAME
file:/path             the file's content (surrounding whitespace stripped); a relative path
                       in the configuration is made absolute from its folder as it is read
aws-sm:ID              an AWS Secrets Manager secret's string (ID: its name or ARN)
aws-sm:ID#field        one field of a secret holding a JSON object
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cloud.errors import SecretError, SecretUnavailable
from nas_agent import redaction

SCHEMES = ("env", "file", "aws-sm")


@dataclass(frozen=True)
class SecretRef:
    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def parse_ref(text: str) -> SecretRef | None:
    """The reference in `text`, or None when it is not written as one."""
    scheme, sep, target = text.partition(":")
    if not sep or scheme not in SCHEMES or not target:
        return None
    return SecretRef(scheme, target)


def resolve(ref: SecretRef) -> str:
    """The secret's value, from now on masked in the logs."""
    value = _read(ref)
    redaction.register(value, short_as_word=True)  # named as a secret by the configuration
    return value


def _read(ref: SecretRef) -> str:
    if ref.scheme == "aws-sm":
        return _from_secrets_manager(ref)
    if ref.scheme == "env":
        value = os.environ.get(ref.target)
        if value is None:
            raise SecretError(str(ref), "environment variable is not set")
        return value
    try:
        return Path(ref.target).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(str(ref), f"cannot read file ({exc.strerror})") from exc


def _from_secrets_manager(ref: SecretRef) -> str:
    import boto3  # only in AWS mode
    from botocore.exceptions import BotoCoreError, ClientError

    secret_id, _, field = ref.target.partition("#")
    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError) as exc:
        if _unavailable(exc):
            raise SecretUnavailable(str(ref), f"cannot reach Secrets Manager ({exc})") from exc
        raise SecretError(str(ref), f"cannot read it from Secrets Manager ({exc})") from exc
    except KeyError as exc:
        raise SecretError(str(ref), "the secret holds no string (SecretString)") from exc
    if not field:
        return value
    try:
        return str(json.loads(value)[field])
    except (ValueError, KeyError, TypeError) as exc:
        raise SecretError(str(ref), f"the secret holds no JSON field {field!r}") from exc


def _unavailable(exc: Exception) -> bool:
    """Secrets Manager could not be reached, or asked to be asked later (throttling, a 5xx), as
    opposed to refusing (no such secret, access denied, no credentials or region configured)."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = exc.response.get("Error", {}).get("Code")
        return status >= 500 or code in ("ThrottlingException", "InternalServiceError")
    return not isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError)
