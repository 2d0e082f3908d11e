"""Every AWS call the Lambda handlers make is one their role in infra/template.yaml allows, and
an agent's policy reaches its own prefix only (from an independent review of the AWS deploy path:
the tick's role could not list agents/ and could not read the alerts webhook's secret, so on AWS
no tick ever queued a site; both tests failed before the template's fix).

The handlers run in-process against moto's server with real-shaped events. moto does not
evaluate IAM condition keys such as `s3:prefix`, so every AWS API call a handler makes is
recorded (botocore's `_make_api_call`) and checked against the template's role policy with a
small evaluator of the IAM subset the template uses: Allow statements, `*`/`?` wildcards in
Action and Resource, and the StringLike / StringEquals / ForAllValues conditions, with the
request context AWS documents for each call (ListObjectsV2 → s3:ListBucket on the bucket with
`s3:prefix` = the request's Prefix; SendMessageBatch → sqs:SendMessage; ...).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cloud.aws import handlers
from cloud.store.s3 import S3Store
from lab.moto import MotoServer, fake_aws_env
from nas_agent import store_layout
from tests.cloud.cfn_template import load_template
from tests.cloud.test_handlers import _sqs_event, lambda_config

BUCKET = "certdrop-review-store"
ACCOUNT = "123456789012"
REGION = "us-east-1"


# ------------------------------------------------------------------ template as data


def _template() -> dict[str, Any]:
    return load_template()


class _Stack:
    """Resolves the intrinsic functions of the role policies as a deployment with the given
    names would (conditions HasHostedZones / HasAcmeAccountKmsKey taken as true)."""

    def __init__(self, secrets: dict[str, str], queue_arn: str, topic_arn: str):
        self.refs = {
            "Bucket": BUCKET,
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::StackName": "certdrop",
            "AWS::NoValue": None,
            "AlarmTopic": topic_arn,
            "HostedZoneIds": ["Z0123456789ABC"],
            "ChallengeRecordNames": ["_acme-challenge.*"],
            **secrets,
        }
        self.atts = {
            ("Bucket", "Arn"): f"arn:aws:s3:::{BUCKET}",
            ("IssueQueue", "Arn"): queue_arn,
            ("AlarmKey", "Arn"): f"arn:aws:kms:{REGION}:{ACCOUNT}:key/alarm",
            ("AcmeAccountKey", "Arn"): f"arn:aws:kms:{REGION}:{ACCOUNT}:key/acme",
            ("TickLogGroup", "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:tick:*",
            ("IssueLogGroup", "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:issue:*",
            ("DashboardLogGroup", "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:dash:*",
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not None]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.refs[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            return self.atts[tuple(value["Fn::GetAtt"])]
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if "." in name:
                    return self.atts[tuple(name.split(".", 1))]
                return str(self.refs[name])

            return re.sub(r"\$\{([^}]+)\}", sub, text)
        if set(value) == {"Fn::If"}:
            return self.resolve(value["Fn::If"][1])
        if set(value) == {"Fn::Join"}:
            sep, items = value["Fn::Join"]
            items = self.resolve(items)
            flat: list[str] = []
            for item in items:
                flat.extend(item if isinstance(item, list) else [item])
            return sep.join(flat)
        if set(value) == {"Fn::Split"}:
            sep, text = value["Fn::Split"]
            return self.resolve(text).split(sep)
        return {k: self.resolve(v) for k, v in value.items()}

    def statements(self, role: str) -> list[dict[str, Any]]:
        template = _template()
        found = []
        for policy in template["Resources"][role]["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                resolved = self.resolve(statement)
                if resolved:
                    found.append(resolved)
        return found


# ------------------------------------------------------------------ IAM evaluation (subset)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _condition_holds(condition: dict[str, Any], context: dict[str, list[str]]) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            wanted = [str(w) for w in _listed(wanted)]
            values = context.get(key)
            if operator.startswith("ForAllValues:"):
                op = operator.split(":", 1)[1]
                values = values or []
                match = _like if op == "StringLike" else (lambda p, v: p == v)
                if not all(any(match(w, v) for w in wanted) for v in values):
                    return False
                continue
            if values is None:
                return False  # a condition on a key the request does not carry never holds
            match = _like if operator == "StringLike" else (lambda p, v: p == v)
            if operator not in ("StringLike", "StringEquals"):
                raise AssertionError(f"evaluator does not know {operator}")
            if not any(match(w, v) for w in wanted for v in values):
                return False
    return True


def allowed(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, list[str]]
) -> bool:
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        if not any(_like(a.lower(), action.lower()) for a in _listed(s["Action"])):
            continue
        if not any(_like(r, resource) for r in _listed(s["Resource"])):
            continue
        if "Condition" in s and not _condition_holds(s["Condition"], context):
            continue
        return True
    return False


# ------------------------------------------------------------------ recording the handlers' calls


def _authorization(service: str, op: str, params: dict[str, Any]) -> tuple[str, str, dict]:
    """(IAM action, resource ARN, condition context) AWS evaluates for one API call."""
    if service == "s3":
        bucket_arn = f"arn:aws:s3:::{params['Bucket']}"
        if op in ("ListObjectsV2", "ListObjects"):
            return "s3:ListBucket", bucket_arn, {"s3:prefix": [params.get("Prefix", "")]}
        action = {
            "GetObject": "s3:GetObject",
            "HeadObject": "s3:GetObject",
            "PutObject": "s3:PutObject",
            "DeleteObject": "s3:DeleteObject",
        }[op]
        return action, f"{bucket_arn}/{params['Key']}", {}
    if service == "sqs":
        action = {"SendMessageBatch": "sqs:SendMessage"}.get(op, f"sqs:{op}")
        return action, _QUEUE_ARN, {}
    if service == "secretsmanager":
        return f"secretsmanager:{op}", params["SecretId"], {}
    if service == "cloudwatch":
        return f"cloudwatch:{op}", "*", {"cloudwatch:namespace": [params.get("Namespace", "")]}
    if service == "sns":
        return f"sns:{op}", params.get("TopicArn", "*"), {}
    if service == "kms":
        return f"kms:{op}", params.get("KeyId", "*"), {}
    return f"{service}:{op}", "*", {}


_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:certdrop-issue"


class _Recorder:
    """Every AWS API call made in the test, as (service, operation, params); with `role` set
    (and `stack`), a call that role's policy does not allow fails as AWS fails it: AccessDenied."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.role: str | None = None
        self.stack: _Stack | None = None
        self.refused: list[str] = []


