"""AWS mode: the parts the Lambda functions use, built from their environment.

    CERTDROP_BUCKET                     the bucket (CERTDROP_PREFIX, optional, a key prefix)
    CERTDROP_CONFIG_KEY                 the configuration in it (default config/certdrop.toml)
    CERTDROP_QUEUE_URL                  the SQS queue of due sites
    CERTDROP_METRIC_NAMESPACE           CloudWatch namespace ("off": no metrics)
    CERTDROP_SECRET_ACME_ACCOUNT        ACME account records, a JSON object by CA directory
    CERTDROP_SECRET_ISSUER_SIGNING_KEY  the issuer's Ed25519 signing key (PKCS#8 PEM)
    CERTDROP_SECRET_ESCROW_KEY          the issuer's X25519 escrow key (PKCS#8 PEM)
    CERTDROP_SECRET_DNS_CREDENTIALS     a JSON object NAME → value: the `env:NAME` references of
                                        the configuration's DNS providers (issue function only)

The configuration's [storage] table is ignored here: the bucket is the store and Secrets Manager
the key store.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from cloud import config as config_module
from cloud.config import KeySecrets
from cloud.config.file import decode
from cloud.errors import ConfigError, ConfigProblem, KeyExists, StoreError
from cloud.keys.issuer import ESCROW_KEY, SIGNING_KEY
from cloud.store import Store, StoredObject
from cloud.store.url import open_store
from nas_agent import redaction, store_layout

log = logging.getLogger(__name__)

NAMESPACE = "certdrop"
_ACME_PREFIX = "acme-account-"


@dataclass(frozen=True)
class AwsSettings:
    bucket: str
    prefix: str
    config_key: str
    queue_url: str
    metric_namespace: str | None
    key_secrets: KeySecrets
    dns_secret: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AwsSettings:
        required = {"bucket": "CERTDROP_BUCKET", "queue_url": "CERTDROP_QUEUE_URL"}
        missing = [var for var in required.values() if not environ.get(var)]
        if missing:
            raise ConfigError(
                [
                    ConfigProblem(var, "not set", "deploy with infra/template.yaml")
                    for var in missing
                ]
            )
        namespace = environ.get("CERTDROP_METRIC_NAMESPACE", NAMESPACE)
        return cls(
            bucket=environ["CERTDROP_BUCKET"],
            prefix=environ.get("CERTDROP_PREFIX", ""),
            config_key=environ.get("CERTDROP_CONFIG_KEY", store_layout.CONFIG),
            queue_url=environ["CERTDROP_QUEUE_URL"],
            metric_namespace=None if namespace == "off" else namespace,
            # The tick's role reads no secret, so these are only needed by the issue function.
            key_secrets=KeySecrets(
                acme=environ.get("CERTDROP_SECRET_ACME_ACCOUNT", ""),
                signing=environ.get("CERTDROP_SECRET_ISSUER_SIGNING_KEY", ""),
                escrow=environ.get("CERTDROP_SECRET_ESCROW_KEY", ""),
            ),
            dns_secret=environ.get("CERTDROP_SECRET_DNS_CREDENTIALS") or None,
        )


def load_config(store: Store, key: str) -> config_module.Config:
    found = store.get(key)
    if not isinstance(found, StoredObject):
        raise ConfigError([ConfigProblem(key, "not in the bucket", "upload certdrop.toml there")])
    return config_module.parse(decode(found.body, key), PurePosixPath("/", key))


class SqsQueue:
    def __init__(self, queue_url: str, client: Any = None):
        import boto3

        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")

    def send(self, bodies: Sequence[str]) -> None:
        for start in range(0, len(bodies), 10):  # SQS takes 10 messages per batch
            batch = bodies[start : start + 10]
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if response.get("Failed"):
                raise StoreError(
                    self.queue_url, f"SQS refused {len(response['Failed'])} message(s)"
                )


class SecretsManagerKeyStore:
    """The issuer's keys in three secrets created by the template. The ACME secret holds a JSON
    object of account records by name, so one deployment can use several CAs."""

    def __init__(self, secrets: KeySecrets, client: Any = None, *, region: str | None = None):
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            self.client = client or boto3.client("secretsmanager", region_name=region)
        except BotoCoreError as exc:  # no region configured, an endpoint that does not parse
            raise StoreError(secrets.acme, f"Secrets Manager: {exc}") from exc
        self.secrets = secrets

    def load(self, name: str) -> bytes | None:
        if name.startswith(_ACME_PREFIX):
            value = self._accounts().get(name)
            return value.encode() if value is not None else None
        value = self._read(self._secret_for(name))
        return value.encode() if value else None

    def create(self, name: str, data: bytes) -> None:
        if name.startswith(_ACME_PREFIX):
            accounts = self._accounts()
            if name in accounts:
                raise KeyExists(name)
            accounts[name] = data.decode()
            self._write(self.secrets.acme, json.dumps(accounts))
            return
        secret = self._secret_for(name)
        if self._read(secret):
            raise KeyExists(name)
        self._write(secret, data.decode())

    def replace(self, name: str, data: bytes) -> None:
        """A new version of the key's secret (Secrets Manager keeps the previous one as
        AWSPREVIOUS); for an ACME account (a key rollover), of the account's entry only."""
        if name.startswith(_ACME_PREFIX):
            accounts = self._accounts()
            accounts[name] = data.decode()
            self._write(self.secrets.acme, json.dumps(accounts))
            return
        self._write(self._secret_for(name), data.decode())

    def _secret_for(self, name: str) -> str:
        secrets = {
            SIGNING_KEY: self.secrets.signing,
            ESCROW_KEY: self.secrets.escrow,
        }
        if name not in secrets:
            raise ValueError(f"no secret holds key {name!r}")
        return secrets[name]

    def _accounts(self) -> dict[str, str]:
        text = self._read(self.secrets.acme)
        return json.loads(text) if text else {}

    def _read(self, secret_id: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            value = self.client.get_secret_value(SecretId=secret_id).get("SecretString")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None  # the secret has no value yet
            raise StoreError(secret_id, f"Secrets Manager: {exc}") from exc
        except BotoCoreError as exc:  # unreachable, timed out, no credentials
            raise StoreError(secret_id, f"Secrets Manager: {exc}") from exc
        return value or None

    def _write(self, secret_id: str, value: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_secret_value(SecretId=secret_id, SecretString=value)
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(secret_id, f"Secrets Manager: {exc}") from exc


class Metrics:
    """The fleet's minimum days to expiry, the metric the expiry alarm watches. One metric, not
    one per site: each dimension value would be a custom metric billed monthly."""

    def __init__(self, namespace: str, client: Any = None):
        import boto3

        self.namespace = namespace
        self.client = client or boto3.client("cloudwatch")

    def days_to_expiry(self, by_site: Mapping[str, float]) -> None:
        if not by_site:
            return
        soonest = min(by_site, key=by_site.__getitem__)
        log.info("soonest expiry: %.1f days", by_site[soonest], extra={"site": soonest})
        self.client.put_metric_data(
            Namespace=self.namespace,
            MetricData=[
                {"MetricName": "MinDaysToExpiry", "Value": by_site[soonest], "Unit": "Count"}
            ],
        )


def load_dns_credentials(
    settings: AwsSettings, environ: MutableMapping[str, str], client: Any = None
) -> None:
    """Puts the DNS credentials secret's NAME → value pairs into `environ`, where the
    configuration's `env:NAME` references find them. Never logs a value."""
    if settings.dns_secret is None:
        return
    import boto3
    from botocore.exceptions import ClientError

    client = client or boto3.client("secretsmanager")
    try:
        text = client.get_secret_value(SecretId=settings.dns_secret).get("SecretString") or "{}"
        values = json.loads(text)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return  # created empty: no provider needs credentials (Route 53 uses the role)
        raise StoreError(settings.dns_secret, f"Secrets Manager: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(
            [ConfigProblem(settings.dns_secret, "not a JSON object", 'put {"NAME": "value"}')]
        ) from exc
    for value in values.values():
        redaction.register(str(value))
    environ.update({str(k): str(v) for k, v in values.items()})


def open_bucket(settings: AwsSettings) -> Store:
    return open_store(f"s3://{settings.bucket}/{settings.prefix}".rstrip("/"))
