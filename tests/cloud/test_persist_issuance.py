"""dns-persist-01 against Pebble 2.10.1 and BIND: a site whose issuer holds no DNS credentials.

The record is placed once per test through BIND's RFC 2136 interface, as a site's owner would
with their DNS host; certdrop itself writes nothing. Each test uses its own name under
example.test, and removes its record at the end.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dns.flags
import dns.message
import dns.query
import pytest

from cloud.acme.certificate_keys import KeyType
from cloud.acme.client import AcmeClient
from cloud.cli.exit_codes import EXIT_ACME, EXIT_CONFIG, EXIT_DNS, EXIT_DOCTOR, EXIT_OK
from cloud.config import AlertsConfig
from cloud.dns01.persist.record import format_value
from cloud.dns01.providers.base import TxtRecord
from cloud.errors import (
    ChallengeNotOffered,
    PersistRecordExpired,
    PersistRecordMismatch,
    PersistRecordMissing,
)
from cloud.fleet.alerts.evaluate import current_alerts
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.renewal import decide
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from lab.issuer_config import bind_config
from lab.pebble_front import PebbleFront
from nas_agent import store_layout
from tests.cloud.issuing import assert_issued, order_certificate, txt_values
from tests.cloud.test_cli_issue import _run

ISSUER = "pebble.letsencrypt.org"  # Pebble's default caaIdentities


class Persist:
    """One test's site: its own name under example.test, its record placed by the owner."""

    def __init__(self, tmp_path, pebble, bind_auth, *, directory_of=None):
        self.label = f"p{uuid.uuid4().hex[:10]}"
        self.domain = f"{self.label}.example.test"
        self.fqdn = f"_validation-persist.{self.domain}."
        self.bind = bind_auth
        self.config = bind_config(
            tmp_path, directory_of or pebble, bind_auth, persist=True,
            site=f'domain = "{self.domain}"',
        )  # fmt: skip
        # The owner's DNS host: BIND's RFC 2136 interface (the config's unused provider).
        self._owner = parts.provider(self.config, "dns")
        self._placed: list[TxtRecord] = []

    @property
    def names(self) -> tuple[str, ...]:
        return (self.domain, f"*.{self.domain}")

    def account(self) -> str:
        acme = AcmeClient(self.config.ca, parts.keystore(self.config))
        acme.connect()
        return acme.account_uri

    def place(self, value: str) -> None:
        record = TxtRecord("example.test.", self.fqdn, value)
        self._owner.add_txt(record)
        self._placed.append(record)

    def remove(self) -> None:
        for record in self._placed:
            self._owner.remove_txt(record)

    def serial(self) -> int:
        """example.test's SOA serial at BIND: every RFC 2136 update raises it."""
        query = dns.message.make_query("example.test.", "SOA")
        query.flags &= ~dns.flags.RD
        host, _, port = self.bind.address.rpartition(":")
        response = dns.query.udp(query, host, port=int(port), timeout=3)
        return response.answer[0][0].serial


@pytest.fixture
def persist(tmp_path, pebble, bind_auth):
    site = Persist(tmp_path, pebble, bind_auth)
    yield site
    site.remove()


@pytest.fixture
def refuse_provider(monkeypatch):
    """Any DNS provider built for a dns-persist-01 run fails the test at once."""

    def refused(config, name):
        raise AssertionError(f"a dns-persist-01 run built the DNS provider {name!r}")

    monkeypatch.setattr(parts, "provider", refused)


def test_a_provider_less_site_is_issued_apex_and_wildcard_writing_nothing(
    persist, pebble, refuse_provider
):
    persist.place(format_value(ISSUER, persist.account(), wildcard=True))
    serial = persist.serial()
    config = persist.config
    init_issuer(parts.keystore(config))
    store = parts.store(config)

    outcome = Runner(config, store, parts.keystore(config), parts.publisher(config)).run_site(
        "example"
    )

    assert outcome.result == "issued", outcome.reason
    assert_issued(outcome.certificate, pebble, persist.names, KeyType.EC_P256)
    assert persist.serial() == serial  # no DNS update reached BIND
    assert txt_values(persist.bind.address, f"_acme-challenge.{persist.domain}.") == set()
    assert store.get(store_layout.challenge_journal("example")) is None  # nothing journalled
    seen = load_site_state(store, "example").persist
    assert [(s.fqdn, s.account_uri, s.code) for s in seen] == [
        (persist.fqdn, persist.account(), None)
    ]


