"""Alerts from a fleet in a known state, sent to a real webhook receiver on loopback and to SNS on
moto's server; what was sent is remembered so nothing is sent twice, reminders and resolutions."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from cloud.aws import handlers
from cloud.config import AlertsConfig
from cloud.errors import AlertDeliveryFailed, SecretError
from cloud.fleet.alerts import FORMAT
from cloud.fleet.alerts.evaluate import (
    current_alerts,
    due_notices,
    evaluate_and_send,
    notify_outcomes,
)
from cloud.fleet.alerts.memory import PREFIX
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.alerts.sns import SnsChannel
from cloud.fleet.alerts.webhook import SIGNATURE_HEADER, WebhookChannel
from cloud.fleet.status import collect
from cloud.fleet.status_table import render
from cloud.pipeline.site_run import Outcome
from cloud.pipeline.site_state import ErrorRecord, load_site_state, save_site_state
from cloud.pipeline.tick import run_tick
from cloud.secrets import SecretRef
from cloud.store.s3 import S3Store
from lab.moto import MotoServer, fake_aws_env
from lab.ports import LOOPBACK
from lab.sample_fleet import DAY, SITES, _record, add_agent, config_text, make_fleet
from lab.webhook_receiver import WebhookReceiver
from nas_agent.state import AgentState, InstalledSite

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CERTDROP = [sys.executable, "-m", "cloud.cli"]


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, NOW)


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


class Sleeps(list):
    """The pauses a channel asked for, instead of taking them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _config(fleet, **alerts):
    alerts.setdefault("webhook_url", "http://127.0.0.1:9/unused")
    return replace(fleet.config, alerts=AlertsConfig(**alerts))


def _send(fleet, hook, now=NOW, channel=None, **alerts):
    """One evaluation through the webhook; the alerts of the POST it made ({} if none)."""
    before = len(hook.requests)
    channel = channel or WebhookChannel(hook.url, sleep=Sleeps())
    notices = evaluate_and_send(_config(fleet, **alerts), fleet.store, now, [channel])
    posts = hook.requests[before:]
    assert len(posts) == (1 if notices else 0)
    return (
        {(a["kind"], a["site"] or a["agent"]): a for a in posts[0].json()["alerts"]}
        if posts
        else {}
    )


def _add_agent(fleet, agent_id, error_code, *, recovered=False, seen=None):
    """An agent on site `healthy` whose signed report carries a last error of `error_code`."""
    seen = seen or fleet.now - timedelta(minutes=5)
    state = AgentState().with_error(
        error_code,
        "the sealed object is not the one the signed entry names",
        seen - timedelta(minutes=1),
        "healthy",
    )
    if recovered:  # a later cycle went well, as an agent records it
        state = state.with_site_errors_of([]).with_success(seen)
    add_agent(fleet, agent_id, ("healthy",), state, seen)


def _remembered(fleet) -> set[str]:
    return {info.key.removeprefix(PREFIX) for info in fleet.store.list(PREFIX)}


# --- one test per kind -----------------------------------------------------------------------


def test_a_site_whose_runs_fail_alerts_with_its_last_error(fleet, hook):
    sent = _send(fleet, hook)

    alert = sent[("issuance_failed", "expired")]
    assert alert["status"] == "firing" and alert["reason"] == "new"
    assert alert["severity"] == "error"
    assert "acme.rate_limited: too many certificates" in alert["message"]
    assert alert["details"]["failures"] == 4
    assert not any(kind == "issuance_failed" for kind, _ in sent if _ != "expired")


def test_a_certificate_alerts_when_fewer_than_expiry_days_are_left(fleet, hook):
    at_14 = current_alerts(_config(fleet, expiry_days=14), fleet.store, NOW)
    sent = _send(fleet, hook, expiry_days=30)

    assert {a.site for a in at_14 if a.kind == "expiring"} == {"expired"}
    assert {s for kind, s in sent if kind == "expiring"} == {"expired", "due"}
    due, expired = sent[("expiring", "due")], sent[("expiring", "expired")]
    assert due["severity"] == "warning"
    assert "expires in 25 days" in due["message"]
    assert due["details"]["version"] == 5
    assert expired["severity"] == "critical"
    assert "expired 5 days ago" in expired["message"]


