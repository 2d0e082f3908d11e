"""The dns-persist-01 record's value: written, parsed and judged as Pebble 2.10.1's validator
judges it; a parser of what a DNS zone holds, so also property-tested."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.dns01.persist.check import expectations
from cloud.dns01.persist.howto import quoted, records_for
from cloud.dns01.persist.record import (
    Condition,
    Expectation,
    MalformedValue,
    format_value,
    judge,
    parse_value,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ISSUER = "letsencrypt.org"
ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123"
WILDCARD = Expectation((ISSUER,), ACCOUNT, wildcard=True)


def test_a_value_is_written_as_the_draft_shows_it():
    until = datetime(2027, 1, 1, tzinfo=UTC)

    assert format_value(ISSUER, ACCOUNT, wildcard=True, persist_until=until) == (
        f"{ISSUER}; accounturi={ACCOUNT}; policy=wildcard; persistUntil=1798761600"
    )
    assert format_value(ISSUER, ACCOUNT, wildcard=False) == f"{ISSUER}; accounturi={ACCOUNT}"


def test_tags_are_case_insensitive_and_blanks_around_them_ignored():
    value = parse_value(f" {ISSUER} ;AccountURI = {ACCOUNT} ;\tPOLICY=Wildcard; persistuntil=0")

    assert value.issuer_domain == ISSUER
    assert value.account_uri == ACCOUNT
    assert value.policy == "wildcard"
    assert value.persist_until == datetime(1970, 1, 1, tzinfo=UTC)


def test_another_policy_counts_as_none():
    assert parse_value(f"{ISSUER}; accounturi={ACCOUNT}; policy=strict").policy is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("; accounturi=x", "no issuer domain"),
        (f"{ISSUER}; accounturi={ACCOUNT};", "trailing"),
        (f"{ISSUER}; accounturi", "not tag=value"),
        (f"{ISSUER}; accounturi=a; AccountUri=b", "appears twice"),
        (f"{ISSUER}; accounturi=", "accounturi is empty"),
        (f"{ISSUER}; accounturi={ACCOUNT}; persistUntil=soon", "not a time"),
        (f"{ISSUER}; accounturi=a b", "space"),
    ],
)
def test_a_malformed_value_says_what_does_not_parse(text, why):
    with pytest.raises(MalformedValue, match=why):
        parse_value(text)


@pytest.mark.parametrize(
    ("values", "condition"),
    [
        ([], Condition.MISSING),
        ([f"other-ca.example; accounturi={ACCOUNT}; policy=wildcard"], Condition.MISSING),
        ([f"{ISSUER}; accounturi=https://elsewhere/acct/9; policy=wildcard"], Condition.ACCOUNT),
        ([f"{ISSUER}; accounturi={ACCOUNT}"], Condition.POLICY),
        ([f"{ISSUER}; accounturi={ACCOUNT}; policy=wildcard; persistUntil=1"], Condition.EXPIRED),
        ([f"{ISSUER}; policy=wildcard"], Condition.MALFORMED),
        ([f"{ISSUER}; accounturi={ACCOUNT}; policy=wildcard"], Condition.OK),
        # One authorizing value is enough, whatever else is there (another CA, an old account).
        (
            [
                f"{ISSUER}; accounturi=https://elsewhere/acct/9",
                "other-ca.example; accounturi=x",
                f"{ISSUER}; accounturi={ACCOUNT}; policy=wildcard; persistUntil=4102444800",
            ],
            Condition.OK,
        ),
        # Like Pebble, a malformed value for the CA outranks an authorization failure.
        ([f"{ISSUER}; accounturi=x; accounturi=y", f"{ISSUER}; accounturi=z"], Condition.MALFORMED),
    ],
)
def test_values_are_judged_as_the_ca_judges_them(values, condition):
    assert judge(values, WILDCARD, NOW).condition is condition


def test_a_failure_names_what_was_found():
    verdict = judge([f"{ISSUER}; accounturi=https://elsewhere/acct/9"], WILDCARD, NOW)

    assert verdict.detail == (
        f"accounturi https://elsewhere/acct/9 is not this issuer's ACME account {ACCOUNT}"
    )


def test_a_name_and_its_wildcard_share_one_record_which_then_needs_the_wildcard_policy():
    found = expectations(
        ("example.com", "*.example.com", "nas.other.org", "*.lan.other.org"), (ISSUER,), ACCOUNT
    )

    assert {name: e.wildcard for name, e in found.items()} == {
        "example.com": True,
        "nas.other.org": False,
        "lan.other.org": True,
    }
    assert [r.fqdn for r in records_for(("example.com", "*.example.com"), ISSUER, ACCOUNT)] == [
        "_validation-persist.example.com."
    ]


def test_a_value_longer_than_255_bytes_is_split_into_strings_for_a_zone_file():
    value = format_value(ISSUER, "https://ca.example/" + "a" * 300, wildcard=True)

    strings = quoted(value)

    assert strings.count('"') == 4
    assert "".join(strings.split('" "')).strip('"') == value


_TOKEN = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";="), min_size=1
)


@given(
    issuer=st.from_regex(r"[a-z][a-z0-9-]{0,20}\.[a-z]{2,6}", fullmatch=True),
    account=_TOKEN,
    wildcard=st.booleans(),
    seconds=st.one_of(st.none(), st.integers(0, 2**33)),
)
def test_every_value_written_parses_back_to_what_was_written(issuer, account, wildcard, seconds):
    until = datetime.fromtimestamp(seconds, UTC) if seconds is not None else None

    value = parse_value(format_value(issuer, account, wildcard, until))

    assert (value.issuer_domain, value.account_uri) == (issuer, account)
    assert value.policy == ("wildcard" if wildcard else None)
    assert value.persist_until == until


@given(st.text())
def test_any_text_is_parsed_or_refused_as_malformed_never_crashing(text):
    with contextlib.suppress(MalformedValue):
        parse_value(text)


@given(st.lists(st.text(max_size=80), max_size=5))
def test_any_values_get_a_verdict(values):
    verdict = judge(values, WILDCARD, NOW + timedelta(days=1))

    assert verdict.ok == (verdict.condition is Condition.OK)


def _authorization(challenge: dict, wildcard: bool = False):
    from acme import messages

    body = {
        "identifier": {"type": "dns", "value": "example.com"},
        "status": "pending",
        "challenges": [
            {"type": "dns-01", "url": "https://ca/chall/1", "token": "A" * 43, "status": "pending"},
            {"url": "https://ca/chall/2", "status": "pending", **challenge},
        ],
        "wildcard": wildcard,
    }
    return messages.AuthorizationResource(
        body=messages.Authorization.from_json(body), uri="https://ca/authz/1"
    )


def test_the_challenge_the_acme_library_does_not_know_is_read_from_its_json():
    from cloud.acme.persist import challenge_of

    found = challenge_of(
        _authorization(
            {"type": "dns-persist-01", "issuer-domain-names": ["ca.example", "ca.example.net"]},
            wildcard=True,
        )
    )
    bare = challenge_of(_authorization({"type": "dns-persist-01"}))
    none = challenge_of(_authorization({"type": "dns-account-01", "token": "t"}))

    assert (found.identifier, found.wildcard, found.url) == (
        "example.com",
        True,
        "https://ca/chall/2",
    )
    assert found.issuer_domain_names == ("ca.example", "ca.example.net")
    assert bare.issuer_domain_names == ()  # then the directory's caaIdentities are used
    assert none is None


def test_the_answer_is_an_empty_json_object_not_a_post_as_get():
    from cloud.acme.persist import _EmptyObject

    answer = _EmptyObject()

    assert bool(answer)  # the library sends an empty body, POST-as-GET, for a falsy message
    assert answer.json_dumps() == "{}"
