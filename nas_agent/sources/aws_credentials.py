"""The AWS credentials and region of an `s3://` source, found as the AWS CLI and SDKs find them.

    credentials = read_credentials_file("aws-creds")   # source.credentials_file, mode 0600
    credentials = from_environment(os.environ)         # else: environment, then shared file
    region = region_from(os.environ, configured=None)

Where credentials come from, first found wins:

1. `source.credentials_file`: an AWS shared-credentials file whose `[default]` section holds
   `aws_access_key_id`, `aws_secret_access_key` and optionally `aws_session_token`; it must be
   mode 0600 and is read when the source is opened.
2. The environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
3. The shared credentials file AWS_SHARED_CREDENTIALS_FILE names (default ~/.aws/credentials),
   section AWS_PROFILE (default `default`).

Instance roles, SSO and `credential_process` are not looked for: a NAS has none of them. Every
secret found is registered with `nas_agent.redaction`, so no log line shows it. Standard library
only; runs on Python 3.8.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from typing import Mapping

from nas_agent import redaction
from nas_agent.config.errors import SecretFileError
from nas_agent.secret_files import read_secret_file

_KEY_ID, _SECRET, _TOKEN = "aws_access_key_id", "aws_secret_access_key", "aws_session_token"
_SETTING = "source.credentials_file"
DEFAULT_REGION = "us-east-1"  # the SDKs' S3 region when none is configured


@dataclass(frozen=True)
class Credentials:
    access_key_id: str  # names the key; no secret
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


class CredentialsMissing(Exception):
    """No credentials anywhere, or only part of them (`partial`): what to set, in the message."""

    def __init__(self, message: str, *, partial: bool = False):
        self.partial = partial
        super().__init__(message)


def read_credentials_file(path: str) -> Credentials:
    """The `[default]` section of `source.credentials_file`, after the secrets-file checks."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_secret_file(path, key=_SETTING), source=path)
    except configparser.Error as exc:
        raise SecretFileError(
            path, "not an INI file", "write [default] and its keys", key=_SETTING
        ) from exc
    if not parser.has_section("default"):
        raise SecretFileError(path, "no [default] section", "write [default] first", key=_SETTING)
    values = _values(parser["default"])
    missing = [name for name in (_KEY_ID, _SECRET) if name not in values]
    if missing:
        raise SecretFileError(
            path,
            f"[default] lacks {', '.join(missing)}",
            f"add {' and '.join(missing)}",
            key=_SETTING,
        )
    return _credentials(values)


def from_environment(environ: Mapping[str, str]) -> Credentials:
    """The environment's credentials, else the shared credentials file's; CredentialsMissing
    when neither holds a key id and its secret."""
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN")
        values = {_KEY_ID: key_id, _SECRET: secret}
        if token:
            values[_TOKEN] = token
        return _credentials(values)
    if key_id or secret:
        raise CredentialsMissing(
            "the environment has only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            partial=True,
        )
    path = environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    profile = environ.get("AWS_PROFILE") or "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        parser = configparser.ConfigParser(interpolation=None)  # unreadable: as if absent
    if parser.has_section(profile):
        values = _values(parser[profile])
        if _KEY_ID in values and _SECRET in values:
            return _credentials(values)
        if values:
            raise CredentialsMissing(
                f"[{profile}] of {path} lacks {_KEY_ID} or {_SECRET}", partial=True
            )
    raise CredentialsMissing(
        "no AWS credentials found (environment, shared credentials file); "
        "set source.credentials_file or the AWS environment"
    )


def region_from(environ: Mapping[str, str], configured: str | None) -> str:
    """`source.region`, else AWS_REGION or AWS_DEFAULT_REGION, else us-east-1."""
    return (
        configured
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def _values(section: configparser.SectionProxy) -> dict[str, str]:
    return {name: section[name].strip() for name in (_KEY_ID, _SECRET, _TOKEN) if section.get(name)}


def _credentials(values: Mapping[str, str]) -> Credentials:
    for name in (_SECRET, _TOKEN):  # the access key id names the key, it is no secret
        if name in values:
            redaction.register(values[name])
    return Credentials(values[_KEY_ID], values[_SECRET], values.get(_TOKEN))
