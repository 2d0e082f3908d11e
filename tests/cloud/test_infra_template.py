"""Security properties of infra/template.yaml and infra/agent-policy.json, read as data.

The template is parsed with PyYAML and a loader that turns CloudFormation's short tags (`!Ref`,
`!Sub`...) into their long forms, so these tests need no AWS and no CloudFormation tooling. A
regression in a property the deploy guide promises (TLS-only bucket, prefix-scoped roles, Route 53
limited to challenge TXT records...) fails here before it reaches an account.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest

from tests.cloud.cfn_template import INFRA, TEMPLATE, load_template

AGENT_POLICY = INFRA / "agent-policy.json"
_ACTIONS = "route53:ChangeResourceRecordSetsActions"
SECRETS = {
    "AcmeAccountSecret",
    "IssuerSigningKeySecret",
    "EscrowKeySecret",
    "DnsCredentialsSecret",
    "AlertsWebhookSecret",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The role's inline statements, with conditional ones taken as deployed (condition true)."""
    found = []
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _actions(template: dict[str, Any], role: str) -> set[str]:
    return {a for s in _statements(template, role) for a in _listed(s["Action"])}


def _with_action(template: dict[str, Any], role: str, action: str) -> list[dict[str, Any]]:
    return [s for s in _statements(template, role) if action in _listed(s["Action"])]


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


def test_both_functions_run_python_3_12_on_arm64_with_the_named_handlers(template):
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12"
    assert glob["Architectures"] == ["arm64"]
    assert _function(template, "TickFunction")["Handler"] == "cloud.aws.handlers.tick"
    assert _function(template, "IssueFunction")["Handler"] == "cloud.aws.handlers.issue"


def test_each_function_names_the_artifact_itself_since_cloudformation_package_skips_globals(
    template,
):
    # `aws cloudformation package` reads CodeUri from the resource only; without it there it
    # zips the template's own directory and the functions deploy without code.
    assert "CodeUri" not in template["Globals"]["Function"]
    for name in ("TickFunction", "IssueFunction"):
        assert _function(template, name)["CodeUri"] == "../build/certdrop-lambda.zip"


def test_the_functions_learn_the_bucket_queue_config_key_and_secret_arns_from_the_environment(
    template,
):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["CERTDROP_MODE"] == "aws"
    assert env["CERTDROP_CONFIG_KEY"] == "config/certdrop.toml"
    assert env["CERTDROP_BUCKET"] == {"Ref": "Bucket"}
    assert env["CERTDROP_QUEUE_URL"] == {"Ref": "IssueQueue"}
    # The webhook's secret is not among them: the configuration names it (aws-sm:ARN).
    assert {v["Ref"] for k, v in env.items() if k.startswith("CERTDROP_SECRET_")} == SECRETS - {
        "AlertsWebhookSecret"
    }


def test_the_issue_function_reports_partial_batch_failures_within_bounded_concurrency(template):
    issue = _function(template, "IssueFunction")
    source = issue["Events"]["Queue"]
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["IssueQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {
        "Ref": "IssueConcurrency"
    }
    reserved = issue["ReservedConcurrentExecutions"]["Fn::If"]
    assert reserved[1] == {"Ref": "IssueConcurrency"}


def test_every_allowed_issue_timeout_gets_a_visibility_timeout_of_at_least_six_times_it(template):
    allowed = template["Parameters"]["IssueTimeoutSeconds"]["AllowedValues"]
    mapping = template["Mappings"]["IssueTimeouts"]
    assert set(mapping) == set(allowed)
    for timeout in allowed:
        assert mapping[timeout]["Visibility"] >= 6 * int(timeout)
        assert mapping[timeout]["Visibility"] <= 43200  # SQS's maximum
    queue = template["Resources"]["IssueQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {
        "Fn::FindInMap": ["IssueTimeouts", {"Ref": "IssueTimeoutSeconds"}, "Visibility"]
    }
    assert _function(template, "IssueFunction")["Timeout"] == {"Ref": "IssueTimeoutSeconds"}


def test_queue_and_dead_letter_queue_are_encrypted_and_redriven(template):
    queues = _resources(template, "AWS::SQS::Queue")
    assert set(queues) == {"IssueQueue", "IssueDeadLetterQueue"}
    for queue in queues.values():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
    redrive = queues["IssueQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IssueDeadLetterQueue", "Arn"]}


