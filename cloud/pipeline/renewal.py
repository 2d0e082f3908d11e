"""When a site needs a new certificate: a pure function of its configuration, its state and now.

In order:
- a site backing off after failures waits until `next_attempt`, whatever else holds;
- a site whose CA offered no challenge of its type is not ordered again until the site's
  configuration or the CA's directory changes (looked at daily);
- a site never issued, or whose names, key type or profile changed, is due at once;
- with an ARI window from the CA, the site is due at the moment picked inside it;
- otherwise at two thirds of the certificate's lifetime (Let's Encrypt's advice; with 6-day
  certificates that is day 4, with 90-day ones day 60).

Every decision also says when to look again, so a scheduler never polls in a tight loop; a
dns-persist-01 site is looked at at least daily, to read its record again.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from cloud.acme.challenge_types import ChallengeType
from cloud.config import SiteConfig
from cloud.pipeline.site_state import CertificateRecord, SiteState

BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_CAP = timedelta(hours=12)
PERSIST_LOOK = timedelta(days=1)  # how often a dns-persist-01 site's record is read again
UNAVAILABLE_LOOK = timedelta(days=1)  # how often a site refused its challenge is looked at


@dataclass(frozen=True)
class Decision:
    due: bool
    reason: str
    next_check: datetime  # when this site should be looked at again


def decide(
    site: SiteConfig, state: SiteState | None, now: datetime, *, directory: str | None = None
) -> Decision:
    """`directory` is the CA's directory URL now configured (a site refused its challenge by
    another CA is due again); without it only the site's configuration is compared."""
    if state is not None and state.next_attempt is not None and state.next_attempt > now:
        failures = f"{state.failures} failure{'s' if state.failures != 1 else ''}"
        return Decision(False, f"backing off after {failures}", state.next_attempt)
    if state is not None and challenge_unavailable(site, state, directory):
        return Decision(
            False,
            f"the CA offers no {site.challenge.value}: not ordered again until the site's "
            "configuration or ca.directory changes",
            now + UNAVAILABLE_LOOK,
        )
    decision = _renewal(site, state, now)
    look = persist_look(site, state, now)
    if look is not None and not decision.due and look < decision.next_check:
        return replace(decision, reason=f"{decision.reason}; record read daily", next_check=look)
    return decision


def _renewal(site: SiteConfig, state: SiteState | None, now: datetime) -> Decision:
    current = state.current if state is not None else None
    if current is None:
        return Decision(True, "never issued", now)
    changed = changes(site, current)
    if changed:
        return Decision(True, f"{' and '.join(changed)} changed", now)
    if current.not_after <= now:
        return Decision(True, "expired", now)
    window = state.window if state is not None else None
    if window is not None:
        if window.renew_at <= now:
            return Decision(True, "inside the CA's renewal window (ARI)", now)
        return Decision(
            False, "waiting for the ARI window", min(window.renew_at, window.next_check)
        )
    renew_at = current.not_before + (current.not_after - current.not_before) * 2 / 3
    if renew_at <= now:
        return Decision(True, "two thirds of the lifetime passed", now)
    return Decision(False, "valid", renew_at)


def persist_look(site: SiteConfig, state: SiteState | None, now: datetime) -> datetime | None:
    """When a dns-persist-01 site's record is to be read again (now, if it never was); None for
    other sites."""
    if site.challenge is not ChallengeType.DNS_PERSIST_01:
        return None
    seen = state.persist if state is not None else ()
    if not seen:
        return now
    return min(record.checked_at for record in seen) + PERSIST_LOOK


def challenge_unavailable(site: SiteConfig, state: SiteState, directory: str | None) -> bool:
    """The CA refused the site's challenge and neither the site's configuration nor the CA's
    directory changed since."""
    refused = state.challenge_unavailable
    return (
        refused is not None
        and refused.challenge == site.challenge.value
        and refused.site_config == site_digest(site)
        and (directory is None or refused.directory == directory)
    )


def site_digest(site: SiteConfig) -> str:
    """A digest of every setting of the site: any change of its configuration changes it."""
    text = json.dumps(asdict(site), sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} in a site's configuration")


def backoff(
    failures: int, now: datetime, rng: random.Random, retry_after: datetime | None = None
) -> datetime:
    """When to try again after `failures` consecutive failures: exponential from 5 minutes,
    capped at 12 hours, with ±20% jitter so a fleet does not retry in step; never before the
    CA's Retry-After."""
    delay = min(BACKOFF_BASE * 2 ** max(failures - 1, 0), BACKOFF_CAP)
    moment = now + delay * (0.8 + 0.4 * rng.random())
    return max(moment, retry_after) if retry_after is not None else moment


def requested(site: SiteConfig) -> tuple[frozenset[str], str, str | None]:
    """What a site's configuration asks of its certificate: names, key type and profile. The
    schedule hashes it, so a change makes the site due without reading its state."""
    return frozenset(site.names), site.key_type.value, site.profile


def changes(site: SiteConfig, current: CertificateRecord) -> tuple[str, ...]:
    """Which of names, key type and profile the configuration asks differently from `current`."""
    names, key_type, profile = requested(site)
    held = (frozenset(current.names), current.key_type, current.profile or None)
    labels = ("names", "key type", "profile")
    return tuple(
        label
        for label, want, have in zip(labels, (names, key_type, profile), held, strict=True)
        if want != have
    )