@pytest.fixture
def calls(monkeypatch) -> _Recorder:
    import botocore.client
    from botocore.exceptions import ClientError

    recorder = _Recorder()
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        service = self.meta.service_model.endpoint_prefix
        recorder.calls.append((service, operation_name, api_params))
        if recorder.role is not None and recorder.stack is not None:
            action, resource, context = _authorization(service, operation_name, api_params)
            if not allowed(recorder.stack.statements(recorder.role), action, resource, context):
                recorder.refused.append(f"{operation_name} {resource} {context or ''}".rstrip())
                raise ClientError(
                    {
                        "Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                        "ResponseMetadata": {"HTTPStatusCode": 403},
                    },
                    operation_name,
                )
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return recorder


def _denied(stack: _Stack, role: str, recorder: _Recorder) -> list[str]:
    statements = stack.statements(role)
    denied = []
    for service, op, params in recorder.calls:
        action, resource, context = _authorization(service, op, params)
        if not allowed(statements, action, resource, context):
            denied.append(f"{op} {resource} {context or ''}".rstrip())
    return denied


# ------------------------------------------------------------------ a deployed stack on moto


def _config(extra: str = "") -> str:
    return f"""
[ca]
directory = "https://127.0.0.1:9/dir"
terms_agreed = true

[providers.bind]
type = "rfc2136"
server = "127.0.0.1:9"
tsig_name = "k."
tsig_secret = "env:TSIG_SECRET"

[sites.alpha]
domain = "alpha.example.test"
provider = "bind"
{extra}
"""