def test_the_bucket_is_versioned_encrypted_private_owner_enforced_and_kept(template):
    bucket = template["Resources"]["Bucket"]
    props = bucket["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = props["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = props["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in r and r["Status"] == "Enabled" for r in lifecycle)
    assert bucket["DeletionPolicy"] == "Retain"


def test_the_bucket_policy_denies_every_request_without_tls_on_bucket_and_objects(template):
    policy = template["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"]
    denies = [
        s
        for s in policy["Statement"]
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denies) == 1
    assert denies[0]["Resource"] == [
        {"Fn::GetAtt": ["Bucket", "Arn"]},
        {"Fn::Sub": "${Bucket.Arn}/*"},
    ]


def test_the_four_secrets_are_created_empty_and_survive_stack_deletion(template):
    secrets = _resources(template, "AWS::SecretsManager::Secret")
    assert set(secrets) == SECRETS
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" not in secret["Properties"]
        assert secret["DeletionPolicy"] == "Retain"


def test_only_the_issue_function_reads_key_secrets_and_it_writes_only_the_acme_account(template):
    tick = [
        s
        for s in _statements(template, "TickRole")
        if any(a.startswith("secretsmanager:") for a in _listed(s["Action"]))
    ]
    # The tick sends alerts: the webhook's secret is the one it reads.
    assert [(s["Action"], s["Resource"]) for s in tick] == [
        ("secretsmanager:GetSecretValue", {"Ref": "AlertsWebhookSecret"})
    ]
    issue = _statements(template, "IssueRole")
    secret_statements = [
        s for s in issue if any(a.startswith("secretsmanager:") for a in _listed(s["Action"]))
    ]
    by_action = {a: s["Resource"] for s in secret_statements for a in _listed(s["Action"])}
    assert set(by_action) == {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"}
    assert {r["Ref"] for r in by_action["secretsmanager:GetSecretValue"]} == SECRETS
    assert by_action["secretsmanager:PutSecretValue"] == {"Ref": "AcmeAccountSecret"}


def test_only_tick_sends_to_the_queue_and_only_issue_receives_and_deletes(template):
    tick, issue = _actions(template, "TickRole"), _actions(template, "IssueRole")
    assert {a for a in tick if a.startswith("sqs:")} == {"sqs:SendMessage"}
    assert "sqs:SendMessage" not in issue
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= issue
    for role in ("TickRole", "IssueRole"):
        for statement in _statements(template, role):
            if any(a.startswith("sqs:") for a in _listed(statement["Action"])):
                assert statement["Resource"] == {"Fn::GetAtt": ["IssueQueue", "Arn"]}


def test_no_role_grants_a_whole_service_or_everything(template):
    for role in _resources(template, "AWS::IAM::Role"):
        for action in _actions(template, role):
            assert "*" not in action, f"{role} grants {action}"


def test_statements_on_every_resource_are_only_those_aws_gives_no_resource_type(template):
    unscoped = {"cloudwatch:PutMetricData", "route53:ListHostedZonesByName"}
    for role in ("TickRole", "IssueRole"):
        for statement in _statements(template, role):
            if statement["Resource"] == "*":
                assert set(_listed(statement["Action"])) <= unscoped, statement


def test_metrics_can_be_written_only_to_the_certdrop_namespace(template):
    for role in ("TickRole", "IssueRole"):
        (statement,) = _with_action(template, role, "cloudwatch:PutMetricData")
        assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "certdrop"}}


def test_s3_access_is_limited_to_the_prefixes_each_function_needs(template):
    def objects(role: str, action: str) -> set[str]:
        return {
            r["Fn::Sub"].removeprefix("${Bucket.Arn}/")
            for s in _with_action(template, role, action)
            for r in _listed(s["Resource"])
        }

    assert {a for a in _actions(template, "TickRole") if a.startswith("s3:")} == {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "s3:DeleteObject",
    }
    assert objects("TickRole", "s3:GetObject") == {
        "config/*",
        "state/*",
        "agents/*/status.json",
    }
    # The tick writes nothing but its memory of the alerts it sent.
    assert objects("TickRole", "s3:PutObject") == {"state/alerts/*"}
    assert objects("TickRole", "s3:DeleteObject") == {"state/alerts/*"}
    assert objects("IssueRole", "s3:PutObject") == {"state/*", "escrow/*", "agents/*"}
    assert objects("IssueRole", "s3:DeleteObject") == {"state/*", "agents/*", "escrow/*"}
    for role in ("TickRole", "IssueRole"):
        (listing,) = _with_action(template, role, "s3:ListBucket")
        prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
        # Each a bounded pattern (a folder's objects, or the agents' reports), never everything.
        assert prefixes and all(
            (p.endswith("/*") or p == "agents/*/status.json") and p not in ("/*", "*")
            for p in prefixes
        )


def test_route53_changes_are_limited_to_challenge_txt_records_in_the_given_zones(template):
    (change,) = _with_action(template, "IssueRole", "route53:ChangeResourceRecordSets")
    condition = change["Condition"]
    assert condition["ForAllValues:StringLike"] == {
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": {"Ref": "ChallengeRecordNames"}
    }
    assert condition["ForAllValues:StringEquals"] == {
        "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
        "route53:ChangeResourceRecordSetsActions": ["CREATE", "DELETE"],
    }
    # Exactly the actions the Route 53 provider sends (it never UPSERTs: a batch that DELETEs the
    # set as read and CREATEs the new one fails if another writer got there first).
    provider = (INFRA.parent / "cloud" / "dns01" / "providers" / "route53.py").read_text()
    sent = set(re.findall(r'"Action": "(\w+)"', provider))
    assert sent == set(condition["ForAllValues:StringEquals"][_ACTIONS])
    assert template["Parameters"]["ChallengeRecordNames"]["Default"] == "_acme-challenge.*"
    zones = json.dumps(change["Resource"])
    assert '{"Ref": "HostedZoneIds"}' in zones
    assert "hostedzone/*" not in zones


def test_route53_permissions_exist_only_when_hosted_zones_are_given(template):
    route53 = []
    for policy in template["Resources"]["IssueRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            branch = statement.get("Fn::If")
            actions = _listed((branch[1] if branch else statement)["Action"])
            if any(a.startswith("route53:") for a in actions):
                assert branch is not None and branch[0] == "HasHostedZones"
                assert branch[2] == {"Ref": "AWS::NoValue"}
                route53.extend(actions)
    assert set(route53) == {
        "route53:ChangeResourceRecordSets",
        "route53:ListResourceRecordSets",
        "route53:GetChange",
        "route53:ListHostedZonesByName",
    }
    assert not any(a.startswith("route53:") for a in _actions(template, "TickRole"))


def test_the_schedule_invokes_the_tick_through_a_role_that_can_do_nothing_else(template):
    (schedule,) = _resources(template, "AWS::Scheduler::Schedule").values()
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["TickFunction", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    role = template["Resources"]["SchedulerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    (statement,) = _statements(template, "SchedulerRole")
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": ["TickFunction", "Arn"]}


def test_each_function_logs_to_its_own_group_with_retention(template):
    for function, group in (("TickFunction", "TickLogGroup"), ("IssueFunction", "IssueLogGroup")):
        assert _function(template, function)["LoggingConfig"]["LogGroup"] == {"Ref": group}
        props = template["Resources"][group]["Properties"]
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_alarms_cover_dead_letters_function_errors_and_expiry_and_notify_the_topic(template):
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in _resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        by_metric.setdefault(props["MetricName"], []).append(props)
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]

    (dlq,) = by_metric["ApproximateNumberOfMessagesVisible"]
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["IssueDeadLetterQueue", "QueueName"]}}
    ]
    assert (dlq["ComparisonOperator"], dlq["Threshold"]) == ("GreaterThanThreshold", 0)

    errors = by_metric["Errors"]
    assert {e["Dimensions"][0]["Value"]["Ref"] for e in errors} == {"TickFunction", "IssueFunction"}

    (expiry,) = by_metric["MinDaysToExpiry"]
    assert expiry["Namespace"] == "certdrop"
    assert "Dimensions" not in expiry
    assert expiry["Statistic"] == "Minimum"
    assert expiry["ComparisonOperator"] == "LessThanThreshold"
    assert expiry["Threshold"] == {"Ref": "DaysToExpiryThreshold"}
    assert expiry["InsufficientDataActions"] == [{"Ref": "AlarmTopic"}]


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(template):
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmKey"}
    key = template["Resources"]["AlarmKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    grants = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(grants) == 1
    assert set(grants[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "aws:SourceAccount" in grants[0]["Condition"]["StringEquals"]


def test_the_dashboard_runs_its_handler_from_the_same_artifact_and_logs_to_its_own_group(
    template,
):
    dashboard = _function(template, "DashboardFunction")
    assert dashboard["Handler"] == "cloud.aws.handlers.dashboard"
    assert dashboard["CodeUri"] == "../build/certdrop-lambda.zip"
    assert dashboard["Role"] == {"Fn::GetAtt": ["DashboardRole", "Arn"]}
    assert dashboard["LoggingConfig"]["LogGroup"] == {"Ref": "DashboardLogGroup"}
    group = template["Resources"]["DashboardLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_dashboard_url_takes_only_iam_signed_requests_and_no_policy_opens_it(template):
    dashboard = _function(template, "DashboardFunction")
    assert dashboard["FunctionUrlConfig"]["AuthType"] == "AWS_IAM"
    assert "Events" not in dashboard  # no API Gateway or other trigger beside the URL
    assert not _resources(template, "AWS::Lambda::Permission")
    assert not _resources(template, "AWS::Lambda::Url")  # SAM makes the one URL, with AWS_IAM
    output = template["Outputs"]["DashboardUrl"]["Value"]
    assert output == {"Fn::GetAtt": ["DashboardFunctionUrl", "FunctionUrl"]}


def test_the_dashboard_role_reads_config_state_and_status_reports_and_writes_nothing(template):
    actions = _actions(template, "DashboardRole")
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:ListBucket"}
    (read,) = _with_action(template, "DashboardRole", "s3:GetObject")
    objects = {r["Fn::Sub"].removeprefix("${Bucket.Arn}/") for r in _listed(read["Resource"])}
    assert objects == {"config/*", "state/*", "agents/*/status.json"}  # never a sealed bundle
    (listing,) = _with_action(template, "DashboardRole", "s3:ListBucket")
    assert listing["Resource"] == {"Fn::GetAtt": ["Bucket", "Arn"]}
    # Listable as far as readable: a missing key then reads as missing (404), not as denied.
    assert set(listing["Condition"]["StringLike"]["s3:prefix"]) == objects
    (logs,) = _with_action(template, "DashboardRole", "logs:PutLogEvents")
    assert logs["Resource"] == {"Fn::GetAtt": ["DashboardLogGroup", "Arn"]}
    assert all(s["Effect"] == "Allow" for s in _statements(template, "DashboardRole"))


def test_the_viewer_policy_lets_its_holders_open_the_dashboard_url_and_nothing_else(template):
    (policy,) = _resources(template, "AWS::IAM::ManagedPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_action = {s["Action"]: s for s in statements}
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] == {"Fn::GetAtt": ["DashboardFunction", "Arn"]}
    assert by_action["lambda:InvokeFunctionUrl"]["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}
    }
    assert template["Outputs"]["DashboardViewerPolicyArn"]["Value"] == {
        "Ref": "DashboardViewerPolicy"
    }


def _agent_policy(agent: str, bucket: str) -> dict[str, Any]:
    text = string.Template(AGENT_POLICY.read_text(encoding="utf-8"))
    return json.loads(text.substitute(AgentId=agent, Bucket=bucket))


def test_the_agent_policy_template_has_exactly_the_two_placeholders():
    text = AGENT_POLICY.read_text(encoding="utf-8")
    names = {m.group("braced") for m in string.Template.pattern.finditer(text)}
    assert names == {"AgentId", "Bucket"}


def test_an_agent_reads_only_its_prefix_and_writes_only_its_status_enrollment_and_csrs():
    policy = _agent_policy("nas-01", "certdrop-store")
    by_action = {s["Action"]: s for s in policy["Statement"]}
    assert set(by_action) == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert by_action["s3:GetObject"]["Resource"] == "arn:aws:s3:::certdrop-store/agents/nas-01/*"
    assert by_action["s3:PutObject"]["Resource"] == [
        "arn:aws:s3:::certdrop-store/agents/nas-01/status.json",
        "arn:aws:s3:::certdrop-store/agents/nas-01/enrollment.json",
        "arn:aws:s3:::certdrop-store/agents/nas-01/csr/*",
    ]
    listing = by_action["s3:ListBucket"]
    assert listing["Resource"] == "arn:aws:s3:::certdrop-store"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "agents/nas-01/*"}}


def test_the_template_passes_cfn_lint():
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


def test_the_policy_invite_gives_an_agent_is_the_documented_one():
    from cloud.aws.agent_identity import agent_policy

    assert agent_policy("certdrop-store", "", "nas-01") == _agent_policy("nas-01", "certdrop-store")


def test_the_optional_acme_account_kms_key_signs_es256_and_the_issue_function_may_only_sign(
    template,
):
    assert template["Parameters"]["AcmeAccountKmsKey"]["Default"] == "false"
    assert template["Conditions"]["HasAcmeAccountKmsKey"] == {
        "Fn::Equals": [{"Ref": "AcmeAccountKmsKey"}, "true"]
    }
    key = template["Resources"]["AcmeAccountKey"]
    assert key["Condition"] == "HasAcmeAccountKmsKey"
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == (
        "ECC_NIST_P256",
        "SIGN_VERIFY",
    )
    assert key["DeletionPolicy"] == "Retain"
    assert template["Outputs"]["AcmeAccountKeyArn"]["Condition"] == "HasAcmeAccountKmsKey"
    on_key = [
        statement
        for policy in template["Resources"]["IssueRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if "AcmeAccountKey" in json.dumps(statement)
    ]
    (conditional,) = on_key
    condition, granted, otherwise = conditional["Fn::If"]
    assert (condition, otherwise) == ("HasAcmeAccountKmsKey", {"Ref": "AWS::NoValue"})
    assert set(granted["Action"]) == {"kms:Sign", "kms:GetPublicKey"}
    assert granted["Resource"] == {"Fn::GetAtt": ["AcmeAccountKey", "Arn"]}
    for role in ("TickRole", "DashboardRole"):
        assert "AcmeAccountKey" not in json.dumps(template["Resources"][role])
