# Over 300 lines: the whole issuing-side error tree in one place, as its docstring draws it.
"""Errors of the issuing side. Each carries data, not only text, says whether it is transient,
and has a stable `code` to branch on.

CertdropError                      transient: retry later; otherwise record, alert, stop
├── ConfigError                    .problems: every ConfigProblem found, reported together
├── SecretError                    .ref: the reference that could not be read (never the value)
│   └── SecretUnavailable          the secret store (Secrets Manager) could not be reached
├── StoreError                     .key
│   ├── PreconditionFailed         a conditional write lost the race
│   ├── StoreRefused               .backend_code; retrying cannot help (bad key, no bucket, denied)
│   ├── ObjectTooLarge             .size, .limit: larger than a bounded read allows
│   └── NoConditionalWrites        .store, .accepted: a store that ignores conditional writes
├── DnsError                       .fqdn
│   ├── DnsProviderError           .provider; the DNS API refused or was unreachable
│   ├── ZoneNotFoundError          no SOA found walking up from .fqdn
│   ├── CnameChainError            a CNAME loop or a chain longer than allowed
│   ├── PropagationTimeout         .missing: the nameservers that never served .value
│   └── PersistRecordInvalid       .nameserver, .found, .expected: a dns-persist-01 record that
│       │                          does not authorize this issuer (malformed)
│       ├── PersistRecordMissing   no value for the CA's issuer domain
│       ├── PersistRecordMismatch  .field: another account (accounturi), no policy=wildcard
│       └── PersistRecordExpired   .persist_until: passed
├── JournalInvalid                 .site, .key, .cause: a challenge journal certdrop never wrote
│                                  (not JSON, wrong types, too large): set aside, nothing removed
├── AcmeError                      .problem (ACME problem short name), .identifier, .retry_after,
│   │                              .location (the URL a conflict points at)
│   ├── DirectoryUnavailable       .directory, .setting: no ACME directory at the configured URL
│   ├── RateLimited
│   ├── ChallengeNotOffered        .challenge, .directory, .identifiers: the CA offers no such
│   │                              challenge for the order's identifiers
│   ├── AlreadyReplaced            the certificate a renewal `replaces` already has a replacement
│   ├── ProfileUnknown             .profile, .offered: a profile the CA's directory does not list
│   └── ValidationFailed           .failures: (identifier, problem, detail) per failed challenge
├── AccountKeyError                .key: the ACME account key ("aws-kms:ARN") cannot sign: no such
│   │                              KMS key, no permission, disabled, or not an ECC_NIST_P256 key
│   ├── AccountKeyUnavailable      KMS could not be reached, throttled or failed: retry later
│   └── AccountKeyMismatch         .account_has: the account's key is not ca.account_key
├── IssuanceError                  the issued certificate does not match what was ordered
├── AlertDeliveryFailed            .channel, .target (never a secret), .status: alerts not taken
├── Locked                         .site, .owner, .expires_at, .dead: another run holds the lock
├── WaitingForLimits               .site, .go_at, .held_by: no token for the order in the CA's
│                                  limits as certdrop spent them; nothing was ordered
├── LockChanged                    .site: the lock to break changed hands meanwhile
├── KeyExists                      .name: a private key is never replaced
├── IssuerNotInitialized           .missing: `certdrop init` was not run
├── IssuerKeyInvalid               .name: an issuer key that does not load
├── RotationsInvalid               the store's key rotation chain is broken, or does not end at
│                                  the issuer's signing key
├── AgentConflict                  .agent_id: registered already, with other keys
├── UnknownAgent                   .agent_id: not registered
├── InviteError                    .agent_id: `agent approve` cannot approve this agent
│   ├── InviteUnknown              no invitation (never made, or used already)
│   ├── InviteExpired              the invitation's expiry passed (the issuer's clock)
│   ├── EnrollmentMissing          the NAS has not joined yet (no enrollment in its prefix)
│   └── EnrollmentRefused          .reason: an enrollment the invitation did not authenticate
├── RecordUnsigned                 .agent_id: a registry record the issuer never signed
├── RecordTampered                 .agent_id, .cause: a registry record whose signature fails
├── EscrowUnavailable              .site: the escrow copy cannot be re-sealed for a new agent
│   └── EscrowForged               .cause: no statement by a key the issuer holds vouches for
│       │                          the copy as the record names it: never delivered
│       └── EscrowUnsigned         no statement at all (a copy from before statements)
└── VersionsExhausted              .site, .version: past the highest version an index carries

Codes are "<area>.<condition>", lower case with underscores ("store.refused",
"acme.rate_limited"), one per class and never reused, so they can be stored and compared across
versions; they share one namespace with the agent's codes (`nas_agent.errors`), which is why
those of the agent's configuration are "agent_config.*". A code names the class, not the
instance: what the CA or the store itself said stays in `.problem` and `.backend_code`. Never
branch on message text or class names where an error leaves the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nas_agent import store_layout
from nas_agent.errors import list_problems


class CertdropError(Exception):
    """Base of every error certdrop raises on purpose."""

    code = "certdrop.error"
    transient = False


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"{self.key}: {self.cause} — {self.fix}"


class ConfigError(CertdropError):
    code = "config.invalid"

    def __init__(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...], source: str = ""):
        self.problems = tuple(problems)
        self.source = source
        super().__init__(list_problems(self.problems, source))


class SecretError(CertdropError):
    code = "secret.unreadable"

    def __init__(self, ref: str, cause: str):
        self.ref = ref
        super().__init__(f"secret {ref}: {cause}")


class SecretUnavailable(SecretError):
    """Where the secret lives could not be reached (a connection, a timeout, throttling, a 5xx):
    nothing is wrong with the configuration, and a later run may read it."""

    code = "secret.unavailable"
    transient = True


class StoreError(CertdropError):
    code = "store.failed"
    transient = True

    def __init__(self, key: str, cause: str):
        self.key = key
        super().__init__(f"object store, {key}: {cause}")


class PreconditionFailed(StoreError):
    code = "store.precondition_failed"
    transient = False


class StoreRefused(StoreError):
    """Retrying cannot help: an invalid key, a missing bucket, access denied, a path conflict.
    `backend_code` is the store's own name for it (S3's "NoSuchBucket", "InvalidKey", ...)."""

    code = "store.refused"
    transient = False

    def __init__(self, key: str, cause: str, *, backend_code: str):
        self.backend_code = backend_code
        super().__init__(key, cause)


class ObjectTooLarge(StoreError):
    """A bounded read (`Store.get(..., max_bytes=)`) found more than `limit` bytes; at most
    `limit` + 1 of them were read. `size` is the object's size when the store said it (S3's
    Content-Length, the file's size), else None. Retrying cannot help."""

    code = "store.object_too_large"
    transient = False

    def __init__(self, key: str, limit: int, size: int | None = None):
        self.limit = limit
        self.size = size
        found = f"{size} bytes, more" if size is not None else "more"
        super().__init__(key, f"{found} than the {limit} bytes a bounded read allows")


