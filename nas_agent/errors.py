# Over 300 lines: the whole agent error tree in one place, as its docstring draws it.
"""Errors of the NAS agent. Each carries data, not only text, says whether it is transient, and
has a stable `code` to branch on.

    AgentError                     .transient: retry next run; else record, report, stop
    ├── KeyMaterialError           keys, key files and the one-line key formats
    │   ├── TokenError             .kind, .reason: a line that does not parse or fails its checksum
    │   └── KeyFileError           .path: missing, unreadable, malformed, too open, or present
    ├── BundleError                .agent_id, .site, .version as far as known; .reason
    │   ├── MalformedIndex         index.json is not an index (JSON, fields, sizes)
    │   ├── UnsupportedFormat      .what, .found: a format this agent does not know: upgrade it
    │   ├── SiteNotInIndex         the index holds no entry for .site
    │   ├── UnknownIssuerKey       .key_id: an issuer key other than the pinned .pinned_key_id
    │   ├── BadSignature           the entry's Ed25519 signature does not verify
    │   ├── WrongAgent             .addressee: the entry was signed for another agent
    │   ├── StaleVersion           .installed_version: .version is not newer (replay, up to date)
    │   ├── VersionConflict        the installed version, named with another certificate
    │   ├── OlderThanInstalled     .not_before: older than what DSM holds for the site (rollback)
    │   ├── IndexExpired           .expires_at: the index's signed expiry passed (frozen)
    │   ├── IndexRolledBack        the index was signed before the one last accepted
    │   ├── IndexDowngrade         a v1 index after v2, or past the upgrade's v1 window
    │   ├── RotationInvalid        a key rotation statement does not parse or verify
    │   ├── RotationFork           the rotation chain skips the key this agent follows
    │   ├── SealedHashMismatch     the sealed object is not the one the signed entry names
    │   ├── MalformedSealedObject  bad magic, too short or too large
    │   ├── DecryptionFailed       HPKE open failed: another recipient's object, or tampered bytes
    │   ├── MalformedPlaintext     the opened bytes are not a bundle (JSON, fields, PEM, key type)
    │   ├── ContentMismatch        .field: contents disagree with the signed entry or the leaf
    │   ├── KeyMismatch            the private key is not the certificate's
    │   │   └── KeyMissing         agent custody: the agent holds no key for the certificate
    │   ├── ChainInvalid           the leaf is not signed by the first chain cert, or a link breaks
    │   ├── CertificateNotYetValid .not_before is after .now
    │   ├── CertificateExpired     .not_after is before .now
    │   └── NamesNotCovered        .missing: configured hostnames the certificate does not cover
    ├── StateError                 .path
    │   ├── StateCorrupt           the state file cannot be read: move it aside
    │   └── StateUnwritable        transient: saving failed, the old file is unchanged
    ├── InstallFailed              .site, .restored: import or TLS confirmation failed (transient)
    ├── ServicesNotBound           .site, .services: DSM holds the new certificate, but configured
    │                              services are not on it (DSM lists no such service)
    ├── ConfirmFailed              transient: DSM did not serve the expected leaf in time
    ├── TempAdminError             .reason, .command: dsm.temp_admin cannot work here (not local,
    │                              not root, no tools) or a tool failed
    ├── StatusReportInvalid        .reason: a status.json that does not verify
    ├── KeyRequestError, CsrError  in nas_agent.custody.errors: agent key custody (CSR mode)
    ├── AgentConfigError           in nas_agent.config.errors: configuration, secrets files
    ├── SourceError                in nas_agent.sources.errors: fetching from the source
    └── DsmError                   in nas_agent.dsm.errors: DSM's web API and its logins

Codes are "<area>.<condition>", lower case with underscores ("bundle.signature_invalid",
"dsm.login_failed"), one per class and never reused: the agent's status report carries them and
the cloud's fleet view and alerts branch on them, across agent versions. They share one namespace
with the cloud's codes (`cloud.errors`). Every BundleError code starts with "bundle.", so a
reader tells a refused bundle by that prefix (`is_refusal`), whatever check a newer agent adds.
What DSM or the source itself said stays in `.dsm_code` and `.backend_code`.

Nothing in the BundleError tree is transient: a bundle that fails a check fails it again until
the cloud publishes a new one. Messages never contain key material.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Sequence

UNKNOWN_CODE = "unknown"  # an error whose code cannot be read or named (see legacy_error_kinds)
_REFUSAL_PREFIX = "bundle."


def is_refusal(code: str) -> bool:
    """The code of a refused bundle (a BundleError), from this or any later agent version."""
    return code.startswith(_REFUSAL_PREFIX)


def list_problems(problems: Sequence[object], source: str = "") -> str:
    """Every configuration problem, one a line, under the file's name: the one way both the
    agent (`AgentConfigError`) and the issuer (`cloud.errors.ConfigError`) list them."""
    head = f"{source}: " if source else ""
    noun = "problem" if len(problems) == 1 else "problems"
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{head}{len(problems)} configuration {noun}:\n{lines}"


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    code = "agent.error"
    transient = False


class KeyMaterialError(AgentError):
    code = "key_material.invalid"


class TokenError(KeyMaterialError):
    code = "key_material.token_invalid"

    def __init__(self, kind: str, reason: str):
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


class KeyFileError(KeyMaterialError):
    code = "key_material.file_invalid"

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"key file {path}: {reason}")


class BundleError(AgentError):
    """A bundle or index entry was refused. The message is built from the fields when shown, so
    the opener can add the agent, site and version it knows to an error raised deeper down."""

    code = "bundle.refused"

    def __init__(
        self,
        reason: str,
        *,
        agent_id: str | None = None,
        site: str | None = None,
        version: int | None = None,
    ):
        self.reason = reason
        self.agent_id = agent_id
        self.site = site
        self.version = version
        super().__init__(reason)

    def __str__(self) -> str:
        known = (("agent", self.agent_id), ("site", self.site), ("version", self.version))
        where = [f"{label} {value}" for label, value in known if value is not None]
        return f"bundle ({', '.join(where)}): {self.reason}" if where else f"bundle: {self.reason}"


class MalformedIndex(BundleError):
    code = "bundle.index_malformed"


class UnsupportedFormat(BundleError):
    code = "bundle.format_unsupported"

    def __init__(self, what: str, found: object, **where):
        self.what = what
        self.found = found
        super().__init__(f"{what} has format {found!r}, which this agent does not know", **where)


class SiteNotInIndex(BundleError):
    code = "bundle.site_not_in_index"


class UnknownIssuerKey(BundleError):
    code = "bundle.issuer_key_unknown"

    def __init__(self, key_id: str, pinned_key_id: str, **where):
        self.key_id = key_id
        self.pinned_key_id = pinned_key_id
        super().__init__(
            f"entry is signed by issuer key {key_id}, but this agent pins {pinned_key_id}", **where
        )


class BadSignature(BundleError):
    code = "bundle.signature_invalid"


class WrongAgent(BundleError):
    code = "bundle.wrong_agent"

    def __init__(self, addressee: str, **where):
        self.addressee = addressee
        super().__init__(f"entry is addressed to agent {addressee}", **where)


class VersionConflict(BundleError):
    """The entry names the installed version with another certificate: one version, two
    certificates. The issuer reserves every version so this cannot happen; if it does, it is
    refused and reported, never taken as "up to date"."""

    code = "bundle.version_conflict"

    def __init__(self, version: int, installed_sha256: str, entry_sha256: str, **where):
        self.installed_sha256 = installed_sha256
        self.entry_sha256 = entry_sha256
        super().__init__(
            f"version {version} is installed as certificate {installed_sha256[:16]}…, but the "
            f"index names certificate {entry_sha256[:16]}… for it: refused; report this",
            version=version,
            **where,
        )


class StaleVersion(BundleError):
    code = "bundle.version_stale"

    def __init__(self, version: int, installed_version: int, **where):
        self.installed_version = installed_version
        super().__init__(
            f"version {version} is not newer than the installed version {installed_version}",
            version=version,
            **where,
        )

    @property
    def up_to_date(self) -> bool:
        """The entry is the installed version: nothing new, not a replay."""
        return self.version == self.installed_version


class OlderThanInstalled(BundleError):
    """The certificate is older (earlier notBefore) than the one DSM holds under the site's
    description: a rollback, refused with or without the agent's state (`held_certificate`)."""

    code = "bundle.older_than_installed"

    def __init__(
        self, not_before: datetime, held_not_before: datetime, dsm_certificate_id: str, **where
    ):
        self.not_before = not_before
        self.held_not_before = held_not_before
        self.dsm_certificate_id = dsm_certificate_id
        super().__init__(
            f"certificate valid from {not_before.isoformat()} is older than DSM certificate "
            f"{dsm_certificate_id} (valid from {held_not_before.isoformat()}) it would replace:"
            " refused, an older signed index or bundle was served again",
            **where,
        )


