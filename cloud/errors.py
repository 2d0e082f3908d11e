"""Errors of the issuing side. Each carries data, not only text, and says whether it is transient.

CertdropError                      transient: retry later; otherwise record, alert, stop
├── ConfigError                    .problems: every ConfigProblem found, reported together
├── SecretError                    .ref: the reference that could not be read (never the value)
├── StoreError                     .key
│   ├── PreconditionFailed         a conditional write lost the race
│   └── StoreRefused               .code; retrying cannot help (bad key, no bucket, denied)
├── DnsError                       .fqdn
│   ├── DnsProviderError           .provider; the DNS API refused or was unreachable
│   ├── ZoneNotFoundError          no SOA found walking up from .fqdn
│   ├── CnameChainError            a CNAME loop or a chain longer than allowed
│   └── PropagationTimeout         .missing: the nameservers that never served .value
├── AcmeError                      .code (ACME problem short name), .identifier, .retry_after
│   ├── RateLimited
│   └── ValidationFailed           .failures: (identifier, code, detail) per failed challenge
├── IssuanceError                  the issued certificate does not match what was ordered
└── AlertDeliveryFailed            .channel, .target (never a secret), .status: alerts not taken
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class CertdropError(Exception):
    """Base of every error certdrop raises on purpose."""

    transient = False


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    cause: str
    fix: str

    def __str__(self) -> str:
        return f"{self.key}: {self.cause} — {self.fix}"


class ConfigError(CertdropError):
    def __init__(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...], source: str = ""):
        self.problems = tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}{len(self.problems)} configuration {noun}:\n{lines}")


class SecretError(CertdropError):
    def __init__(self, ref: str, cause: str):
        self.ref = ref
        super().__init__(f"secret {ref}: {cause}")


class StoreError(CertdropError):
    transient = True

    def __init__(self, key: str, cause: str):
        self.key = key
        super().__init__(f"object store, {key}: {cause}")


class PreconditionFailed(StoreError):
    transient = False


class StoreRefused(StoreError):
    """Retrying cannot help: an invalid key, a missing bucket, access denied, a path conflict."""

    transient = False

    def __init__(self, key: str, cause: str, *, code: str):
        self.code = code
        super().__init__(key, cause)


class DnsError(CertdropError):
    def __init__(self, fqdn: str, cause: str, *, transient: bool = False):
        self.fqdn = fqdn
        self.transient = transient
        super().__init__(f"DNS {fqdn}: {cause}")


class DnsProviderError(DnsError):
    def __init__(self, provider: str, fqdn: str, cause: str, *, transient: bool = False):
        self.provider = provider
        super().__init__(fqdn, f"{provider}: {cause}", transient=transient)


class ZoneNotFoundError(DnsError):
    pass


class CnameChainError(DnsError):
    pass


class PropagationTimeout(DnsError):
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


class AcmeError(CertdropError):
    def __init__(
        self,
        code: str,
        detail: str,
        *,
        identifier: str | None = None,
        retry_after: datetime | None = None,
        transient: bool = False,
    ):
        self.code = code
        self.detail = detail
        self.identifier = identifier
        self.retry_after = retry_after
        self.transient = transient
        where = f" ({identifier})" if identifier else ""
        until = f", retry after {retry_after.isoformat()}" if retry_after else ""
        super().__init__(f"ACME {code}{where}: {detail}{until}")


class RateLimited(AcmeError):
    pass


class ValidationFailed(AcmeError):
    def __init__(self, failures: tuple[tuple[str, str, str], ...]):
        self.failures = failures
        detail = "; ".join(f"{ident}: {code}: {text}" for ident, code, text in failures)
        super().__init__("validation", detail, identifier=failures[0][0] if failures else None)


class IssuanceError(CertdropError):
    pass


class AlertDeliveryFailed(CertdropError):
    """A channel did not take the alerts; they stay unsent and go out at the next evaluation.
    `target` names the receiver without anything secret (a webhook's scheme, host and port)."""

    transient = True

    def __init__(self, channel: str, target: str, cause: str, *, status: int | None = None):
        self.channel = channel
        self.target = target
        self.status = status
        super().__init__(f"alerts not delivered by {channel} to {target}: {cause}")