class NoConditionalWrites(StoreError):
    """The store accepted writes it must refuse: `accepted` names each ("If-None-Match: *" over
    an existing object, "If-Match" naming a wrong ETag). Locks and version reservations rely on
    them, so no run uses such a store. `store` names it by URL and endpoint, never a credential;
    `key` is the probe object that was written."""

    code = "store.no_conditional_writes"
    transient = False

    def __init__(self, key: str, store: str, accepted: tuple[str, ...]):
        self.key = key
        self.store = store
        self.accepted = accepted
        CertdropError.__init__(
            self,
            f"the object store {store} ignores conditional writes: it accepted a write with "
            f"{' and a write with '.join(accepted)}, where it must answer 412 Precondition "
            "Failed. No run uses this store: locks and version reservations rely on those "
            "refusals. AWS S3 has them since 2024; upgrade an S3-compatible server to a version "
            "that has them, or use another store (`certdrop doctor` probes it again)",
        )


class DnsError(CertdropError):
    code = "dns.failed"

    def __init__(self, fqdn: str, cause: str, *, transient: bool = False):
        self.fqdn = fqdn
        self.transient = transient
        super().__init__(f"DNS {fqdn}: {cause}")


class DnsProviderError(DnsError):
    code = "dns.provider_failed"

    def __init__(self, provider: str, fqdn: str, cause: str, *, transient: bool = False):
        self.provider = provider
        super().__init__(fqdn, f"{provider}: {cause}", transient=transient)