def test_an_agent_that_stopped_reporting_alerts_as_quiet(fleet, hook):
    sent = _send(fleet, hook)

    quiet = [subject for kind, subject in sent if kind == "agent_quiet"]
    assert quiet == ["nas-quiet"]
    assert "has not reported for 2 days" in sent[("agent_quiet", "nas-quiet")]["message"]


def test_an_agent_that_rolled_back_an_install_alerts(fleet, hook):
    sent = _send(fleet, hook)

    alert = sent[("bundle_rolled_back", "nas-behind")]
    assert alert["severity"] == "error"
    assert "the previous one was restored" in alert["message"]
    assert alert["details"]["installed"] == {"healthy": 1}


def test_an_agent_that_refused_a_bundle_alerts_with_the_check_that_failed(fleet, hook):
    _add_agent(fleet, "nas-refusing", "bundle.sealed_hash_mismatch")
    _add_agent(fleet, "nas-recovered", "bundle.sealed_hash_mismatch", recovered=True)

    sent = _send(fleet, hook)

    alert = sent[("bundle_refused", "nas-refusing")]
    assert "refused a bundle (bundle.sealed_hash_mismatch)" in alert["message"]
    assert ("bundle_refused", "nas-recovered") not in sent
    assert ("bundle_rolled_back", "nas-refusing") not in sent


def test_an_install_dsm_holds_but_not_as_configured_alerts_as_incomplete(fleet, hook):
    """From a review of this session's agent changes, failing before its fix: the agent's new
    exit-4 errors (a configured service DSM does not list; two DSM certificates with the site's
    description) matched no alert rule, so the operator saw only "failing"."""
    _add_agent(fleet, "nas-unbound", "install.services_not_bound")
    _add_agent(fleet, "nas-ambiguous", "dsm.certificate_ambiguous")

    sent = _send(fleet, hook)

    for agent in ("nas-unbound", "nas-ambiguous"):
        alert = sent[("install_incomplete", agent)]
        assert alert["severity"] == "error"
        assert "could not complete an install" in alert["message"]
        assert ("bundle_rolled_back", agent) not in sent


def test_an_agent_error_that_is_not_about_a_bundle_is_not_a_refusal(fleet):
    _add_agent(fleet, "nas-offline", "source.unavailable")

    alerts = current_alerts(_config(fleet), fleet.store, NOW)

    assert not [a for a in alerts if a.agent == "nas-offline"]


# --- memory ------------------------------------------------------------------------------------