@pytest.fixture
def stack(monkeypatch) -> Iterator[tuple[MotoServer, S3Store, _Stack, Any]]:
    from nas_agent.keys import generate_issuer_keys, private_key_pem

    with fake_aws_env(), MotoServer() as moto:
        moto.reset()
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        s3, sqs, sm = moto.client("s3"), moto.client("sqs"), moto.client("secretsmanager")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="config/certdrop.toml", Body=_config().encode())
        queue_url = sqs.create_queue(QueueName="certdrop-issue")["QueueUrl"]
        topic = moto.client("sns").create_topic(Name="certdrop-alarms")["TopicArn"]
        issuer = generate_issuer_keys()
        arns = {
            "AcmeAccountSecret": sm.create_secret(Name="certdrop/acme")["ARN"],
            "IssuerSigningKeySecret": sm.create_secret(
                Name="certdrop/signing", SecretString=private_key_pem(issuer.signing_key).decode()
            )["ARN"],
            "EscrowKeySecret": sm.create_secret(
                Name="certdrop/escrow", SecretString=private_key_pem(issuer.escrow_key).decode()
            )["ARN"],
            "DnsCredentialsSecret": sm.create_secret(
                Name="certdrop/dns", SecretString=json.dumps({"TSIG_SECRET": "c2VjcmV0"})
            )["ARN"],
            "AlertsWebhookSecret": sm.create_secret(
                Name="certdrop/alerts-webhook", SecretString="whsec-0123456789abcdef"
            )["ARN"],
        }
        env = {
            "CERTDROP_MODE": "aws",
            "CERTDROP_BUCKET": BUCKET,
            "CERTDROP_CONFIG_KEY": "config/certdrop.toml",
            "CERTDROP_QUEUE_URL": queue_url,
            "CERTDROP_METRIC_NAMESPACE": "certdrop",
            "CERTDROP_SECRET_ACME_ACCOUNT": arns["AcmeAccountSecret"],
            "CERTDROP_SECRET_ISSUER_SIGNING_KEY": arns["IssuerSigningKeySecret"],
            "CERTDROP_SECRET_ESCROW_KEY": arns["EscrowKeySecret"],
            "CERTDROP_SECRET_DNS_CREDENTIALS": arns["DnsCredentialsSecret"],
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("TSIG_SECRET", raising=False)
        store = S3Store(BUCKET, endpoint_url=moto.endpoint_url)
        yield moto, store, _Stack(arns, _QUEUE_ARN, topic), issuer


def _scheduler_event() -> dict[str, Any]:
    # What the template's AWS::Scheduler::Schedule target sends: its fixed Input.
    return {"source": "certdrop.schedule"}


def test_the_tick_role_permits_every_call_the_tick_makes(stack, calls):
    """README "Deploying on AWS" / template TickRole: the tick "reads configuration and state,
    queues due sites" with a least-privilege role; its ListState statement allows listing only
    `config/*`, `state/*` and `agents/*/status.json`. But `run_tick` always calls
    `resign_wanted` (cloud/publish/indexes.py), which lists the whole `agents/` prefix
    (ListObjectsV2 Prefix=agents/) to find indexes near expiry, before it sends the queue
    messages. `agents/` matches none of the allowed s3:prefix patterns, so on AWS every tick
    gets AccessDenied before it sends a single message: no site is ever issued or renewed, no
    index re-signed, no MinDaysToExpiry metric. Here, with the TickRole's policy enforced, the
    due site `alpha` (never issued) never reaches the queue.
    Fix (infra/template.yaml TickRole ListState): allow s3:prefix `agents/` (names only), or
    have the tick learn index ages from a listable place."""
    moto, _store, deployed, _issuer = stack
    calls.stack, calls.role = deployed, "TickRole"

    try:
        handlers.tick(_scheduler_event(), None)
    except Exception as exc:  # what the TickErrors alarm would count
        print("tick failed:", exc)
    calls.role = None
    sqs = moto.client("sqs")
    queue_url = sqs.get_queue_url(QueueName="certdrop-issue")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)

    assert calls.refused == [], calls.refused
    assert [json.loads(m["Body"]) for m in got.get("Messages", [])] == [{"site": "alpha"}]


def _function_url_event(path: str = "/") -> dict[str, Any]:
    domain = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": domain, "accept": "text/html", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": domain.split(".")[0],
            "authorizer": {"iam": {"accessKey": "AKIA", "accountId": ACCOUNT}},
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "awscurl",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "05/Dec/2026:08:00:00 +0000",
            "timeEpoch": 1796457600000,
        },
        "isBase64Encoded": False,
    }