class ZoneNotFoundError(DnsError):
    code = "dns.zone_not_found"


class CnameChainError(DnsError):
    code = "dns.cname_chain_invalid"


class PropagationTimeout(DnsError):
    code = "dns.propagation_timeout"

    def __init__(self, fqdn: str, value: str, missing: tuple[str, ...], waited: float):
        self.value = value
        self.missing = missing
        self.waited = waited
        servers = ", ".join(missing)
        super().__init__(
            fqdn,
            f"TXT value not served after {waited:.1f}s by {len(missing)} "
            f"authoritative server(s): {servers}",
            transient=True,
        )


class PersistRecordInvalid(DnsError):
    """A dns-persist-01 record, read at one authoritative nameserver, that would not authorize
    this issuer: `found` is every TXT value there, `expected` what would. This class is a value
    for the CA's issuer domain that does not parse; the subclasses name the other conditions.
    Terminal: only the domain's owner can change the record."""

    code = "dns.persist_record_invalid"

    def __init__(
        self,
        fqdn: str,
        nameserver: str,
        found: tuple[str, ...],
        expected: str,
        problem: str,
        *,
        field: str | None = None,
        persist_until: datetime | None = None,
    ):
        self.nameserver = nameserver
        self.found = found
        self.expected = expected
        self.field = field  # PersistRecordMismatch: "accounturi" or "policy"
        self.persist_until = persist_until  # PersistRecordExpired: when the record ran out
        shown = "; ".join(f'"{value}"' for value in found) or "no TXT value"
        super().__init__(
            fqdn,
            f"dns-persist-01 record at {nameserver}: {problem}. Found: {shown}. "
            f'Expected: "{expected}"',
        )


class PersistRecordMissing(PersistRecordInvalid):
    code = "dns.persist_record_missing"


class PersistRecordMismatch(PersistRecordInvalid):
    """`field` is "accounturi" (the record names another ACME account: a new account
    invalidates every record) or "policy" (a wildcard needs policy=wildcard)."""

    code = "dns.persist_record_mismatch"


class PersistRecordExpired(PersistRecordInvalid):
    """`persist_until` has passed."""

    code = "dns.persist_record_expired"


class JournalInvalid(CertdropError):
    """A challenge journal (`state/challenges/<site>.json`, unsigned store content) that is not
    one certdrop writes: not JSON, wrong types, or larger than any run writes. Nothing it lists
    is removed from DNS; it is set aside (`cloud.dns01.solver.ChallengeJournal`) so it blocks no
    later run. Terminal."""

    code = "dns.journal_invalid"

    def __init__(self, site: str, key: str, cause: str):
        self.site = site
        self.key = key
        self.cause = cause
        super().__init__(f"challenge journal {key}: {cause}; set aside, nothing in it removed")


class AcmeError(CertdropError):
    """`problem` is the CA's problem type without its URN prefix ("badNonce", "caa"), or one of
    certdrop's own for what never reached a problem document ("connection", "timeout")."""

    code = "acme.failed"

    def __init__(
        self,
        problem: str,
        detail: str,
        *,
        identifier: str | None = None,
        retry_after: datetime | None = None,
        location: str | None = None,
        transient: bool = False,
    ):
        self.problem = problem
        self.detail = detail
        self.identifier = identifier
        self.retry_after = retry_after
        self.location = location
        self.transient = transient
        where = f" ({identifier})" if identifier else ""
        at = f" at {location}" if location else ""
        until = f", retry after {retry_after.isoformat()}" if retry_after else ""
        super().__init__(f"ACME {problem}{where}: {detail}{at}{until}")


class RateLimited(AcmeError):
    code = "acme.rate_limited"


class OrderGone(AcmeError):
    """An interrupted run's order that was to be finished is gone at the CA (expired, invalid,
    or issued for a key nobody kept), and the site is not due: nothing new is ordered."""

    code = "acme.order_gone"

    def __init__(self, order_url: str):
        self.order_url = order_url
        super().__init__(
            "orderGone", f"the interrupted order {order_url} can no longer be finished"
        )