def test_the_payload_has_the_documented_shape(fleet, hook):
    _send(fleet, hook)

    document = hook.requests[0].json()
    assert document["format"] == FORMAT
    assert document["sent_at"] == NOW.isoformat()
    first = document["alerts"][0]
    assert set(first) == {
        "kind", "status", "reason", "severity", "site", "agent", "message", "details", "at",
        "first_seen", "fingerprint",
    }  # fmt: skip
    assert hook.requests[0].headers["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in hook.requests[0].headers


def test_a_second_evaluation_sends_nothing_new(fleet, hook):
    first = _send(fleet, hook)
    second = _send(fleet, hook, NOW + timedelta(minutes=20))

    assert len(first) == 4
    assert second == {}
    assert _remembered(fleet) == {f"{kind}/{subject}.json" for kind, subject in first}


def test_alerts_still_firing_are_sent_again_after_remind_after(fleet, hook):
    first = _send(fleet, hook, remind_after=3 * HOUR)
    early = _send(fleet, hook, NOW + 2 * HOUR, remind_after=3 * HOUR)
    later = _send(fleet, hook, NOW + 3 * HOUR, remind_after=3 * HOUR)

    assert early.keys() == {("agent_quiet", "nas-ok"), ("agent_quiet", "nas-behind")}
    reminders = {key for key, alert in later.items() if alert["reason"] == "reminder"}
    assert reminders == first.keys()
    assert all(later[key]["first_seen"] == NOW.isoformat() for key in reminders)


def test_an_alert_whose_cause_changes_is_sent_again_as_changed(fleet, hook):
    _send(fleet, hook)
    state = load_site_state(fleet.store, "expired")
    error = ErrorRecord("dns", "TXT value not served", NOW + HOUR, True)
    save_site_state(fleet.store, replace(state, failures=5, last_error=error))

    sent = _send(fleet, hook, NOW + 2 * HOUR)

    alert = sent[("issuance_failed", "expired")]
    assert alert["reason"] == "changed"
    assert "dns: TXT value not served" in alert["message"]
    assert alert["first_seen"] == NOW.isoformat()
    assert ("expiring", "expired") not in sent  # same certificate version: unchanged


def test_resolved_alerts_are_announced_once_and_forgotten(fleet, hook):
    first = _send(fleet, hook)
    state = load_site_state(fleet.store, "expired")
    renewed = replace(state.current, version=4, not_after=NOW + 90 * DAY)
    save_site_state(fleet.store, replace(state, current=renewed, failures=0, last_error=None))

    resolved = _send(fleet, hook, NOW + timedelta(minutes=20))
    again = _send(fleet, hook, NOW + timedelta(minutes=30))

    assert resolved.keys() == {("issuance_failed", "expired"), ("expiring", "expired")}
    assert {a["status"] for a in resolved.values()} == {"resolved"}
    assert {a["reason"] for a in resolved.values()} == {"resolved"}
    assert again == {}
    assert _remembered(fleet) == {
        f"{kind}/{subject}.json" for kind, subject in first if subject != "expired"
    }


def test_an_unreadable_record_is_dropped_and_its_alert_sent_as_new(fleet, hook):
    _send(fleet, hook)
    fleet.store.put(f"{PREFIX}agent_quiet/nas-quiet.json", b"{not json")
    fleet.store.put(f"{PREFIX}agent_quiet/nas-gone.json", b"[]")

    sent = _send(fleet, hook, NOW + timedelta(minutes=20))

    assert sent.keys() == {("agent_quiet", "nas-quiet")}
    assert sent[("agent_quiet", "nas-quiet")]["reason"] == "new"
    assert "agent_quiet/nas-gone.json" not in _remembered(fleet)


def test_a_dry_run_sends_and_remembers_nothing(fleet):
    due = due_notices(_config(fleet), fleet.store, NOW)

    assert len(due.notices) == 4
    assert _remembered(fleet) == set()


# --- the webhook --------------------------------------------------------------------------------


def test_a_signed_webhook_request_verifies_with_the_secret(fleet, hook, monkeypatch, caplog):
    secret = "whsec-7f3a9c1d2b"
    monkeypatch.setenv("CERTDROP_TEST_HOOK_SECRET", secret)
    channel = WebhookChannel(hook.url, SecretRef("env", "CERTDROP_TEST_HOOK_SECRET"))
    caplog.set_level(logging.DEBUG)

    _send(fleet, hook, channel=channel)

    request = hook.requests[0]
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    wrong = hmac.new(b"another secret", request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], f"sha256={expected}")
    assert request.headers[SIGNATURE_HEADER] != f"sha256={wrong}"
    assert secret not in caplog.text


def test_a_webhook_answering_500_once_gets_the_same_body_again(fleet, hook):
    hook.answers = [500]
    sleeps = Sleeps()

    notices = evaluate_and_send(
        _config(fleet), fleet.store, NOW, [WebhookChannel(hook.url, sleep=sleeps)]
    )

    assert [len(notices), len(hook.requests)] == [4, 2]
    assert hook.requests[0].body == hook.requests[1].body
    assert sleeps == [1.0]
    assert len(_remembered(fleet)) == 4


def test_a_webhook_that_is_down_fails_clearly_and_its_alerts_go_out_next_time(fleet, hook):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    down = WebhookChannel(f"http://{LOOPBACK}:{port}/hooks/T0KEN-in-path", sleep=sleeps)

    with pytest.raises(AlertDeliveryFailed) as caught:
        evaluate_and_send(_config(fleet), fleet.store, NOW, [down])
    sent = _send(fleet, hook, NOW + timedelta(minutes=5))

    message = str(caught.value)
    assert message.startswith(f"alerts not delivered by webhook to http://{LOOPBACK}:{port}: ")
    assert "Connection refused" in message and "(4 attempts)" in message
    assert "T0KEN" not in message
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(sent) == 4 and {a["reason"] for a in sent.values()} == {"new"}


def test_a_webhook_refusing_the_request_is_not_retried(fleet, hook):
    hook.answers = [403]

    with pytest.raises(AlertDeliveryFailed, match="HTTP 403") as caught:
        evaluate_and_send(_config(fleet), fleet.store, NOW, [WebhookChannel(hook.url)])

    assert caught.value.status == 403
    assert len(hook.requests) == 1
    assert _remembered(fleet) == set()


