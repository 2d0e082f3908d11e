"""Errors of the NAS agent. Each carries data, not only text, and says whether it is transient.

    AgentError                     .transient: retry next run; else record, report, stop
    ├── KeyMaterialError           keys, key files and the one-line key formats
    │   ├── TokenError             .kind, .reason: a line that does not parse or fails its checksum
    │   └── KeyFileError           .path: missing, unreadable, malformed, too open, or present
    └── BundleError                .agent_id, .site, .version as far as known; .reason
        ├── MalformedIndex         index.json is not an index (JSON, fields, sizes)
        ├── UnsupportedFormat      .what, .found: a format this agent does not know: upgrade it
        ├── SiteNotInIndex         the index holds no entry for .site
        ├── UnknownIssuerKey       .key_id: an issuer key other than the pinned .pinned_key_id
        ├── BadSignature           the entry's Ed25519 signature does not verify
        ├── WrongAgent             .addressee: the entry was signed for another agent
        ├── StaleVersion           .installed_version: .version is not newer (replay, up to date)
        ├── SealedHashMismatch     the sealed object is not the one the signed entry names
        ├── MalformedSealedObject  bad magic, too short or too large
        ├── DecryptionFailed       HPKE open failed: another recipient's object, or tampered bytes
        ├── MalformedPlaintext     the opened bytes are not a bundle (JSON, fields, PEM, key type)
        ├── ContentMismatch        .field: contents disagree with the signed entry or the leaf
        ├── KeyMismatch            the private key is not the certificate's
        ├── ChainInvalid           the leaf is not signed by the first chain cert, or a link breaks
        ├── CertificateNotYetValid .not_before is after .now
        ├── CertificateExpired     .not_after is before .now
        └── NamesNotCovered        .missing: configured hostnames the certificate does not cover

The other subtrees of AgentError live beside the code that raises them:

    AgentConfigError (config_errors)     .problems: every ConfigProblem; SecretFileError too
    SourceError (source_errors)          .url, .name, .code; NotFound, Unavailable (transient),
                                         Denied, TooLarge
    StateError (state)                   StateCorrupt, StateUnwritable (transient)
    DsmError (dsm_errors)                DsmTransportError (transient; DsmTlsError,
                                         DsmProtocolError), DsmApiError .code (DsmSessionError,
                                         DsmNotAdmin, DsmAuthError and one class per login
                                         refusal), DsmDuplicateDescription, ...
    InstallFailed (install)              .restored: import or TLS confirmation failed
    ConfirmFailed (confirm)              DSM did not serve the expected leaf in time
    TempAdminError (temp_admin)          .reason, .command: dsm.temp_admin cannot work here
                                         (not local, not root, no tools) or a tool failed
    StatusReportInvalid (status)         a status.json that does not verify

Nothing in the BundleError tree is transient: a bundle that fails a check fails it again until
the cloud publishes a new one. Messages never contain key material.
"""

from __future__ import annotations

from datetime import datetime


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    transient = False


class KeyMaterialError(AgentError):
    pass


class TokenError(KeyMaterialError):
    def __init__(self, kind: str, reason: str):
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


class KeyFileError(KeyMaterialError):
    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"key file {path}: {reason}")


class BundleError(AgentError):
    """A bundle or index entry was refused. The message is built from the fields when shown, so
    the opener can add the agent, site and version it knows to an error raised deeper down."""

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
    pass


class UnsupportedFormat(BundleError):
    def __init__(self, what: str, found: object, **where):
        self.what = what
        self.found = found
        super().__init__(f"{what} has format {found!r}, which this agent does not know", **where)


class SiteNotInIndex(BundleError):
    pass


class UnknownIssuerKey(BundleError):
    def __init__(self, key_id: str, pinned_key_id: str, **where):
        self.key_id = key_id
        self.pinned_key_id = pinned_key_id
        super().__init__(
            f"entry is signed by issuer key {key_id}, but this agent pins {pinned_key_id}", **where
        )


class BadSignature(BundleError):
    pass


class WrongAgent(BundleError):
    def __init__(self, addressee: str, **where):
        self.addressee = addressee
        super().__init__(f"entry is addressed to agent {addressee}", **where)


class StaleVersion(BundleError):
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


class SealedHashMismatch(BundleError):
    pass


class MalformedSealedObject(BundleError):
    pass


class DecryptionFailed(BundleError):
    pass


class MalformedPlaintext(BundleError):
    pass


class ContentMismatch(BundleError):
    def __init__(self, field: str, reason: str, **where):
        self.field = field
        super().__init__(f"{field}: {reason}", **where)


class KeyMismatch(BundleError):
    pass


class ChainInvalid(BundleError):
    pass


class CertificateNotYetValid(BundleError):
    def __init__(self, not_before: datetime, now: datetime, **where):
        self.not_before = not_before
        self.now = now
        super().__init__(
            f"certificate is valid from {not_before.isoformat()}, now is {now.isoformat()}", **where
        )


class CertificateExpired(BundleError):
    def __init__(self, not_after: datetime, now: datetime, **where):
        self.not_after = not_after
        self.now = now
        super().__init__(
            f"certificate expired at {not_after.isoformat()}, now is {now.isoformat()}", **where
        )


class NamesNotCovered(BundleError):
    def __init__(self, missing: tuple[str, ...], names: tuple[str, ...], **where):
        self.missing = missing
        self.names = names
        super().__init__(
            f"certificate names {', '.join(names) or '(none)'} do not cover {', '.join(missing)}",
            **where,
        )