class AlreadyReplaced(AcmeError):
    """The CA refused a renewal order: the certificate it `replaces` already has a replacement
    order (RFC 9773 §5, problem "alreadyReplaced")."""

    code = "acme.already_replaced"


class DirectoryUnavailable(AcmeError):
    """No ACME directory could be read at `directory`, the URL the configuration key `setting`
    gives ("ca.directory", or "ca.staging_directory" for a dry run): the first request of every
    run, so a wrong URL ends here. Transient when the CA could not be reached."""

    code = "acme.directory_unavailable"

    def __init__(self, directory: str, setting: str, cause: str, fix: str, *, transient: bool):
        self.directory = directory
        self.setting = setting
        super().__init__(
            "directory", f"{directory} ({setting}) {cause} — {fix}", transient=transient
        )


class ProfileUnknown(AcmeError):
    """A site asks for an ACME profile the CA does not offer: refused before any order.
    `offered` is what the CA's directory lists (`meta.profiles`), empty when it lists none."""

    code = "acme.profile_unknown"

    def __init__(self, profile: str, offered: tuple[str, ...], directory: str):
        self.profile = profile
        self.offered = offered
        if offered:
            detail = (
                f"the CA at {directory} offers no profile {profile!r}; its directory lists "
                f"{', '.join(offered)}: set the site's profile to one of them, or remove it"
            )
        else:
            detail = (
                f"the CA at {directory} lists no profiles in its directory, so it cannot issue "
                f"the profile {profile!r}: remove the site's profile"
            )
        super().__init__("invalidProfile", detail)


class ChallengeNotOffered(AcmeError):
    """The CA offers no `challenge` for some of an order's identifiers: the order's pending
    authorizations were deactivated, and scheduled runs do not order the site again until its
    configuration or the CA's directory changes (`certdrop issue` still does when told to)."""

    code = "acme.challenge_not_offered"

    def __init__(self, challenge: str, directory: str, identifiers: tuple[str, ...]):
        self.challenge = challenge
        self.directory = directory
        self.identifiers = identifiers
        super().__init__(
            "unsupportedChallenge",
            f"the CA at {directory} offers no {challenge} challenge for "
            f"{', '.join(identifiers)}; the order's authorizations were deactivated, and "
            "runs leave the site alone until its configuration or ca.directory changes",
            identifier=identifiers[0] if identifiers else None,
        )


class ValidationFailed(AcmeError):
    code = "acme.validation_failed"

    def __init__(self, failures: tuple[tuple[str, str, str], ...]):
        self.failures = failures
        detail = "; ".join(f"{ident}: {problem}: {text}" for ident, problem, text in failures)
        super().__init__("validation", detail, identifier=failures[0][0] if failures else None)


class AccountKeyError(CertdropError):
    """The ACME account's key cannot sign. `key` is its reference as `ca.account_key` writes it
    ("aws-kms:ARN", "file"); `cause` says what KMS answered, never a secret."""

    code = "account_key.unusable"

    def __init__(self, key: str, cause: str):
        self.key = key
        self.cause = cause
        super().__init__(f"ACME account key {key}: {cause}")


class AccountKeyUnavailable(AccountKeyError):
    """KMS could not be reached, throttled the request or failed: no request to the CA can be
    signed until it answers again."""

    code = "account_key.unavailable"
    transient = True


class AccountKeyMismatch(AccountKeyError):
    """The CA binds the account to another key than `ca.account_key` names: a rollover was not
    made, or the configuration was not updated after one. `account_has` is the key in use."""

    code = "account_key.mismatch"

    def __init__(self, key: str, account_has: str, account_uri: str):
        self.account_has = account_has
        self.account_uri = account_uri
        super().__init__(
            key,
            f"the configuration names it (ca.account_key), but the account {account_uri} signs "
            f"with {account_has}: move the account with `certdrop account rollover --to {key}`, "
            f'or set ca.account_key = "{account_has}"',
        )


class IssuanceError(CertdropError):
    code = "issuance.certificate_invalid"


