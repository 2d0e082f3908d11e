"""The dns-persist-01 record's value, and whether a name's values authorize this issuer.

    _validation-persist.example.com. IN TXT ("letsencrypt.org;"
        " accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123;"
        " policy=wildcard; persistUntil=1798761600")

A value is an RFC 8659 issue-value: the CA's issuer domain, then `tag=value` parameters
separated by ";" (tags case-insensitive, values without spaces). A CA reads only the values
whose issuer domain is one of the challenge's `issuer-domain-names`; one of them must name the
ACME account (`accounturi`, which a key rollover keeps and a new account changes), allow
wildcards when a wildcard is ordered (`policy=wildcard`; the apex and its wildcard share the
record), and not be past its `persistUntil` (unix seconds). The rules follow Pebble 2.10.1's
validator, so a value accepted here is one the CA accepts. Pure functions over strings.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

WILDCARD_POLICY = "wildcard"


class MalformedValue(ValueError):
    """A value for the CA's issuer domain that does not parse (the CA rejects it as malformed)."""


@dataclass(frozen=True)
class PersistValue:
    issuer_domain: str
    account_uri: str | None = None
    policy: str | None = None  # "wildcard", or None (another policy counts as none)
    persist_until: datetime | None = None


@dataclass(frozen=True)
class Expectation:
    """What authorizes this issuer at one name."""

    issuer_domains: tuple[str, ...]  # the CA's; the first is the one to write
    account_uri: str
    wildcard: bool  # a wildcard of the name is ordered: policy=wildcard is needed

    def value(self, persist_until: datetime | None = None) -> str:
        issuer = self.issuer_domains[0] if self.issuer_domains else "<the CA's issuer domain>"
        return format_value(issuer, self.account_uri, self.wildcard, persist_until)


class Condition(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # no value for the CA's issuer domain
    MALFORMED = "malformed"
    ACCOUNT = "accounturi"  # names another account, or none
    POLICY = "policy"  # a wildcard is ordered, the value has no policy=wildcard
    EXPIRED = "expired"  # persistUntil has passed


@dataclass(frozen=True)
class Verdict:
    condition: Condition
    detail: str  # for people: what is wrong, naming what was found
    value: PersistValue | None = None  # the value that authorizes, or the first that failed

    @property
    def ok(self) -> bool:
        return self.condition is Condition.OK


def format_value(
    issuer_domain: str, account_uri: str, wildcard: bool, persist_until: datetime | None = None
) -> str:
    parts = [issuer_domain, f"accounturi={account_uri}"]
    if wildcard:
        parts.append(f"policy={WILDCARD_POLICY}")
    if persist_until is not None:
        parts.append(f"persistUntil={int(persist_until.timestamp())}")
    return "; ".join(parts)


def issuer_of(text: str) -> str:
    """The issuer domain a value is for (before the first ";", blanks trimmed)."""
    return text.split(";", 1)[0].strip(" \t")


def parse_value(text: str) -> PersistValue:
    """Raises MalformedValue naming what does not parse."""
    issuer, *params = text.split(";")
    issuer = issuer.strip(" \t")
    if not issuer:
        raise MalformedValue("no issuer domain before the first ';'")
    tags: dict[str, str] = {}
    for raw in params:
        param = raw.strip(" \t")
        if not param:
            raise MalformedValue("an empty parameter or a trailing ';'")
        tag, sep, value = param.partition("=")
        tag, value = tag.strip(" \t"), value.strip(" \t")
        if not sep or not tag:
            raise MalformedValue(f"{param!r} is not tag=value")
        if tag.lower() in tags:
            raise MalformedValue(f"the parameter {tag!r} appears twice")
        if not all(0x21 <= ord(c) <= 0x7E and c != ";" for c in value):
            raise MalformedValue(f"the value of {tag!r} holds a space or a non-ASCII character")
        tags[tag.lower()] = value
    account = tags.get("accounturi")
    if account == "":
        raise MalformedValue("accounturi is empty")
    policy = tags.get("policy", "").lower() or None
    until = None
    if "persistuntil" in tags:
        try:
            until = datetime.fromtimestamp(int(tags["persistuntil"]), UTC)
        except (ValueError, OverflowError, OSError):
            raise MalformedValue(
                f"persistUntil {tags['persistuntil']!r} is not a time in unix seconds"
            ) from None
    return PersistValue(issuer, account, policy if policy == WILDCARD_POLICY else None, until)


def judge(values: Iterable[str], expected: Expectation, now: datetime) -> Verdict:
    """Whether one of `values` (all TXT values at the name) authorizes `expected`'s account.

    When none does: MISSING if none is for the CA's issuer domains, MALFORMED if one of those
    does not parse, otherwise the first one's failure (account, then policy, then expiry).
    """
    failures: list[Verdict] = []
    malformed: list[Verdict] = []
    for text in values:
        if issuer_of(text) not in expected.issuer_domains:
            continue
        try:
            value = parse_value(text)
        except MalformedValue as exc:
            malformed.append(Verdict(Condition.MALFORMED, f"{text!r} does not parse: {exc}"))
            continue
        verdict = _judge_one(value, expected, now)
        if verdict.ok:
            return verdict
        failures.append(verdict)
    if malformed:
        return malformed[0]
    if failures:
        return failures[0]
    issuers = " or ".join(expected.issuer_domains) or "(the CA named none)"
    return Verdict(Condition.MISSING, f"no value for the CA's issuer domain {issuers}")


def _judge_one(value: PersistValue, expected: Expectation, now: datetime) -> Verdict:
    if value.account_uri is None:
        return Verdict(Condition.MALFORMED, "the value has no accounturi", value)
    if value.account_uri != expected.account_uri:
        return Verdict(
            Condition.ACCOUNT,
            f"accounturi {value.account_uri} is not this issuer's ACME account "
            f"{expected.account_uri}",
            value,
        )
    if expected.wildcard and value.policy != WILDCARD_POLICY:
        return Verdict(
            Condition.POLICY, "the value has no policy=wildcard, which a wildcard needs", value
        )
    if value.persist_until is not None and value.persist_until < now:
        return Verdict(
            Condition.EXPIRED,
            f"persistUntil {value.persist_until:%Y-%m-%d %H:%M:%S} UTC has passed",
            value,
        )
    return Verdict(Condition.OK, "authorizes this issuer", value)