def test_one_channel_failing_does_not_keep_the_alerts_from_the_other(fleet, hook):
    hook.answers = [400]
    other = WebhookReceiver()
    with other:
        channels = [WebhookChannel(hook.url), WebhookChannel(other.url)]
        with pytest.raises(AlertDeliveryFailed):
            evaluate_and_send(_config(fleet), fleet.store, NOW, channels)

    assert len(other.requests) == 1
    assert _remembered(fleet) == set()


def test_an_unreadable_webhook_secret_is_a_secret_error_naming_only_the_reference(fleet, hook):
    unsigned = WebhookReceiver()
    with unsigned:
        channels = [
            WebhookChannel(hook.url, SecretRef("env", "CERTDROP_TEST_UNSET_SECRET")),
            WebhookChannel(unsigned.url),
        ]
        with pytest.raises(SecretError, match="secret env:CERTDROP_TEST_UNSET_SECRET: "):
            evaluate_and_send(_config(fleet), fleet.store, NOW, channels)

    assert hook.requests == [] and len(unsigned.requests) == 1
    assert _remembered(fleet) == set()


# --- wiring -------------------------------------------------------------------------------------


def test_a_failed_run_alerts_right_away_and_the_tick_does_not_repeat_it(fleet, hook):
    state = load_site_state(fleet.store, "due")
    error = ErrorRecord("validation", "no TXT record found", NOW, False)
    save_site_state(fleet.store, replace(state, failures=1, last_error=error))
    outcomes = [Outcome("due", "failed", "ACME validation: no TXT record found")]
    config = _config(fleet)

    notices = notify_outcomes(config, fleet.store, NOW, [WebhookChannel(hook.url)], outcomes)
    tick = _send(fleet, hook, NOW + timedelta(minutes=20))

    assert [(n.alert.key, n.reason) for n in notices] == [("issuance_failed/due", "new")]
    assert "failed (run): validation: no TXT record found." in notices[0].alert.message
    assert ("issuance_failed", "due") not in tick


def test_a_successful_run_resolves_only_its_own_issuance_alert(fleet, hook):
    _send(fleet, hook)
    state = load_site_state(fleet.store, "expired")
    save_site_state(fleet.store, replace(state, failures=0, last_error=None))
    outcomes = [Outcome("expired", "issued", "renewal"), Outcome("due", "locked", "held")]

    notices = notify_outcomes(
        _config(fleet), fleet.store, NOW + HOUR, [WebhookChannel(hook.url)], outcomes
    )

    assert [(n.alert.key, n.reason) for n in notices] == [("issuance_failed/expired", "resolved")]
    assert "expiring/expired.json" in _remembered(fleet)
    assert "agent_quiet/nas-quiet.json" in _remembered(fleet)


class _Queue:
    def __init__(self):
        self.sent = []

    def send(self, bodies):
        self.sent += bodies


def test_the_tick_sends_alerts_after_queueing_and_keeps_a_delivery_failure(fleet, hook):
    queue = _Queue()
    config = _config(fleet, webhook_url=hook.url)
    hook.answers = [404]

    failed = run_tick(config, fleet.store, queue, NOW, channels=[WebhookChannel(hook.url)])
    sent = run_tick(config, fleet.store, queue, NOW, channels=[WebhookChannel(hook.url)])
    none = run_tick(replace(config, alerts=None), fleet.store, queue, NOW)

    assert isinstance(failed.alerts_error, AlertDeliveryFailed) and failed.alerts == ()
    assert len(sent.alerts) == 4 and sent.alerts_error is None
    assert none.alerts == () and len(hook.requests) == 2
    assert len(queue.sent) == 3 * len(failed.due)


# --- SNS on moto's server -----------------------------------------------------------------------


@pytest.fixture
def sns_topic(monkeypatch):
    """A topic with an SQS queue subscribed to it; yields (topic ARN, read messages)."""
    with fake_aws_env(), MotoServer() as moto:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        sns, sqs = moto.client("sns"), moto.client("sqs")
        topic = sns.create_topic(Name="certdrop-alarms")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alert-copies")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        def read(count: int) -> list[dict]:
            messages: list[dict] = []
            for _ in range(20):  # long polls of 1 s: a deadline of about 20 s
                if len(messages) >= count:
                    break
                got = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                messages += [json.loads(m["Body"]) for m in got.get("Messages", [])]
            return messages

        yield topic, read