class KeptKeyMismatch(IssuanceError):
    """The key kept beside an interrupted, finalized order is not the key its certificate was
    issued for: the state was altered or damaged. That certificate is of no use; the order is
    dropped, and the next run orders anew."""

    code = "issuance.kept_key_mismatch"

    def __init__(self, site: str, order_url: str):
        self.order_url = order_url
        super().__init__(
            f"site {site}: the key kept for order {order_url} is not its certificate's; the order"
            " is dropped and the next run orders anew"
        )


class AlertDeliveryFailed(CertdropError):
    """A channel did not take the alerts; they stay unsent and go out at the next evaluation.
    `target` names the receiver without anything secret (a webhook's scheme, host and port)."""

    code = "alerts.delivery_failed"
    transient = True

    def __init__(self, channel: str, target: str, cause: str, *, status: int | None = None):
        self.channel = channel
        self.target = target
        self.status = status
        super().__init__(f"alerts not delivered by {channel} to {target}: {cause}")


class Locked(CertdropError):
    """Another run holds the site's lock."""

    code = "lock.held"
    transient = True

    def __init__(self, site: str, owner: str, expires_at: datetime, *, dead: bool = False):
        self.site = site
        self.owner = owner
        self.expires_at = expires_at
        self.dead = dead
        until = f"{expires_at:%Y-%m-%d %H:%M:%S} UTC"
        if dead:
            message = (
                f"site {site} is locked by {owner}, which is no longer running; the lock expires "
                f"at {until}, or break it now with `certdrop unlock {site}`"
            )
        else:
            message = f"site {site} is being worked on by {owner} until {until}"
        super().__init__(message)


class WaitingForLimits(CertdropError):
    """A site's order would exceed the CA's rate limits (`cloud.limiter`): it is placed at the
    first run from `go_at` on. Not a failure: no backoff, nothing asked of the CA."""

    code = "limits.waiting"
    transient = True

    def __init__(self, site: str, go_at: datetime, held_by: tuple[str, ...]):
        self.site = site
        self.go_at = go_at
        self.held_by = held_by
        super().__init__(
            f"site {site} waits for the CA's limits ({', '.join(held_by)}): it is ordered from "
            f"{go_at:%Y-%m-%d %H:%M:%S} UTC on"
        )


class LockChanged(CertdropError):
    """The lock an operator was about to break was released or taken by another run since."""

    code = "lock.changed"

    def __init__(self, site: str):
        self.site = site
        super().__init__(f"the lock of site {site} changed hands meanwhile; nothing was broken")


class KeyExists(CertdropError):
    code = "keys.exists"

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"key {name} already exists; refusing to overwrite it")


class IssuerNotInitialized(CertdropError):
    code = "issuer.not_initialized"

    def __init__(self, missing: str):
        self.missing = missing
        super().__init__(f"the issuer has no {missing}: run `certdrop init` first")


class IssuerKeyInvalid(CertdropError):
    code = "issuer.key_invalid"

    def __init__(self, name: str, cause: str):
        self.name = name
        super().__init__(f"issuer key {name}: {cause}")


class RotationsInvalid(CertdropError):
    """The chain of issuer key rotations in the store does not verify, or leads to a key the
    issuer does not hold: it was altered, or the key store was restored from an older copy.
    Nothing is signed until it is fixed."""

    code = "issuer.rotations_invalid"

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"issuer key rotations ({store_layout.ISSUER_ROTATIONS}): {reason}")


class AgentConflict(CertdropError):
    code = "registry.agent_conflict"

    def __init__(self, agent_id: str):
        self.agent_id = agent_id
        super().__init__(
            f"agent {agent_id} is already registered with other keys; if it was re-enrolled, "
            f"run `certdrop agent remove {agent_id}` first"
        )


class UnknownAgent(CertdropError):
    code = "registry.unknown_agent"

    def __init__(self, agent_id: str):
        self.agent_id = agent_id
        super().__init__(f"no agent {agent_id} is registered (see `certdrop agent list`)")


class InviteError(CertdropError):
    code = "invite.failed"

    def __init__(self, agent_id: str, message: str):
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id}: {message}")