class IndexExpired(BundleError):
    """The index's signed expiry has passed: the issuer stopped re-signing it, or someone serves
    an old copy in its place (TUF's freeze attack). The agent reports itself frozen."""

    code = "bundle.index_expired"

    def __init__(self, expires_at: datetime, now: datetime, **where):
        self.expires_at = expires_at
        super().__init__(
            f"the index expired at {expires_at.isoformat()} (now {now.isoformat()}): the issuer"
            " has not re-signed it, or an old copy is being served; frozen until a fresh one",
            **where,
        )


class IndexRolledBack(BundleError):
    """The index was signed before the one this agent last accepted: an older copy served."""

    code = "bundle.index_rolled_back"

    def __init__(self, issued_at: datetime, accepted: datetime, **where):
        super().__init__(
            f"the index was signed at {issued_at.isoformat()}, before the one accepted at"
            f" {accepted.isoformat()}: an older copy is being served",
            **where,
        )


class IndexDowngrade(BundleError):
    """A v1 index (entries signed one by one, no expiry) after v2 was seen, or past the date the
    upgrade allowed v1 until."""

    code = "bundle.index_downgrade"


class RotationInvalid(BundleError):
    """A key rotation statement does not parse or does not verify."""

    code = "bundle.rotation_invalid"


class RotationFork(BundleError):
    """The chain of key rotations does not lead through the key this agent follows."""

    code = "bundle.rotation_fork"