def test_alerts_are_published_to_sns_one_message_each_with_their_kind(fleet, sns_topic):
    topic, read = sns_topic

    notices = evaluate_and_send(
        _config(fleet, webhook_url=None, sns_topic_arn=topic), fleet.store, NOW, [SnsChannel(topic)]
    )
    messages = read(len(notices))

    assert len(messages) == len(notices) == 4
    by_kind = {m["MessageAttributes"]["kind"]["Value"]: m for m in messages}
    assert set(by_kind) == {"issuance_failed", "expiring", "bundle_rolled_back", "agent_quiet"}
    quiet = by_kind["agent_quiet"]
    assert quiet["Subject"] == "[certdrop] WARNING agent quiet: nas-quiet"
    assert quiet["MessageAttributes"]["agent"]["Value"] == "nas-quiet"
    body = json.loads(quiet["Message"])
    assert body["format"] == FORMAT
    assert [a["agent"] for a in body["alerts"]] == ["nas-quiet"]
    assert all(len(m["Subject"]) < 100 for m in messages)


def test_an_sns_topic_that_does_not_exist_fails_clearly(fleet, sns_topic):
    topic, _ = sns_topic
    missing = topic.rsplit(":", 1)[0] + ":no-such-topic"

    with pytest.raises(AlertDeliveryFailed, match="alerts not delivered by sns to arn:aws:sns"):
        evaluate_and_send(_config(fleet), fleet.store, NOW, [SnsChannel(missing)])

    assert _remembered(fleet) == set()


def test_the_tick_function_publishes_the_fleets_alerts_once(tmp_path, sns_topic, monkeypatch):
    topic, read = sns_topic
    fleet = make_fleet(tmp_path, datetime.now(UTC))
    s3 = S3Store("certdrop-alerts")
    s3.client.create_bucket(Bucket="certdrop-alerts")
    for info in fleet.store.list(""):
        s3.put(info.key, fleet.store.get(info.key).body)
    sites = "".join(f'[sites.{s}]\ndomain = "{s}.example.test"\nprovider = "dns"\n' for s in SITES)
    config = (
        '[ca]\ndirectory = "https://acme.example/directory"\nterms_agreed = true\n'
        '[providers.dns]\ntype = "exec"\ncommand = ["/bin/true"]\n'
        f'[alerts]\nsns_topic_arn = "{topic}"\n{sites}'
    )
    s3.put("config/certdrop.toml", config.encode())
    queue_url = boto3.client("sqs").create_queue(QueueName="issue")["QueueUrl"]
    monkeypatch.setenv("CERTDROP_BUCKET", "certdrop-alerts")
    monkeypatch.setenv("CERTDROP_QUEUE_URL", queue_url)
    monkeypatch.setenv("CERTDROP_METRIC_NAMESPACE", "off")

    first = handlers.tick({"source": "certdrop.schedule"}, None)
    second = handlers.tick({"source": "certdrop.schedule"}, None)

    assert (first["alerts"], second["alerts"]) == (4, 0)
    subjects = sorted(m["Subject"] for m in read(4))
    assert subjects == [
        "[certdrop] CRITICAL expiring: expired",
        "[certdrop] ERROR bundle rolled back: nas-behind",
        "[certdrop] ERROR issuance failed: expired",
        "[certdrop] WARNING agent quiet: nas-quiet",
    ]


# --- found by an independent review of what the views tell (each failed before its fix) ---


