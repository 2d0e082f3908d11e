"""The Lambda handlers with real-shaped events: moto's server for S3, SQS, Secrets Manager and
CloudWatch, Pebble + BIND for issuance."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cloud.acme.certificate_keys import KeyType
from cloud.acme.client import AcmeClient
from cloud.aws import handlers
from cloud.config import SiteConfig
from cloud.errors import StoreError
from cloud.pipeline.schedule import marker_key
from cloud.pipeline.tick import RESIGN_MESSAGE
from cloud.publish.publisher import Publisher
from cloud.store.s3 import S3Store
from lab.moto import MotoServer, fake_aws_env
from nas_agent import store_layout
from nas_agent.bundle import parse_index
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys, generate_issuer_keys, private_key_pem

BUCKET = "certdrop-fleet"
SITES = ("never-run", "future", "past", "changed", "later")


def lambda_config(pebble, bind_auth, tsig_key, sites: tuple[str, ...] = SITES) -> str:
    """The configuration the Lambda functions read from the bucket: the lab's CA and BIND, the
    TSIG secret from the DNS credentials (env:), one site `<s>.example.test` per name."""
    sites_toml = "\n".join(
        f'[sites.{s}]\ndomain = "{s}.example.test"\nprovider = "bind"\n' for s in sites
    )
    return f"""
[ca]
directory = "{pebble.directory_url}"
ca_bundle = "{pebble.ca_bundle}"
terms_agreed = true
order_timeout = 30

[dns]
resolvers = ["{bind_auth.address}"]
propagation_timeout = 10
[dns.nameservers]
"ns1.example.test" = "{bind_auth.address}"
"ns2.example.test" = "{bind_auth.address}"

[providers.bind]
type = "rfc2136"
server = "{bind_auth.address}"
tsig_name = "{tsig_key.name}"
tsig_secret = "env:TSIG_SECRET"

