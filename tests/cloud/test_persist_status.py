"""What a dns-persist-01 record was last seen to say, in the status, the dashboard and the alerts:
an expiring persistUntil and a record naming another ACME account, each alerted once."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud.config import parse
from cloud.fleet.alerts.evaluate import current_alerts, evaluate_and_send
from cloud.fleet.dashboard import make_app
from cloud.fleet.status import collect
from cloud.fleet.status_table import render
from cloud.pipeline.renewal import PERSIST_LOOK, decide
from cloud.pipeline.site_state import (
    CertificateRecord,
    PersistSeen,
    SiteState,
    load_site_state,
    save_site_state,
)
from cloud.store.local import LocalStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ACCOUNT = "https://acme.example/acme/acct/1"
OTHER = "https://acme.example/acme/acct/2"
RECORD = "_validation-persist.persisted.example.test."


class Recorder:
    """A channel keeping what it was given."""

    name = "recorder"
    target = "memory"

    def __init__(self) -> None:
        self.sent: list[list] = []

    def send(self, notices, sent_at) -> None:
        self.sent.append(list(notices))


@pytest.fixture
def fleet(tmp_path):
    text = textwrap.dedent(
        """
        [ca]
        directory = "https://acme.example/directory"
        terms_agreed = true

        [alerts]
        webhook_url = "http://127.0.0.1:9/unused"
        expiry_days = 14

        [sites.persisted]
        domain = "persisted.example.test"
        challenge = "dns-persist-01"
        """
    )
    config = parse(text, tmp_path / "certdrop.toml")
    store = LocalStore(str(tmp_path / "store"))
    current = CertificateRecord(
        version=1,
        cert_sha256="ab" * 32,
        serial="1f",
        names=("persisted.example.test", "*.persisted.example.test"),
        key_type="ec-p256",
        profile=None,
        not_before=NOW - 10 * DAY,
        not_after=NOW + 80 * DAY,
        issued_at=NOW - 10 * DAY,
        escrow_object="escrow/persisted/1.sealed",
    )
    save_site_state(store, SiteState("persisted", current, persist=(_seen(),)))
    return config, store


def _seen(**changes) -> PersistSeen:
    seen = PersistSeen(RECORD, NOW - DAY / 2, ACCOUNT, ACCOUNT, NOW + 200 * DAY)
    return replace(seen, **changes)


def _set(store, **changes) -> None:
    state = load_site_state(store, "persisted")
    save_site_state(store, replace(state, persist=(_seen(**changes),)))


def test_a_healthy_record_shows_in_the_status_and_raises_no_alert(fleet):
    config, store = fleet
    status = collect(config, store, NOW)

    site = status.site("persisted")
    assert site.challenge == "dns-persist-01"
    assert site.persist[0].account_uri == ACCOUNT
    table = render(status)
    assert "DNS-PERSIST-01 RECORD" in table
    row = next(line for line in table.splitlines() if RECORD in line)
    assert "this issuer's" in row and "2027-06-16 12:00 (200 days)" in row
    listed = status.as_json()["sites"][0]["persist"][0]
    assert listed["account_uri"] == ACCOUNT
    assert listed["persist_until"] == (NOW + 200 * DAY).isoformat()
    assert current_alerts(config, store, NOW) == []


def test_a_persist_until_within_expiry_days_alerts_once_and_resolves_when_replaced(fleet):
    config, store = fleet
    _set(store, persist_until=NOW + 9 * DAY)
    recorder = Recorder()

    first = evaluate_and_send(config, store, NOW, [recorder])
    again = evaluate_and_send(config, store, NOW + DAY / 24, [recorder])
    _set(store, persist_until=NOW + 400 * DAY)  # the owner put a later one in place
    resolved = evaluate_and_send(config, store, NOW + DAY / 12, [recorder])

    assert [(n.alert.kind, n.reason) for n in first] == [("persist_expiring", "new")]
    alert = first[0].alert
    assert alert.severity == "warning"
    assert alert.message.startswith(
        f"The dns-persist-01 record {RECORD} of persisted stops authorizing issuance in 9 days"
    )
    assert "certdrop site persist-record persisted --persist-until" in alert.message
    assert alert.details["records"][0]["persist_until"] == (NOW + 9 * DAY).isoformat()
    assert again == []  # once only
    assert [(n.alert.kind, n.reason) for n in resolved] == [("persist_expiring", "resolved")]


def test_a_persist_until_that_passed_is_critical_and_shown_as_such(fleet):
    config, store = fleet
    _set(store, persist_until=NOW - DAY, code="dns.persist_record_expired", problem="passed")

    alerts = current_alerts(config, store, NOW)
    table = render(collect(config, store, NOW))

    assert [(a.kind, a.severity) for a in alerts] == [("persist_expiring", "critical")]
    assert "stopped authorizing issuance at its persistUntil" in alerts[0].message
    assert "(PASSED)" in table and "dns.persist_record_expired" in table


def test_a_record_naming_another_account_alerts_once_naming_both(fleet):
    config, store = fleet
    _set(store, account_uri=OTHER, code="dns.persist_record_mismatch", problem="accounturi")
    recorder = Recorder()

    first = evaluate_and_send(config, store, NOW, [recorder])
    again = evaluate_and_send(config, store, NOW + DAY / 24, [recorder])

    assert [(n.alert.kind, n.reason) for n in first] == [("persist_account_mismatch", "new")]
    alert = first[0].alert
    assert alert.severity == "error"
    assert OTHER in alert.message and ACCOUNT in alert.message
    assert "a new account invalidates every record" in alert.message
    assert again == []
    assert f"ANOTHER: {OTHER}" in render(collect(config, store, NOW))


def test_the_dashboard_shows_each_record_with_its_account_and_persist_until(fleet):
    config, store = fleet
    _set(store, account_uri=OTHER, persist_until=NOW + 10 * DAY)
    app = make_app(lambda: collect(config, store, NOW))

    page = app.test_client().get("/").get_data(as_text=True)
    data = app.test_client().get("/status.json").get_json()

    assert "DNS-PERSIST-01 records" in page
    row = page[page.index(f'data-record="{RECORD}"') :].split("</tr>")[0]
    assert "another account" in row and OTHER in row
    assert "replace soon · 10 days left" in row
    assert data["sites"][0]["persist"][0]["account_uri"] == OTHER


def test_a_valid_site_is_looked_at_daily_to_read_its_record_again(fleet):
    config, store = fleet
    site = config.sites["persisted"]
    state = load_site_state(store, "persisted")

    soon = decide(site, state, NOW)
    stale = decide(site, replace(state, persist=()), NOW)

    assert not soon.due
    assert soon.next_check == state.persist[0].checked_at + PERSIST_LOOK
    assert "record read daily" in soon.reason
    assert not stale.due and stale.next_check == NOW  # never read: now


def test_the_status_json_of_a_dns_01_site_has_no_records(tmp_path):
    config = parse(
        '[ca]\ndirectory = "https://acme.example/d"\nterms_agreed = true\n'
        '[providers.p]\ntype = "exec"\ncommand = ["/bin/true"]\n'
        '[sites.plain]\ndomain = "plain.example.test"\nprovider = "p"\n',
        tmp_path / "certdrop.toml",
    )
    status = collect(config, LocalStore(str(tmp_path / "store")), NOW)

    assert json.loads(json.dumps(status.as_json()))["sites"][0]["persist"] == []
    assert "DNS-PERSIST-01" not in render(status)