class SealedHashMismatch(BundleError):
    code = "bundle.sealed_hash_mismatch"


class MalformedSealedObject(BundleError):
    code = "bundle.sealed_object_malformed"


class DecryptionFailed(BundleError):
    code = "bundle.decryption_failed"


class MalformedPlaintext(BundleError):
    code = "bundle.plaintext_malformed"


class ContentMismatch(BundleError):
    code = "bundle.content_mismatch"

    def __init__(self, field: str, reason: str, **where):
        self.field = field
        super().__init__(f"{field}: {reason}", **where)


class KeyMismatch(BundleError):
    code = "bundle.key_mismatch"


class KeyMissing(KeyMismatch):
    """A `certdrop-leaf-v1` certificate whose key is neither the pending key of the CSR it
    answers nor the installed certificate's: the agent never installs it with another key. The
    way out is a new key and CSR, which `certdrop-agent rekey SITE` makes at once."""

    code = "bundle.key_missing"

    def __init__(self, site: str, csr_sequence: int, **where):
        self.csr_sequence = csr_sequence
        super().__init__(
            f"the certificate answers CSR {csr_sequence}, whose key this agent does not hold"
            f" (lost, or replaced by a newer CSR): run `certdrop-agent rekey {site}`",
            site=site,
            **where,
        )


class ChainInvalid(BundleError):
    code = "bundle.chain_invalid"