def test_a_refused_bundle_is_alerted_even_when_another_site_failed_after_it(live_fleet, tmp_path):
    """README (Alerts): `bundle_refused` fires when "an agent refused a bundle (a check failed:
    signature, hash, names...) and has not recovered".

    Reproduction: agent nas-two receives sites "healthy" and "due". In one cycle it refuses the
    bundle of "healthy" (bundle.names_not_covered: recorded first, at open time) and then the
    install of "due" fails for another reason (install.services_not_bound). Its report carries
    both in `site_errors`, `failing` is true, and `last_error` is the later, non-refusal one.

    Expected: a `bundle_refused` alert for nas-two (the refusal of "healthy" is current: it
    repeats every cycle until someone fixes the names).
    Instead: `agent_rules.agent_error` looks at `last_error` only, so no `bundle_refused` alert
    fires (`certdrop alerts --dry-run` shows none), and the `certdrop status` text, whose LAST
    ERROR column also shows `last_error` only, never mentions the refusal either. If the alert
    had fired in an earlier cycle it is now sent as "resolved" while the bundle is still refused.

    Found by an independent review of what the views tell; it failed before the fix.
    """
    fleet = live_fleet
    now = fleet.now
    seen = now - timedelta(minutes=5)
    state = AgentState(
        sites={"healthy": InstalledSite(1, "01" * 32, now + 40 * DAY, "Ab12", now - 60 * DAY)}
    )
    state = state.with_error(
        "bundle.names_not_covered",
        "the certificate does not cover nas.example.test",
        seen - timedelta(minutes=2),
        site="healthy",
    ).with_error(
        "install.services_not_bound",
        "DSM lists no service 'webdav'",
        seen - timedelta(minutes=1),
        site="due",
    )
    add_agent(fleet, "nas-two", ("healthy", "due"), state, seen)

    status = collect(fleet.config, fleet.store, now)
    agent = status.agent("nas-two")
    assert agent.failing
    assert agent.site_errors["healthy"].code == "bundle.names_not_covered"  # the view knows it

    kinds = {(a.kind, a.agent) for a in evaluate(status, now)}
    dry_run = _certdrop(_cli_config(tmp_path), "alerts", "--dry-run")
    assert dry_run.returncode == 0, dry_run.stderr
    assert ("bundle_refused", "nas-two") in kinds, (
        f"no bundle_refused alert for nas-two; alerts: {sorted(kinds)}\n"
        f"certdrop alerts --dry-run:\n{dry_run.stdout}"
    )


def test_a_recorded_certificate_not_yet_published_is_alerted_and_explained(fleet):
    """README (Operating a fleet): health "delivery pending (also a certificate a run recorded
    and did not publish)"; (Alerts) `delivery_pending`: "a site's current certificate has not
    reached some agents ... every run tries again".

    Reproduction: a run of "healthy" recorded version 3 (state `pending`) and died before
    publishing it: no agent has it.

    Expected: as for an undelivered agent: a `delivery_pending` alert, and `certdrop status`'s
    "pending:" section saying what is pending.
    Instead: the site is red "delivery pending" in `status` and on the dashboard, but
    `rules.pending_work` looks at `undelivered` only: no alert fires, and the status text has no
    "pending:" line, so the red health has no explanation anywhere (NEXT RENEWAL reads "(valid)",
    weeks away).

    Found by an independent review of what the views tell; it failed before the fix.
    """
    now = fleet.now
    state = load_site_state(fleet.store, "healthy")
    save_site_state(
        fleet.store, replace(state, pending=_record("healthy", 3, now - 2 * DAY, 90 * DAY))
    )

    status = collect(fleet.config, fleet.store, now)
    assert status.site("healthy").health == "delivery pending"
    text = render(status)
    alerts = {(a.kind, a.site) for a in evaluate(status, now)}

    problems = []
    if ("delivery_pending", "healthy") not in alerts:
        problems.append("no delivery_pending alert")
    if "pending:" not in text:
        problems.append(f"status text explains nothing: {_site_row(text, 'healthy')!r}")
    assert not problems, "; ".join(problems)


def _now() -> datetime:
    # Real time: the local store stamps reports with the real clock, and the CLI reads it.
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def live_fleet(tmp_path):
    """A sample fleet at the real time: the CLI reads it with the real clock."""
    return make_fleet(tmp_path, _now())


def _cli_config(tmp_path: Path, sites=SITES, extra: str = "") -> Path:
    """The sample fleet's configuration as a file on the sample store, with an [alerts] table
    (a dry run sends nothing)."""
    path = tmp_path / "certdrop.toml"
    path.write_text(
        '[storage]\nurl = "store"\n\n[alerts]\nwebhook_url = "http://127.0.0.1:9/unused"\n\n'
        + config_text(sites)
        + extra,
        encoding="utf-8",
    )
    return path


def _certdrop(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CERTDROP, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/work/main",
    )


def _site_row(text: str, site_id: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{site_id} "))
