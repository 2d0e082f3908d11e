"""The schedule as object names, so one listing tells the tick which sites are due.

    state/schedule/<site>@<next check, epoch s>@<not_after, epoch s or 0>@<config hash>

Each site has one such empty object, rewritten after every run of that site. A tick lists the
prefix (one request per 1,000 sites) and reads nothing else: a site is due when its next check
has come, when its names, key type or profile differ from the hash, or when it has no marker yet.
The not_after in the name gives every site's days to expiry from the same listing.

A site in agent custody is also due when one of its agents posted a CSR statement after its
marker was written (one listing of `agents/`; only objects named exactly
`agents/<agent>/csr/<site>.json` count): a first CSR or a rekey is ordered at the next tick,
unless the site is backing off (its run then orders nothing).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cloud.config import KeyCustody, SiteConfig
from cloud.pipeline.renewal import requested
from cloud.store import Store
from nas_agent import store_layout
from nas_agent.ids import is_agent_id

PREFIX = store_layout.SCHEDULE_PREFIX
UNCONFIGURED_TXT = "TXT values to remove (site no longer configured)"


@dataclass(frozen=True)
class Marker:
    site: str
    next_check: datetime
    not_after: datetime | None
    config_hash: str
    key: str
    written_at: datetime | None = None  # the marker object's last-modified time, when listed


@dataclass(frozen=True)
class Due:
    site: str
    reason: str


@functools.lru_cache(maxsize=1 << 16)  # every tick hashes every site; sites rarely change
def config_hash(site: SiteConfig) -> str:
    names, key_type, profile = requested(site)
    parts = [*sorted(names), key_type, profile or ""]
    if site.key_custody is not KeyCustody.ISSUER:  # issuer custody: the hash it always had
        parts.append(site.key_custody.value)
    text = "|".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def marker_key(site: SiteConfig, next_check: datetime, not_after: datetime | None) -> str:
    expiry = int(not_after.timestamp()) if not_after else 0
    return f"{PREFIX}{site.id}@{int(next_check.timestamp())}@{expiry}@{config_hash(site)}"


@functools.lru_cache(maxsize=1 << 16)  # every tick parses every marker; most stay as they were
def parse_marker(key: str) -> Marker | None:
    """The marker a key names, or None for anything else under the prefix."""
    parts = key.removeprefix(PREFIX).split("@")
    if not key.startswith(PREFIX) or len(parts) != 4:
        return None
    site, check, expiry, digest = parts
    if not (check.isdigit() and expiry.isdigit()):
        return None
    return Marker(
        site=site,
        next_check=datetime.fromtimestamp(int(check), UTC),
        not_after=datetime.fromtimestamp(int(expiry), UTC) if int(expiry) else None,
        config_hash=digest,
        key=key,
    )


def read_markers(store: Store) -> dict[str, Marker]:
    markers: dict[str, Marker] = {}
    for info in store.list(PREFIX):
        marker = parse_marker(info.key)
        if marker is not None:
            marker = replace(marker, written_at=info.last_modified)
        if marker is not None and (
            marker.site not in markers or marker.next_check < markers[marker.site].next_check
        ):
            markers[marker.site] = marker  # two markers (a crash between put and delete): earlier
    return markers


def write_marker(
    store: Store, site: SiteConfig, next_check: datetime, not_after: datetime | None
) -> None:
    """Replaces the site's marker: the new one first, so the site is never unscheduled."""
    key = marker_key(site, next_check, not_after)
    store.put(key, b"")
    for info in list(store.list(store_layout.schedule_prefix(site.id))):
        if info.key != key:
            store.delete(info.key)


def read_journalled(store: Store) -> set[str]:
    """Sites with TXT values a run placed and did not remove (one listing): due at every tick,
    so the values go as soon as the DNS provider works again, not at the next issuance."""
    prefix = store_layout.CHALLENGES_PREFIX
    return {
        info.key[len(prefix) : -len(".json")]
        for info in store.list(prefix)
        if info.key.endswith(".json")
    }


def read_csr_posts(store: Store, sites: Mapping[str, SiteConfig]) -> dict[str, datetime]:
    """When a CSR statement of each agent-custody site was last posted (one listing of
    `agents/`, made only when some site is in agent custody)."""
    wanted = {s.id for s in sites.values() if s.key_custody is KeyCustody.AGENT}
    posts: dict[str, datetime] = {}
    if not wanted:
        return posts
    for info in store.list(store_layout.AGENTS_PREFIX):
        site = _csr_post_site(info.key)
        if site in wanted:
            posts[site] = max(posts.get(site, info.last_modified), info.last_modified)
    return posts


def _csr_post_site(key: str) -> str | None:
    """The site of a key named exactly `agents/<agent>/csr/<site>.json` for a well-formed
    agent id (the only name the run reads); None for any other object under `agents/`."""
    agent, _, rest = key.removeprefix(store_layout.AGENTS_PREFIX).partition("/")
    site = rest.removeprefix(store_layout.CSR_PREFIX).removesuffix(".json")
    if not is_agent_id(agent) or key != store_layout.agent_csr(agent, site):
        return None
    return site


def due_sites(
    sites: Mapping[str, SiteConfig],
    markers: Mapping[str, Marker],
    now: datetime,
    journalled: Collection[str] = (),
    csr_posts: Mapping[str, datetime] | None = None,
) -> list[Due]:
    due = []
    posts = csr_posts or {}
    # A site taken out of the configuration whose runs left TXT values: its run removes them
    # through the providers that placed them, and does nothing else.
    for site_id in sorted(set(journalled) - set(sites)):
        due.append(Due(site_id, UNCONFIGURED_TXT))
    for site in sites.values():
        marker = markers.get(site.id)
        posted = posts.get(site.id)
        if site.id in journalled:
            due.append(Due(site.id, "TXT values to remove"))
        elif marker is None:
            due.append(Due(site.id, "not scheduled yet"))
        elif marker.config_hash != config_hash(site):
            due.append(Due(site.id, "names, key type, profile or key custody changed"))
        elif marker.next_check <= now:
            due.append(Due(site.id, "check due"))
        elif posted is not None and marker.written_at is not None and posted >= marker.written_at:
            # >=: S3 times have whole seconds; a run with nothing to do is the price of a tie.
            due.append(Due(site.id, "an agent posted a CSR statement"))
    return due


def days_to_expiry(markers: Mapping[str, Marker], now: datetime) -> dict[str, float]:
    return {
        site: (marker.not_after - now).total_seconds() / 86400
        for site, marker in markers.items()
        if marker.not_after is not None
    }
