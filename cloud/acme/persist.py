"""dns-persist-01 on the ACME side: the challenge read from an authorization, the record checked
before the CA is asked, the empty-object answer, and a CA that does not offer the challenge.

certbot's `acme` library does not know the type: it keeps such a challenge as an
`UnrecognizedChallenge` holding the JSON, from which its URL and `issuer-domain-names` are read
here. The answer is RFC 8555 §7.5.1's POST of `{}`, through the client's signed, retried POST.
When an authorization offers no dns-persist-01, every pending authorization of the order is
deactivated (RFC 8555 §7.5.2) and `ChallengeNotOffered` names the CA's directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from acme import challenges, messages

from cloud.acme.challenge_types import ChallengeType
from cloud.acme.client import AcmeClient
from cloud.acme.order import Steps
from cloud.dns01.persist.check import RecordCheck, check_record
from cloud.dns01.persist.record import Expectation
from cloud.dns01.propagation import DnsCheckSettings
from cloud.errors import AcmeError, ChallengeNotOffered

log = logging.getLogger(__name__)

TYPE = ChallengeType.DNS_PERSIST_01.value


@dataclass(frozen=True)
class PersistChallenge:
    """The dns-persist-01 challenge of one pending authorization."""

    identifier: str  # "example.test": a wildcard's authorization names its apex...
    wildcard: bool  # ...and says it is for the wildcard
    url: str
    issuer_domain_names: tuple[str, ...]  # the CA's, one of which the record must name


class _EmptyObject(challenges.ChallengeResponse):
    """The answer: `{}`. The library signs an empty body for a falsy message (POST-as-GET, which
    starts nothing), and a message without fields is falsy, hence `__bool__`."""

    typ = TYPE

    def __bool__(self) -> bool:
        return True


def persist_challenges(acme: AcmeClient, order: messages.OrderResource) -> list[PersistChallenge]:
    """The dns-persist-01 challenge of each authorization still pending; valid ones (reused by
    the CA) need nothing. Raises ChallengeNotOffered after deactivating the pending
    authorizations when one of them offers none."""
    found, lacking = [], []
    pending = [a for a in order.authorizations if a.body.status != messages.STATUS_VALID]
    for authzr in pending:
        identifier = authzr.body.identifier.value
        challenge = challenge_of(authzr)
        if challenge is None:
            lacking.append(f"*.{identifier}" if authzr.body.wildcard else identifier)
        else:
            found.append(challenge)
    if lacking:
        _deactivate(acme, pending)
        raise ChallengeNotOffered(TYPE, acme.ca.directory, tuple(lacking))
    return found


def answer(acme: AcmeClient, challenge: PersistChallenge) -> None:
    acme.post("answer challenge", challenge.url, _EmptyObject())


class PersistAuthorizer:
    """dns-persist-01: the record is checked read-only at every authoritative nameserver, then
    each challenge answered; nothing is written, journalled or removed. `on_check` is told what
    each check saw (for the site state), also when the record does not authorize us."""

    def __init__(
        self,
        settings: DnsCheckSettings,
        *,
        on_check: Callable[[tuple[RecordCheck, ...], str], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.settings = settings
        self.on_check = on_check
        self.now = now

    def prepare(self) -> None:
        """Nothing to tidy: no run of a dns-persist-01 site ever wrote anything."""

    def authorize(
        self, acme: AcmeClient, order: messages.OrderResource, deadline: float, steps: Steps
    ) -> messages.OrderResource:
        pending = persist_challenges(acme, order)
        if pending:
            with steps.step("dns-persist-01 record(s) served by every authoritative nameserver"):
                self._check(acme, pending)
            with steps.step("challenges answered"):
                for challenge in pending:
                    answer(acme, challenge)
        with steps.step("authorizations valid"):
            return acme.wait_for_authorizations(order, deadline)

    def _check(self, acme: AcmeClient, pending: list[PersistChallenge]) -> None:
        """Raises the first record's problem; the CA is asked nothing before all pass."""
        groups: dict[tuple[str, tuple[str, ...]], bool] = {}
        for challenge in pending:
            # The CA's own list for this challenge; its directory's when it gave none.
            issuers = challenge.issuer_domain_names or acme.caa_identities
            key = (challenge.identifier, issuers)
            groups[key] = groups.get(key, False) or challenge.wildcard
        now = self.now()
        checks = tuple(
            check_record(
                domain, Expectation(issuers, acme.account_uri, wildcard), self.settings, now
            )
            for (domain, issuers), wildcard in groups.items()
        )
        if self.on_check is not None:
            self.on_check(checks, acme.account_uri)
        for check in checks:
            error = check.error()
            if error is not None:
                raise error


def challenge_of(authzr: messages.AuthorizationResource) -> PersistChallenge | None:
    """The authorization's dns-persist-01 challenge, from the JSON the library kept; None when
    it offers none."""
    for challb in authzr.body.challenges:
        raw = (
            challb.chall.jobj if isinstance(challb.chall, challenges.UnrecognizedChallenge) else {}
        )
        if raw.get("type") != TYPE:
            continue
        names = raw.get("issuer-domain-names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AcmeError(
                "malformed", f"{TYPE} challenge with bad issuer-domain-names: {names!r}"
            )
        return PersistChallenge(
            identifier=authzr.body.identifier.value,
            wildcard=bool(authzr.body.wildcard),
            url=challb.uri,
            issuer_domain_names=tuple(names),
        )
    return None


def _deactivate(acme: AcmeClient, pending: list[messages.AuthorizationResource]) -> None:
    """Deactivates each pending authorization (RFC 8555 §7.5.2), so none lingers at the CA."""
    for authzr in pending:
        try:
            acme.post(
                "deactivate authorization",
                authzr.uri,
                messages.UpdateAuthorization(status=messages.STATUS_DEACTIVATED),
            )
        except AcmeError as exc:
            # The refusal that follows matters more; the authorization expires on its own.
            log.warning("could not deactivate %s: %s", authzr.uri, exc)