def test_the_apex_alone_needs_no_wildcard_policy(persist, tmp_path, pebble, bind_auth):
    config = bind_config(
        tmp_path, pebble, bind_auth, persist=True,
        site=f'domain = "{persist.domain}"\nwildcard = false',
    )  # fmt: skip
    persist.place(format_value(ISSUER, persist.account(), wildcard=False))

    cert = order_certificate(config, "example")

    assert_issued(cert, pebble, (persist.domain,), KeyType.EC_P256)


# --- records that do not authorize us: refused before the CA is asked ------------------------


def _refused(persist, error_class):
    """Orders; the record check must fail with `error_class` before any challenge is answered."""
    answered = []
    original = AcmeClient.post

    def post(self, what, url, message):
        answered.append(what)
        return original(self, what, url, message)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AcmeClient, "post", post)
        with pytest.raises(error_class) as caught:
            order_certificate(persist.config, "example")
    assert "answer challenge" not in answered  # no failed authorization burnt at the CA
    error = caught.value
    assert error.fqdn == persist.fqdn
    assert persist.fqdn in str(error) and "ns1.example.test." in str(error)
    return error


def test_a_missing_record_is_named_with_what_is_expected(persist):
    account = persist.account()

    error = _refused(persist, PersistRecordMissing)

    assert error.code == "dns.persist_record_missing"
    assert error.found == ()
    assert error.expected == format_value(ISSUER, account, wildcard=True)
    assert f'Expected: "{ISSUER}; accounturi={account}; policy=wildcard"' in str(error)


def test_a_record_naming_another_account_is_named_with_both_accounts(persist):
    account = persist.account()
    other = account.rsplit("/", 1)[0] + "/999999"
    persist.place(format_value(ISSUER, other, wildcard=True))

    error = _refused(persist, PersistRecordMismatch)

    assert (error.code, error.field) == ("dns.persist_record_mismatch", "accounturi")
    assert error.found == (format_value(ISSUER, other, wildcard=True),)
    assert f"accounturi {other} is not this issuer's ACME account {account}" in str(error)


def test_a_record_without_the_wildcard_policy_is_refused_for_a_wildcard(persist):
    persist.place(format_value(ISSUER, persist.account(), wildcard=False))

    error = _refused(persist, PersistRecordMismatch)

    assert error.field == "policy"
    assert "no policy=wildcard" in str(error)


def test_an_expired_record_is_refused_naming_its_persist_until(persist):
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    persist.place(format_value(ISSUER, persist.account(), wildcard=True, persist_until=past))

    error = _refused(persist, PersistRecordExpired)

    assert error.code == "dns.persist_record_expired"
    assert error.persist_until == past
    assert f"persistUntil {past:%Y-%m-%d %H:%M:%S} UTC has passed" in str(error)


def test_a_refused_record_fails_certdrop_issue_with_the_dns_exit_code(persist):
    result = _run("--config", persist.config.source, "issue", "example")

    assert result.returncode == EXIT_DNS
    assert persist.fqdn in result.stderr and "Expected:" in result.stderr


# --- a CA that does not offer dns-persist-01 --------------------------------------------------


@pytest.fixture
def front(pebble):
    with PebbleFront(pebble) as front:
        yield front


def test_a_ca_without_dns_persist_01_is_refused_and_not_ordered_again(
    tmp_path, pebble, bind_auth, front
):
    site = Persist(tmp_path, pebble, bind_auth, directory_of=front)
    config = site.config
    store = parts.store(config)
    later = datetime.now(UTC) + timedelta(days=2)  # past any backoff

    def runner(now=None):
        kwargs = {"now": (lambda: now)} if now else {}
        return Runner(config, store, parts.keystore(config), None, **kwargs)

    first = runner().run_site("example")
    again = runner(later).run_site("example")

    assert first.result == "failed"
    assert isinstance(first.error, ChallengeNotOffered)
    assert first.error.code == "acme.challenge_not_offered"
    assert front.directory_url in first.reason
    assert len(front.posted("/order-plz")) == 1
    deactivated = [r for r in front.requests if r["payload"] == {"status": "deactivated"}]
    assert len(deactivated) == 2 and all(r["status"] == 200 for r in deactivated)
    state = load_site_state(store, "example")
    assert state.challenge_unavailable.directory == front.directory_url
    assert again.result == "not due"
    assert "offers no dns-persist-01" in again.reason
    assert len(front.posted("/order-plz")) == 1  # not ordered again
    # Another CA's directory, or a change of the site's configuration, makes it due again.
    site_config = config.sites["example"]
    assert decide(site_config, state, later, directory="https://other.example/dir").due
    changed = replace(site_config, key_type=KeyType.EC_P384)
    assert decide(changed, state, later, directory=front.directory_url).due