def test_the_dashboard_role_permits_every_call_the_dashboard_makes(stack, calls):
    """template DashboardRole: "reads configuration, state and the agents' status reports";
    README "Dashboard". Every call the page makes for a fleet with one registered agent must be
    one its role allows."""
    from cloud.publish.publisher import Publisher
    from nas_agent.enrollment import enrollment_of
    from nas_agent.keys import generate_agent_keys

    _moto, store, deployed, issuer = stack
    Publisher(store, issuer).registry.add(
        enrollment_of(generate_agent_keys("nas-1")), ("alpha",), datetime.now(UTC)
    )
    calls.calls.clear()

    for path in ("/", "/status.json"):
        response = handlers.dashboard(_function_url_event(path), None)
        print(path, response["statusCode"])

    assert _denied(deployed, "DashboardRole", calls) == []


@pytest.fixture
def issuing_stack(stack, pebble, bind_auth, tsig_key):
    moto, _store, deployed, _issuer = stack
    moto.client("s3").put_object(
        Bucket=BUCKET,
        Key="config/certdrop.toml",
        Body=lambda_config(pebble, bind_auth, tsig_key, ("alpha", "beta")).encode(),
    )
    moto.client("secretsmanager").put_secret_value(
        SecretId=deployed.refs["DnsCredentialsSecret"],
        SecretString=json.dumps({"TSIG_SECRET": tsig_key.secret}),
    )
    return stack


def test_the_issue_role_permits_every_call_an_issue_and_a_resign_make(issuing_stack, calls):
    """template IssueRole: "ACME orders, DNS-01 records, sealing and publishing". With that
    role's policy enforced, a site message issues and publishes to a registered agent, and the
    tick's re-sign message re-signs indexes."""
    from cloud.pipeline.tick import RESIGN_MESSAGE
    from cloud.publish.publisher import Publisher
    from nas_agent.enrollment import enrollment_of
    from nas_agent.keys import generate_agent_keys

    _moto, store, deployed, issuer = issuing_stack
    Publisher(store, issuer).registry.add(
        enrollment_of(generate_agent_keys("nas-1")), ("alpha",), datetime.now(UTC)
    )
    calls.stack, calls.role = deployed, "IssueRole"

    result = handlers.issue(
        _sqs_event([json.dumps({"site": "alpha"}), RESIGN_MESSAGE], _QUEUE_ARN), None
    )
    calls.role = None

    assert calls.refused == []
    assert result == {"batchItemFailures": []}
    assert store.get("agents/nas-1/index.json") is not None


def test_the_tick_can_read_the_webhook_secret_the_readme_says_to_give_in_aws_mode(stack, calls):
    """README "Alerts": "Alerts are evaluated at the end of every tick" and "In AWS mode give
    the webhook secret as an `aws-sm:` reference." But the template's TickRole has no
    secretsmanager permission at all (and the stack makes no secret for it; the DNS
    credentials secret is put in the environment of the issue function only), so the tick's
    GetSecretValue for the webhook secret is AccessDenied: every tick with something to alert
    ends in "alerts not sent" and a TickErrors alarm, and the webhook never gets a signed alert.
    Reproduced: an agent whose report is invalid (fires agent_report_invalid), webhook_secret =
    aws-sm:<a secret>, one tick; the secret read is a call TickRole does not allow.
    Fix: a webhook secret parameter/resource in infra/template.yaml that TickRole (and IssueRole)
    may read, documented in the deploy guide."""
    from cloud.publish.publisher import Publisher
    from lab.webhook_receiver import WebhookReceiver
    from nas_agent.enrollment import enrollment_of
    from nas_agent.keys import generate_agent_keys

    moto, store, deployed, issuer = stack
    hook_arn = deployed.refs["AlertsWebhookSecret"]
    Publisher(store, issuer).registry.add(
        enrollment_of(generate_agent_keys("nas-1")), ("alpha",), datetime.now(UTC)
    )
    store.put(store_layout.agent_status("nas-1"), b"not a report")
    with WebhookReceiver() as hook:
        alerts = f'[alerts]\nwebhook_url = "{hook.url}"\nwebhook_secret = "aws-sm:{hook_arn}"\n'
        moto.client("s3").put_object(
            Bucket=BUCKET, Key="config/certdrop.toml", Body=(_config() + alerts).encode()
        )
        calls.calls.clear()
        try:
            handlers.tick(_scheduler_event(), None)
        except Exception as exc:
            print("tick failed:", exc)
        assert hook.requests, "nothing alerted: the scenario did not fire"

    denied = [
        d
        for d in _denied(deployed, "TickRole", calls)
        if "secretsmanager" in d.lower() or "GetSecretValue" in d
    ]
    assert denied == [], denied