{sites_toml}
"""


@pytest.fixture
def aws(pebble, bind_auth, tsig_key, monkeypatch):
    """A deployed stack on moto: bucket with the config, queue, the four secrets, env vars."""
    with fake_aws_env(), MotoServer() as moto:
        moto.reset()  # moto's backends are process-wide: start from an empty account
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        s3, sqs, sm = moto.client("s3"), moto.client("sqs"), moto.client("secretsmanager")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(
            Bucket=BUCKET,
            Key="config/certdrop.toml",
            Body=lambda_config(pebble, bind_auth, tsig_key).encode(),
        )
        queue_url = sqs.create_queue(QueueName="certdrop-issue")["QueueUrl"]
        issuer = generate_issuer_keys()
        secrets = {
            "ACME_ACCOUNT": sm.create_secret(Name="certdrop/acme")["ARN"],  # empty, as deployed
            "ISSUER_SIGNING_KEY": sm.create_secret(
                Name="certdrop/signing",
                SecretString=private_key_pem(issuer.signing_key).decode(),
            )["ARN"],
            "ESCROW_KEY": sm.create_secret(
                Name="certdrop/escrow", SecretString=private_key_pem(issuer.escrow_key).decode()
            )["ARN"],
            "DNS_CREDENTIALS": sm.create_secret(
                Name="certdrop/dns", SecretString=json.dumps({"TSIG_SECRET": tsig_key.secret})
            )["ARN"],
        }
        monkeypatch.setenv("CERTDROP_MODE", "aws")
        monkeypatch.setenv("CERTDROP_BUCKET", BUCKET)
        monkeypatch.setenv("CERTDROP_CONFIG_KEY", "config/certdrop.toml")
        monkeypatch.setenv("CERTDROP_QUEUE_URL", queue_url)
        monkeypatch.setenv("CERTDROP_METRIC_NAMESPACE", "certdrop")
        for name, arn in secrets.items():
            monkeypatch.setenv(f"CERTDROP_SECRET_{name}", arn)
        monkeypatch.delenv("TSIG_SECRET", raising=False)
        yield moto, queue_url, issuer, S3Store(BUCKET, endpoint_url=moto.endpoint_url)


def _site(site_id: str, names_extra: tuple[str, ...] = ()) -> SiteConfig:
    domain = f"{site_id}.example.test"
    return SiteConfig(
        site_id, domain, (domain, f"*.{domain}", *names_extra), KeyType.EC_P256, "bind"
    )


def _sqs_event(bodies: list[str], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:q"):
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEB" + uuid.uuid4().hex,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795867200000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1795867200001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def _scheduler_event():
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/certdrop-tick"],
        "detail": "{}",
    }


def _received(moto, queue_url) -> list[str]:
    sqs = moto.client("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            return bodies
        for message in got["Messages"]:
            bodies.append(json.loads(message["Body"])["site"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_tick_enqueues_exactly_the_due_sites(aws):
    moto, queue_url, _, store = aws
    now = datetime.now(UTC)
    store.put(marker_key(_site("future"), now + timedelta(days=3), now + timedelta(days=60)), b"")
    store.put(marker_key(_site("past"), now - timedelta(minutes=1), now + timedelta(days=20)), b"")
    store.put(marker_key(_site("later"), now + timedelta(hours=5), now + timedelta(days=40)), b"")
    # Scheduled far ahead, but its names in the configuration are not those it was issued for.
    old = _site("changed", ("old.example.test",))
    store.put(marker_key(old, now + timedelta(days=30), now + timedelta(days=60)), b"")
    store.request_counts.clear()

    result = handlers.tick(_scheduler_event(), None)

    assert sorted(result["due"]) == ["changed", "never-run", "past"]
    assert sorted(_received(moto, queue_url)) == ["changed", "never-run", "past"]
    metrics = moto.client("cloudwatch").list_metrics(Namespace="certdrop")["Metrics"]
    assert [m["MetricName"] for m in metrics] == ["MinDaysToExpiry"]


def test_an_issue_message_leads_to_published_bundles(aws):
    store, issuer = aws[3], aws[2]
    keys = generate_agent_keys("nas-1")
    Publisher(store, issuer).registry.add(enrollment_of(keys), ("never-run",), datetime.now(UTC))

    result = handlers.issue(_sqs_event([json.dumps({"site": "never-run"})]), None)

    assert result == {"batchItemFailures": []}
    index = store.get("agents/nas-1/index.json")
    entry = parse_index(index.body).entry("never-run")
    assert entry.version == 1
    assert store.get(f"agents/nas-1/{entry.object_key}") is not None
    assert store.get("escrow/never-run/1.sealed") is not None
    # The account the run registered is kept in its secret, never in the bucket.
    assert not list(store.list("keys/"))


def test_the_issue_function_signs_indexes_again_when_the_tick_asks(aws):
    store, issuer = aws[3], aws[2]
    publisher = Publisher(store, issuer, now=lambda: datetime.now(UTC) - timedelta(days=3))
    record = publisher.registry.add(
        enrollment_of(generate_agent_keys("nas-1")), (), datetime.now(UTC)
    )
    publisher.withdraw(record.agent_id, "never-run")  # an index signed three days ago
    before = parse_index(store.get("agents/nas-1/index.json").body)

    result = handlers.issue(_sqs_event([RESIGN_MESSAGE]), None)

    assert result == {"batchItemFailures": []}
    after = parse_index(store.get("agents/nas-1/index.json").body)
    assert after.issued_at > before.issued_at
    assert after.expires_at - after.issued_at == timedelta(days=7)


def test_the_same_message_delivered_twice_places_one_order(aws, monkeypatch):
    placed = []
    original = AcmeClient.new_order

    def counting(self, *args, **kwargs):
        placed.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AcmeClient, "new_order", counting)
    event = _sqs_event([json.dumps({"site": "past"})])

    first = handlers.issue(event, None)
    second = handlers.issue(event, None)

    assert first == second == {"batchItemFailures": []}
    assert len(placed) == 1


def test_a_message_that_cannot_be_run_is_a_batch_item_failure(aws):
    event = _sqs_event([json.dumps({"site": "past"}), "not json"])

    result = handlers.issue(event, None)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}


def test_the_operator_cli_works_against_the_deployed_stack(aws, tmp_path, monkeypatch, capsys):
    from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_OK
    from cloud.cli.main import main

    moto, _, _, store = aws
    assert (
        handlers.issue(_sqs_event([json.dumps({"site": "past"})]), None)["batchItemFailures"] == []
    )
    body = moto.client("s3").get_object(Bucket=BUCKET, Key="config/certdrop.toml")["Body"].read()
    storage = "\n".join(
        [
            "[storage]",
            f'url = "s3://{BUCKET}"',
            f'acme_secret = "{_env("ACME_ACCOUNT")}"',
            f'signing_secret = "{_env("ISSUER_SIGNING_KEY")}"',
            f'escrow_secret = "{_env("ESCROW_KEY")}"',
        ]
    )
    (tmp_path / "operator.toml").write_text(body.decode() + "\n" + storage + "\n")
    token = enrollment_of(generate_agent_keys("nas-late")).token()
    config = str(tmp_path / "operator.toml")

    init = main(["-c", config, "init"])
    added = main(["-c", config, "agent", "add", token, "--site", "past"])

    assert init == EXIT_CONFIG  # the stack's keys exist: never replaced
    assert added == EXIT_OK
    assert "delivered current certificates of: past" in capsys.readouterr().out
    assert parse_index(store.get("agents/nas-late/index.json").body).entry("past").version == 1


def _env(name: str) -> str:
    return os.environ[f"CERTDROP_SECRET_{name}"]


# A site of which nothing ran goes back to the queue (from an independent review: each test
# failed before its fix).
def test_a_message_whose_site_is_locked_by_a_dead_invocation_is_retried_not_dropped(aws):
    _moto, _queue, _issuer, store = aws
    # An earlier invocation (another Lambda container) timed out mid-run: its lock stays for
    # order_timeout + dns timeout + 300 s. SQS delivers the message again meanwhile.
    now = datetime.now(UTC)
    holder = {
        "owner": "dead0beef000",
        "host": "169.254.0.1-lambda-container",
        "pid": 8,
        "started_at": (now - timedelta(minutes=6)).isoformat(),
        "expires_at": (now + timedelta(minutes=4)).isoformat(),
    }
    store.put(store_layout.lock("past"), json.dumps(holder).encode(), if_absent=True)
    event = _sqs_event([json.dumps({"site": "past"})])

    result = handlers.issue(event, None)

    # An empty list deletes the message: the site waits for the next daily tick although
    # nothing of it ran. It could not be run at all, so SQS should deliver it again later.
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_message_whose_lock_cannot_be_written_is_retried_not_reported_done(aws, monkeypatch):
    original = S3Store.put

    def slow_down(self, key, body, **kwargs):
        if key == store_layout.lock("past"):
            raise StoreError(
                key, "S3 PutObject: SlowDown (HTTP 503) Please reduce your request rate."
            )
        return original(self, key, body, **kwargs)

    monkeypatch.setattr(S3Store, "put", slow_down)
    event = _sqs_event([json.dumps({"site": "past"})])

    result = handlers.issue(event, None)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