def test_certdrop_issue_names_the_directory_of_a_ca_without_the_challenge(
    tmp_path, pebble, bind_auth, front
):
    site = Persist(tmp_path, pebble, bind_auth, directory_of=front)

    result = _run("--config", site.config.source, "issue", "example")

    assert result.returncode == EXIT_ACME
    assert "ACME unsupportedChallenge" in result.stderr
    assert front.directory_url in result.stderr
    assert "offers no dns-persist-01" in result.stderr


# --- the commands: persist-record, doctor ----------------------------------------------------


def test_persist_record_prints_the_zone_line_to_create_and_how(persist, pebble):
    until = (datetime.now(UTC) + timedelta(days=400)).date()
    stamp = int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp())

    result = _run(
        "-c", persist.config.source, "site", "persist-record", "example",
        "--persist-until", until.isoformat(),
    )  # fmt: skip

    assert result.returncode == EXIT_OK, result.stderr
    account = persist.account()
    value = f"{ISSUER}; accounturi={account}; policy=wildcard; persistUntil={stamp}"
    assert f'{persist.fqdn} 3600 IN TXT "{value}"' in result.stdout.splitlines()
    assert f"issuer domain  {ISSUER} (the first of the CA directory's meta.caaIdentities" in (
        result.stdout
    )
    for host in ("BIND zone file", "nsupdate", "Route 53", "Cloudflare"):
        assert host in result.stdout
    # What it prints is what the CA accepts.
    persist.place(value)
    cert = order_certificate(persist.config, "example")
    assert_issued(cert, pebble, persist.names, KeyType.EC_P256)


def test_persist_record_refuses_a_day_that_has_passed(persist):
    result = _run(
        "-c", persist.config.source, "site", "persist-record", "example",
        "--persist-until", "2020-01-01",
    )  # fmt: skip

    assert result.returncode == EXIT_CONFIG
    assert "2020-01-01 has passed" in result.stderr


def test_doctor_reads_the_record_at_every_nameserver_and_fails_on_a_mismatch(persist):
    missing = _run("-c", persist.config.source, "doctor")
    persist.place(format_value(ISSUER, persist.account(), wildcard=True))
    fixed = _run("-c", persist.config.source, "doctor")

    assert missing.returncode == EXIT_DOCTOR, missing.stdout
    lines = [line for line in missing.stdout.splitlines() if persist.fqdn in line]
    assert len(lines) == 2  # ns1 and ns2
    assert all(line.strip().startswith("FAIL  example") for line in lines)
    assert "ns1.example.test." in lines[0] and "ns2.example.test." in lines[1]
    assert "no value for the CA's issuer domain pebble.letsencrypt.org" in lines[0]
    assert "doctor: 1 of 3 check(s) failed" in missing.stdout  # store, account key pass
    assert fixed.returncode == EXIT_OK, fixed.stdout
    lines = [line for line in fixed.stdout.splitlines() if persist.fqdn in line]
    assert len(lines) == 2
    assert all("ok    example" in line and "authorizes this issuer" in line for line in lines)


# --- between issuances: the record read daily, for the status and the alerts -----------------


def test_between_issuances_the_record_is_read_daily_and_another_account_alerts(
    persist, refuse_provider
):
    account = persist.account()
    persist.place(format_value(ISSUER, account, wildcard=True))
    config = replace(persist.config, alerts=AlertsConfig(webhook_url="http://127.0.0.1:9/x"))
    init_issuer(parts.keystore(config))
    store = parts.store(config)

    def run(now):
        runner = Runner(config, store, parts.keystore(config), parts.publisher(config), now=now)
        return runner.run_site("example")

    assert run(lambda: datetime.now(UTC)).result == "issued"
    # The record is replaced by one naming another account (as after making a new one).
    other = account.rsplit("/", 1)[0] + "/999999"
    persist.remove()
    persist.place(format_value(ISSUER, other, wildcard=True))
    later = datetime.now(UTC) + timedelta(days=2)
    outcome = run(lambda: later)

    assert outcome.result == "not due"
    seen = load_site_state(store, "example").persist[0]
    assert (seen.account_uri, seen.account) == (other, account)
    assert seen.code == "dns.persist_record_mismatch" and seen.checked_at == later
    alerts = current_alerts(config, store, later)
    assert [a.kind for a in alerts] == ["persist_account_mismatch"]
    assert other in alerts[0].message and account in alerts[0].message
