"""A fleet in a known state, written straight into a store: three sites (one expired, one due
for renewal, one healthy), agents with signed status reports (one current, one behind and
failing, one quiet), for the status command, the dashboard and the alerts."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cloud.config import Config, parse
from cloud.errors import RateLimited
from cloud.keys.rotation import Signer
from cloud.pipeline.site_state import (
    AgentCertificate,
    AgentCustodyState,
    CertificateRecord,
    CsrRefusal,
    ErrorRecord,
    SiteState,
    save_site_state,
)
from cloud.publish.registry import AgentRegistry
from cloud.store.local import LocalStore
from nas_agent.enrollment import enrollment_of
from nas_agent.errors import InstallFailed
from nas_agent.keys import AgentKeys, generate_agent_keys, generate_issuer_keys, key_id
from nas_agent.state import AgentState, InstalledSite, LastError
from nas_agent.status import signed_status

DAY = timedelta(days=1)
SITES = ("expired", "due", "healthy")


@dataclass(frozen=True)
class Fleet:
    config: Config
    store: LocalStore
    now: datetime
    agents: dict[str, AgentKeys]


def config_text(site_ids: Iterable[str]) -> str:
    """A configuration of sites `<id>.example.test` behind a do-nothing exec provider: enough
    for everything that reads the fleet without issuing (status, dashboard, alerts, the tick)."""
    head = textwrap.dedent(
        """
        [ca]
        directory = "https://acme.example/directory"
        terms_agreed = true

        [providers.dns]
        type = "exec"
        command = ["/bin/true"]
        """
    )
    sites = "".join(
        f'[sites.{s}]\ndomain = "{s}.example.test"\nprovider = "dns"\n' for s in site_ids
    )
    return head + sites


def _registry(store: LocalStore) -> AgentRegistry:
    """Records signed by a key of their own: the sample fleet has no issuer, and nothing it
    shows seals a bundle."""
    key = generate_issuer_keys().signing_key
    return AgentRegistry(store, Signer(key, (), {key_id(key.public_key()): key.public_key()}))


def _config(directory: Path) -> Config:
    return parse(config_text(SITES), directory / "certdrop.toml")


def _record(site: str, version: int, issued: datetime, lifetime: timedelta) -> CertificateRecord:
    return CertificateRecord(
        version=version,
        cert_sha256=f"{version:02x}" * 32,
        serial="1f",
        names=(f"{site}.example.test", f"*.{site}.example.test"),
        key_type="ec-p256",
        profile=None,
        not_before=issued,
        not_after=issued + lifetime,
        issued_at=issued,
        escrow_object=f"escrow/{site}/{version}.sealed",
    )


def _report(store, keys: AgentKeys, now: datetime, seen: datetime, sites: dict, error=None):
    installed = {
        site: InstalledSite(version, f"{version:02x}" * 32, not_after, "Ab12Cd", seen)
        for site, (version, not_after) in sites.items()
    }
    state = AgentState(sites=installed, last_success=None if error else seen)
    if error is not None:
        state = replace(state, last_error=LastError(InstallFailed.code, error, seen))
    body = signed_status(
        state, agent_id=keys.agent_id, signing_key=keys.signing_key, now=seen, poll_interval=900
    )
    store.put(f"agents/{keys.agent_id}/status.json", body)


def add_agent(
    fleet: Fleet, agent_id: str, sites: tuple[str, ...], state: AgentState, seen: datetime
) -> None:
    """One more agent, receiving `sites` for 30 days, whose signed report at `seen` is `state`."""
    keys = generate_agent_keys(agent_id)
    _registry(fleet.store).add(enrollment_of(keys), sites, fleet.now - 30 * DAY)
    body = signed_status(
        state, agent_id=agent_id, signing_key=keys.signing_key, now=seen, poll_interval=900
    )
    fleet.store.put(f"agents/{agent_id}/status.json", body)
    fleet.agents[agent_id] = keys


def with_sites(
    fleet: Fleet, directory: Path, extra: str = "", sites: Iterable[str] = SITES
) -> Fleet:
    """The fleet under a configuration of `sites` and the TOML `extra` (more sites) besides."""
    return replace(fleet, config=parse(config_text(sites) + extra, directory / "certdrop.toml"))


def add_custody_site(
    fleet: Fleet,
    directory: Path,
    records: dict[str, CertificateRecord],
    refusal: CsrRefusal | None = None,
) -> Fleet:
    """Site "cust" under agent custody: each agent of `records` holds its own certificate and
    has reported it installed five minutes ago; `refusal` is each one's refused CSR, if any."""
    fleet = with_sites(
        fleet,
        directory,
        '[sites.cust]\ndomain = "cust.example.test"\nprovider = "dns"\nkey_custody = "agent"\n',
    )
    agents = {
        agent: AgentCustodyState(
            agent,
            sequence=1,
            current=AgentCertificate(record, 1, "ab" * 32, "PEM"),
            refusal=refusal,
        )
        for agent, record in records.items()
    }
    save_site_state(fleet.store, SiteState("cust", None, agents=agents))
    seen = fleet.now - timedelta(minutes=5)
    for agent, record in records.items():
        installed = InstalledSite(record.version, record.cert_sha256, record.not_after, "x", seen)
        state = AgentState(sites={"cust": installed}, last_success=seen)
        add_agent(fleet, agent, ("cust",), state, seen)
    return fleet


def make_fleet(directory: Path, now: datetime) -> Fleet:
    now = now.replace(microsecond=0)  # the agents' reports carry whole seconds
    store = LocalStore(str(directory / "store"))
    config = _config(directory)
    expired = _record("expired", 3, now - 95 * DAY, 90 * DAY)
    due = _record("due", 5, now - 65 * DAY, 90 * DAY)
    healthy = _record("healthy", 2, now - 10 * DAY, 90 * DAY)
    save_site_state(
        store,
        SiteState(
            "expired",
            expired,
            failures=4,
            next_attempt=now + DAY / 4,
            last_error=ErrorRecord(RateLimited.code, "too many certificates", now - DAY / 24, True),
        ),
    )
    save_site_state(store, SiteState("due", due))
    save_site_state(store, SiteState("healthy", healthy))
    agents = {name: generate_agent_keys(name) for name in ("nas-ok", "nas-behind", "nas-quiet")}
    registry = _registry(store)
    for name, sites in (
        ("nas-ok", ("healthy", "due")),
        ("nas-behind", ("healthy",)),
        ("nas-quiet", ("due",)),
    ):
        registry.add(enrollment_of(agents[name]), sites, now - 30 * DAY)
    seen = now - timedelta(minutes=10)
    _report(store, agents["nas-ok"], now, seen,
            {"healthy": (2, healthy.not_after), "due": (5, due.not_after)})  # fmt: skip
    _report(
        store,
        agents["nas-behind"],
        now,
        seen,
        {"healthy": (1, now + 20 * DAY)},
        error="DSM did not serve the new certificate; the previous one was restored",
    )
    _report(store, agents["nas-quiet"], now, now - 2 * DAY, {"due": (5, due.not_after)})
    return Fleet(config, store, now, agents)