def test_a_mixed_batch_fails_only_the_malformed_record_orders_once_and_logs_json_without_secrets(
    issuing_stack, calls, orders, monkeypatch, capsys
):
    """DESIGN §9 / README "Renewal": runs are safe to repeat and never order twice; §8: no
    secret in any log line. An SQS batch of: site alpha, a malformed body, alpha again (a
    repeated tick), site beta, a body that is JSON but not an object. Expected: exactly the two
    malformed records are batch item failures, one order per site, every log line is a JSON
    object, and none carries the TSIG secret, the issuer's keys or the ACME account key."""
    moto, _store, deployed, _issuer = issuing_stack
    monkeypatch.setattr(handlers, "_logging_done", False)  # set up logging into this capture
    bodies = [
        json.dumps({"site": "alpha"}),
        "{not json",
        json.dumps({"site": "alpha"}),
        json.dumps({"site": "beta"}),
        json.dumps(["alpha"]),
    ]
    event = _sqs_event(bodies, _QUEUE_ARN)
    calls.stack, calls.role = deployed, "IssueRole"

    result = handlers.issue(event, None)
    calls.role = None

    ids = [r["messageId"] for r in event["Records"]]
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        [ids[1], ids[4]]
    )
    assert len(orders) == 2
    assert calls.refused == []
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    sm = moto.client("secretsmanager")
    secrets = [
        sm.get_secret_value(SecretId=deployed.refs[name])["SecretString"]
        for name in ("DnsCredentialsSecret", "IssuerSigningKeySecret", "EscrowKeySecret")
    ]
    tsig = json.loads(secrets[0])["TSIG_SECRET"]
    account = sm.get_secret_value(SecretId=deployed.refs["AcmeAccountSecret"])["SecretString"]
    assert tsig not in err
    for pem in secrets[1:]:
        body = "".join(pem.strip().splitlines()[1:-1])
        assert body[:40] not in err.replace("\\n", "")
    for value in json.loads(account).values():
        assert value[:200] not in err or len(value) < 20


def test_one_agents_policy_reaches_only_its_own_prefix():
    """infra/agent-policy.json (README step 5): an agent reads only `agents/<id>/` and writes
    only its status report, enrollment and CSRs. Checked for the agent `nas-1` against a
    neighbour whose id it prefixes (`nas-10`) and the objects the issuer trusts."""
    from cloud.aws.agent_identity import agent_policy

    policy = agent_policy(BUCKET, "", "nas-1")["Statement"]
    arn = f"arn:aws:s3:::{BUCKET}"

    def can(action: str, key: str | None = None, prefix: str | None = None) -> bool:
        if action == "s3:ListBucket":
            return allowed(policy, action, arn, {"s3:prefix": [prefix or ""]})
        return allowed(policy, action, f"{arn}/{key}", {})

    assert can("s3:GetObject", "agents/nas-1/index.json")
    assert can("s3:GetObject", "agents/nas-1/bundles/alpha/3.sealed")
    assert can("s3:PutObject", "agents/nas-1/status.json")
    assert can("s3:ListBucket", prefix="agents/nas-1/")
    for key in (
        "agents/nas-10/index.json",
        "agents/nas-10/bundles/alpha/1.sealed",
        "agents/nas-10/status.json",
        "escrow/alpha/1.sealed",
        "state/agents/nas-1.json",
        "config/certdrop.toml",
    ):
        assert not can("s3:GetObject", key), key
    for key in (
        "agents/nas-1/index.json",
        "agents/nas-1/bundles/alpha/4.sealed",
        "agents/nas-1/key-requests.json",
        "agents/nas-10/status.json",
        "agents/nas-10/csr/alpha.json",
        "state/agents/nas-1.json",
    ):
        assert not can("s3:PutObject", key), key
    for prefix in ("", "agents/", "agents/nas-10/", "agents/nas-1", "state/", "escrow/"):
        assert not can("s3:ListBucket", prefix=prefix), prefix
    assert not any("Delete" in a for s in policy for a in _listed(s["Action"]))
