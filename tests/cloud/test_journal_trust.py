"""The challenge journal (`state/challenges/<site>.json`) is unsigned store content: a sweep
removes only what can be a dns-01 value a run placed, and a journal no run wrote is set aside.
The first test is from an independent review; it failed before the fix (a store writer had the
issuer delete a SPF record)."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime

import pytest

from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.solver import ChallengeJournal
from cloud.errors import JournalInvalid
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.schedule import read_journalled
from cloud.pipeline.site_run import Runner
from lab.issuer_config import bind_config
from nas_agent import store_layout
from tests.cloud.issuing import txt_values


@pytest.fixture
def lab(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    init_issuer(parts.keystore(config))
    return config, parts.store(config)


def _digest(label: str) -> str:
    """A value shaped like every dns-01 TXT value: base64url of a SHA-256 digest."""
    digest = hashlib.sha256(label.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _runner(config, store) -> Runner:
    return Runner(config, store, parts.keystore(config), parts.publisher(config, store))


def test_a_journal_planted_by_a_store_writer_does_not_make_the_issuer_delete_a_spf_record(
    lab, bind_auth
):
    config, store = lab
    spf = TxtRecord("example.test.", "review6-mail.example.test.", "v=spf1 mx -all")
    parts.provider(config, "dns").add_txt(spf)  # the domain owner's record, not the issuer's
    try:
        # The store writer: a journal for a site id that is not configured.
        ChallengeJournal(store, "ghost").record(
            "dns", [("example.test", spf)], datetime(2026, 1, 1, tzinfo=UTC)
        )
        _runner(config, store).run_site("ghost")

        assert "v=spf1 mx -all" in txt_values(bind_auth.address, spf.fqdn), (
            "the issuer deleted a TXT record a store writer chose"
        )
        assert ChallengeJournal(store, "ghost").entries() == ()
    finally:
        parts.provider(config, "dns").remove_txt(spf)


@pytest.mark.parametrize(
    ("name", "fqdn", "zone"),
    [
        ("example.test", "_acme-challenge.example.test.", "example.test."),
        # Delegated: `_acme-challenge.delegated.example.test CNAME delegated.validation.test.`
        ("delegated.example.test", "delegated.validation.test.", "validation.test."),
    ],
    ids=["direct", "cname-delegated"],
)
def test_a_genuine_leftover_is_still_removed(lab, bind_auth, name, fqdn, zone):
    config, store = lab
    left = TxtRecord(zone, fqdn, _digest(f"left at {fqdn}"))
    ChallengeJournal(store, "gone").record("dns", [(name, left)], datetime.now(UTC))
    parts.provider(config, "dns").add_txt(left)

    outcome = _runner(config, store).run_site("gone")

    assert left.value not in txt_values(bind_auth.address, fqdn)
    assert ChallengeJournal(store, "gone").entries() == ()
    assert outcome.leftover_txt == ()


@pytest.mark.parametrize(
    ("name", "fqdn", "zone"),
    [
        # Not an `_acme-challenge` name at all: a DKIM key's name, say.
        ("example.test", "review-dkim._domainkey.example.test.", "example.test."),
        # A challenge name, but of no host: another record's label under it.
        ("_dmarc.example.test", "_acme-challenge._dmarc.example.test.", "example.test."),
        # Delegated names are believed only where the CNAME leads today.
        ("delegated.example.test", "elsewhere.validation.test.", "validation.test."),
        ("example.test", "delegated.validation.test.", "validation.test."),
    ],
    ids=["not-a-challenge-name", "not-a-host", "not-where-the-cname-leads", "no-cname-there"],
)
def test_a_planted_record_survives_and_is_dropped_from_the_journal_by_name(
    lab, bind_auth, caplog, name, fqdn, zone
):
    config, store = lab
    planted = TxtRecord(zone, fqdn, _digest(f"planted at {fqdn}"))
    parts.provider(config, "dns").add_txt(planted)
    try:
        ChallengeJournal(store, "ghost").record("dns", [(name, planted)], datetime.now(UTC))
        with caplog.at_level(logging.WARNING, logger="cloud.dns01.solver"):
            left = parts.sweep(config, "ghost", store, lambda: datetime.now(UTC))

        assert planted.value in txt_values(bind_auth.address, fqdn)
        assert left == 0
        assert ChallengeJournal(store, "ghost").entries() == ()
        assert any(
            planted.value in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records
        )
    finally:
        parts.provider(config, "dns").remove_txt(planted)


def test_a_value_not_shaped_like_a_dns01_value_is_never_removed_even_at_a_challenge_name(
    lab, bind_auth
):
    config, store = lab
    fqdn = "_acme-challenge.example.test."
    other = TxtRecord("example.test.", fqdn, "some-other-clients-token")
    parts.provider(config, "dns").add_txt(other)
    try:
        ChallengeJournal(store, "ghost").record("dns", [("example.test", other)], datetime.now(UTC))
        parts.sweep(config, "ghost", store, lambda: datetime.now(UTC))

        assert other.value in txt_values(bind_auth.address, fqdn)
        assert ChallengeJournal(store, "ghost").entries() == ()
    finally:
        parts.provider(config, "dns").remove_txt(other)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'["a list"]',
        b'{"entries": [{"provider": "dns", "record": {"zone": 1}, "at": "x"}]}',
        b'{"entries": [{"provider": "dns", "record": {"zone": "a.", "fqdn": "b.", "value": "c"},'
        b' "at": "2026-01-01T00:00:00"}]}',  # a time without its zone
        b"[" * 100_000,
    ],
    ids=["not-json", "not-an-object", "wrong-types", "naive-time", "deeply-nested"],
)
def test_a_malformed_journal_is_a_certdrop_error_and_set_aside(lab, body):
    config, store = lab
    key = store_layout.challenge_journal("ghost")
    store.put(key, body)

    shown = ChallengeJournal(store, "ghost").leftovers()  # status: read only, never raises
    with pytest.raises(JournalInvalid) as raised:
        parts.sweep(config, "ghost", store, lambda: datetime.now(UTC))

    assert shown and "unreadable" in shown[0]
    assert raised.value.code == "dns.journal_invalid"
    assert store.get(key) is None, "an unreadable journal blocks every later run"
    assert store.get(store_layout.challenge_journal_set_aside("ghost")).body == body  # kept
    assert "ghost" not in read_journalled(store)
    assert ChallengeJournal(store, "ghost").entries() == ()


def test_a_malformed_journal_does_not_crash_a_configured_sites_run(lab, caplog):
    config, store = lab
    store.put(store_layout.challenge_journal("example"), b"{not json")
    runner = _runner(config, store)

    first = runner.run_site("example", force=True)  # returns: the run's outcome, not a crash

    # Set aside by the read and said in the log: the run goes on as if there were none.
    assert first.result == "issued", first.reason
    assert "set aside, nothing in it removed" in caplog.text
    assert ChallengeJournal(store, "example").entries() == ()
    assert store.get(store_layout.challenge_journal_set_aside("example")) is not None


def test_a_malformed_journal_of_a_site_not_configured_ends_no_run(lab):
    # A made-up site id with an unreadable journal: its run says so and ends; before, the read
    # escaped run_site and ended the whole `certdrop run` (pool.map) or the Lambda message.
    config, store = lab
    store.put(store_layout.challenge_journal("ghost"), b"[]")
    runner = _runner(config, store)

    outcome = runner.run_site("ghost")

    assert outcome.site == "ghost" and outcome.result in ("not due", "failed")
    assert store.get(store_layout.challenge_journal("ghost")) is None
