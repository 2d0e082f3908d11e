"""The agent configuration's frozen dataclasses (`nas_agent.config` documents the keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from nas_agent.dsm import REQUEST_TIMEOUT

if TYPE_CHECKING:  # both import what reading agent.conf never needs (requests, cryptography)
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from nas_agent.dsm.pinning import PinnedCertificates

DEFAULT_DSM_URL = "https://127.0.0.1:5001"
POLL_INTERVAL = 3600.0  # seconds between runs unless [agent] poll_interval says otherwise
MIN_POLL_INTERVAL = 60.0  # the agent polls at most once a minute
# Upper bounds: past them a value is a typo, and one large enough (a long digit string reads as
# inf) would crash the run far from the file (the config digest's JSON, a socket's or sleep's
# timeout) instead of being reported as the key to fix.
MAX_POLL_INTERVAL = 7 * 86400.0  # a week: renewed certificates wait for weeks, not months
MAX_TIMEOUT = 3600.0  # an hour for one request, or for DSM to serve a new certificate
CONFIRM_TIMEOUT = 60.0  # seconds to wait for DSM to serve a new certificate


@dataclass(frozen=True)
class AgentSettings:
    id: str
    keys_dir: str
    state_file: str
    poll_interval: float  # seconds
    issuer_key_line: str | None = None
    issuer_key: ed25519.Ed25519PublicKey | None = field(default=None, compare=False, repr=False)
    # Index v1 (no signed expiry) is read until then, and only before any v2 was accepted.
    accept_index_v1_until: datetime | None = None


@dataclass(frozen=True)
class SourceConfig:
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    credentials_file: str | None = None
    addressing_style: str | None = None
    ca_file: str | None = None
    timeout: float | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of `open_source` (None values are ignored there)."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "credentials_file": self.credentials_file,
            "addressing_style": self.addressing_style,
            "ca_file": self.ca_file,
            "timeout": self.timeout,
        }


@dataclass(frozen=True)
class DsmConfig:
    username: str
    device_id_file: str
    url: str = DEFAULT_DSM_URL
    password_file: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    timeout: float = REQUEST_TIMEOUT
    confirm_timeout: float = CONFIRM_TIMEOUT
    temp_admin: bool = False  # log in as a throw-away administrator made with DSM's tools
    # Not keys: files in the agent's state directory, named there by the reader.
    pin_file: str = ""  # DSM's pinned certificates (`nas_agent.dsm.pinning`)
    otp_journal_file: str = ""  # DSM's 2FA policy while temp_admin lifts it (`temp_admin`)

    @property
    def verify(self) -> bool | str | PinnedCertificates:
        """What `DsmClient(verify=...)` takes: the CA file, False when insecure, else DSM's
        certificate pinned in `pin_file` (a new object each time: one per client)."""
        from nas_agent.dsm.pinning import PinnedCertificates

        if self.ca_file:
            return self.ca_file
        if self.insecure:
            return False
        return PinnedCertificates(self.pin_file) if self.pin_file else True


@dataclass(frozen=True)
class SiteConfig:
    id: str
    hostnames: tuple[str, ...]  # IDNA, lower case; the first is the SNI name for confirming
    description: str
    make_default: bool = False
    services: tuple[str, ...] = ()

    @property
    def sni(self) -> str:
        return self.hostnames[0]


@dataclass(frozen=True)
class AgentConfig:
    path: str
    agent: AgentSettings
    source: SourceConfig
    dsm: DsmConfig
    sites: Mapping[str, SiteConfig]  # in the order of the file