class CertificateNotYetValid(BundleError):
    code = "bundle.certificate_not_yet_valid"

    def __init__(self, not_before: datetime, now: datetime, **where):
        self.not_before = not_before
        self.now = now
        super().__init__(
            f"certificate is valid from {not_before.isoformat()}, now is {now.isoformat()}", **where
        )


class CertificateExpired(BundleError):
    code = "bundle.certificate_expired"

    def __init__(self, not_after: datetime, now: datetime, **where):
        self.not_after = not_after
        self.now = now
        super().__init__(
            f"certificate expired at {not_after.isoformat()}, now is {now.isoformat()}", **where
        )


class NamesNotCovered(BundleError):
    code = "bundle.names_not_covered"

    def __init__(self, missing: tuple[str, ...], names: tuple[str, ...], **where):
        self.missing = missing
        self.names = names
        super().__init__(
            f"certificate names {', '.join(names) or '(none)'} do not cover {', '.join(missing)}",
            **where,
        )


class StateError(AgentError):
    code = "state.failed"

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"state file {path}: {reason}")


class StateCorrupt(StateError):
    """The file is not a state this agent can read. Terminal until the file is moved aside."""

    code = "state.corrupt"

    def __init__(self, path: str, reason: str):
        super().__init__(
            path,
            f"{reason}; move it aside (mv {path} {path}.broken): the next run starts afresh and"
            " reinstalls each site's current certificate once",
        )


class StateUnwritable(StateError):
    """Saving failed (disk full, permissions); the old file is unchanged."""

    code = "state.unwritable"
    transient = True


class Restore(Enum):
    """What became of the certificate an install replaced, once the install failed."""

    RESTORED = "the previous certificate was restored"
    NOTHING = "there was nothing to restore"  # DSM refused the upload, or the site was new
    FAILED = "restoring the previous certificate failed too; DSM keeps the new one"
    # Putting back an expired (or not yet valid) certificate would replace a valid one with it.
    NOT_VALID = "the previous certificate is not valid now, so it was not put back"


class InstallFailed(AgentError):
    """The import or its confirmation failed; `.restored` says what became of the previous
    certificate."""

    code = "install.failed"
    transient = True

    def __init__(self, site: str, cause: str, restored: Restore):
        self.site = site
        self.cause = cause
        self.restored = restored
        super().__init__(f"site {site}: installing into DSM failed ({cause}); {restored.value}")


class ServicesNotBound(AgentError):
    """DSM holds the site's new certificate, but configured services are not bound to it: DSM
    lists no service by that name (a typo, a package not installed), or did not move it. They
    keep serving their old certificate, so the install is not recorded and is tried again."""

    code = "install.services_not_bound"

    def __init__(self, site: str, services: Sequence[str], listed: Sequence[str]):
        self.site = site
        self.services = tuple(services)
        self.listed = tuple(listed)
        super().__init__(
            f"site {site}: DSM holds the new certificate, but the configured services"
            f" {', '.join(self.services)} are not bound to it; DSM lists these services:"
            f" {', '.join(self.listed) or 'none'} (check services in [site:{site}])"
        )


class ConfirmFailed(AgentError):
    """DSM did not serve the expected certificate before the deadline."""

    code = "install.not_served"
    transient = True

    def __init__(self, host: str, port: int, expected: str, served: str | None, cause: str):
        self.host = host
        self.port = port
        self.expected = expected
        self.served = served
        super().__init__(
            f"DSM at {host}:{port} does not serve the new certificate "
            f"(expected sha256 {expected[:16]}…, {cause})"
        )


class TempAdminError(AgentError):
    """Temp-admin mode cannot work here or a tool failed. `.reason`; `.command`, when a tool
    failed, is its argv with the password replaced by `***`."""

    code = "temp_admin.failed"

    def __init__(self, reason: str, command: Sequence[str] = ()):
        self.reason = reason
        self.command = tuple(command)
        shown = f" ({' '.join(self.command)})" if self.command else ""
        super().__init__(f"temp_admin: {reason}{shown}")


class StatusReportInvalid(AgentError):
    code = "status.report_invalid"

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"status report refused: {reason}")