class InviteUnknown(InviteError):
    code = "invite.unknown"

    def __init__(self, agent_id: str):
        super().__init__(
            agent_id,
            "no open invitation (never made, or used by an approval already): "
            f"`certdrop agent invite {agent_id} --site ...` makes one",
        )


class InviteExpired(InviteError):
    code = "invite.expired"

    def __init__(self, agent_id: str, expires_at: datetime):
        self.expires_at = expires_at
        super().__init__(
            agent_id,
            f"the invitation expired at {expires_at:%Y-%m-%d %H:%M} UTC: invite it again and join"
            " with the new line",
        )


class EnrollmentMissing(InviteError):
    code = "invite.enrollment_missing"

    def __init__(self, agent_id: str):
        super().__init__(
            agent_id,
            "has not joined yet (no enrollment in its prefix): run `certdrop-agent join LINE` on"
            " the NAS first, or pass what it printed with --enrollment",
        )


class EnrollmentRefused(InviteError):
    code = "invite.enrollment_refused"

    def __init__(self, agent_id: str, reason: str):
        self.reason = reason
        super().__init__(agent_id, f"enrollment refused: {reason}")


class RecordUnsigned(CertdropError):
    """A registry record without the issuer's signature (written by hand, or before records
    were signed): nothing is sealed to its keys."""

    code = "registry.record_unsigned"

    def __init__(self, agent_id: str):
        self.agent_id = agent_id
        super().__init__(
            f"the registry record of agent {agent_id} is not signed by the issuer; nothing is "
            f"sealed to it until `certdrop agent add` (or `certdrop agent resign {agent_id}`) "
            "signs it"
        )


class RecordTampered(CertdropError):
    """A registry record whose issuer signature does not verify: changed after signing, or
    signed by another key. Nothing is sealed to its keys."""

    code = "registry.record_tampered"

    def __init__(self, agent_id: str, cause: str):
        self.agent_id = agent_id
        self.cause = cause
        super().__init__(
            f"the registry record of agent {agent_id} fails its issuer signature ({cause}); "
            "nothing is sealed to it: check who writes state/agents/, then re-add the agent "
            "with the token its NAS printed"
        )


class EscrowUnavailable(CertdropError):
    code = "escrow.unavailable"

    def __init__(self, site: str, cause: str):
        self.site = site
        super().__init__(f"site {site}: cannot re-seal from escrow: {cause}")


class EscrowForged(EscrowUnavailable):
    """An escrow copy the issuer cannot tell it wrote: its statement is malformed, signed by a
    key the issuer does not hold (another, or one retired after a compromise), or names
    another site, version, certificate or content. Sealing to escrow needs only a public key,
    so such a copy is nothing the issuer delivers, ever."""

    code = "escrow.forged"

    def __init__(self, site: str, cause: str):
        self.cause = cause
        super().__init__(
            site,
            f"{cause}; the copy is not the issuer's and is never delivered: check who writes the"
            f" store, then issue the site again (`certdrop issue {site}`)",
        )


class EscrowUnsigned(EscrowForged):
    """An escrow copy with no statement beside it: written before copies were signed, or by
    someone else (docs/bundle-format.md §12)."""

    code = "escrow.unsigned"

    def __init__(self, site: str, version: int):
        self.version = version
        self.cause = f"no issuer statement vouches for escrow copy version {version}"
        # Not EscrowForged's message: on a store from before statements this is no attack.
        EscrowUnavailable.__init__(
            self,
            site,
            f"{self.cause}: written before escrow copies were signed (issue the site again:"
            f" `certdrop issue {site}`), or by someone else",
        )


class VersionsExhausted(CertdropError):
    """The site's next version would be past MAX_VERSION (2**53-1), the highest an index
    carries: only reachable from a version the issuer signed before it bounded versions by its
    own statements (docs/threat-model.md, "Fast-forward"). Raised before anything is ordered, so
    no certificate is issued only to be thrown away."""

    code = "version.exhausted"

    def __init__(self, site: str, version: int, highest: int):
        self.site = site
        self.version = version
        super().__init__(
            f"site {site}: version {version} is past {highest}, the highest"
            " an index carries; nothing is ordered: agents accept a lower version only after"
            " `certdrop issuer rotate --compromised`"
        )
