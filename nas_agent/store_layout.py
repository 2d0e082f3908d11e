"""The object store's layout: every key certdrop reads or writes is built here, and nowhere else.

    config/certdrop.toml                         the operator's configuration (AWS mode)
    state/sites/<site>.json                      what the issuer knows of a site
    state/versions/<site>/<version>              a version reserved (conditional write); kept
                                                 when the site is removed, so versions only grow
    state/locks/<site>                           a run's lock (conditional write)
    state/schedule/<site>@<check>@<expiry>@<hash> due times in names: the tick lists, never reads
    state/agents/<agent>.json                    the agent registry
    state/challenges/<site>.json                 TXT values placed, so any later run removes them
    state/challenges/<site>.json.invalid         a journal that could not be read, set aside
    state/limits/<ca>.json                       the CA's rate-limit buckets the fleet shares,
                                                 as certdrop spent them (conditional writes);
                                                 <ca>: a digest of the CA's directory URL
    state/limits/<ca>/<site>.json                the buckets of one site's own names
    state/alerts/                                what was alerted
    state/store-check.json                       the store's conditional writes, as last probed:
                                                 its URL and endpoint, and what was found
    state/store-probe/<token>                    the probe's object, deleted when it is done
    state/issuer/rotations.json                  the issuer's key rotation statements, a chain
    state/invites/<agent>.json                   an agent's invitation, signed; gone once used
    state/escrow/<site>/<version>.json           the issuer's signed statement vouching for
                                                 that escrow copy
    escrow/<site>/<version>.sealed               the bundle sealed to the escrow key
    agents/<agent>/index.json                    the agent's signed index, written last
    agents/<agent>/bundles/<site>/<version>.sealed
    agents/<agent>/status.json                   the agent's signed report
    agents/<agent>/enrollment.json               the agent's keys, as `join` posts them
    agents/<agent>/key-requests.json             the sites the agent makes keys for (agent
                                                 custody), signed by the issuer
    agents/<agent>/csr/<site>.json               the agent's signed CSR statement for a site

It lives with the agent because both sides need it and the agent may not import `cloud`. An
agent's source is rooted at `agents/<agent>/`, so the agent uses the names relative to it
(`INDEX`, `STATUS`, `KEY_REQUESTS`, `bundle_name`, `csr_name`).
"""

from __future__ import annotations

CONFIG = "config/certdrop.toml"
SITE_STATE_PREFIX = "state/sites/"
VERSIONS_PREFIX = "state/versions/"
LOCK_PREFIX = "state/locks/"
SCHEDULE_PREFIX = "state/schedule/"
REGISTRY_PREFIX = "state/agents/"
CHALLENGES_PREFIX = "state/challenges/"
LIMITS_PREFIX = "state/limits/"
ALERTS_PREFIX = "state/alerts/"
STORE_CHECK = "state/store-check.json"
STORE_PROBE_PREFIX = "state/store-probe/"
ISSUER_ROTATIONS = "state/issuer/rotations.json"
INVITES_PREFIX = "state/invites/"
ESCROW_STATEMENTS_PREFIX = "state/escrow/"
ESCROW_PREFIX = "escrow/"
AGENTS_PREFIX = "agents/"

# Below an agent's own prefix.
INDEX = "index.json"
STATUS = "status.json"
ENROLLMENT = "enrollment.json"
KEY_REQUESTS = "key-requests.json"
CSR_PREFIX = "csr/"


def site_state(site: str) -> str:
    return f"{SITE_STATE_PREFIX}{site}.json"


def versions_of(site: str) -> str:
    return f"{VERSIONS_PREFIX}{site}/"


def version_reservation(site: str, version: int) -> str:
    return f"{versions_of(site)}{version}"


def lock(site: str) -> str:
    return f"{LOCK_PREFIX}{site}"


def schedule_prefix(site: str) -> str:
    """Every schedule marker of `site` starts with this (`@` ends the site id)."""
    return f"{SCHEDULE_PREFIX}{site}@"


def registry_record(agent: str) -> str:
    return f"{REGISTRY_PREFIX}{agent}.json"


def challenge_journal(site: str) -> str:
    return f"{CHALLENGES_PREFIX}{site}.json"


def challenge_journal_set_aside(site: str) -> str:
    return challenge_journal(site) + ".invalid"


def limits_ledger(ca: str, site: str | None = None) -> str:
    """The fleet's shared buckets at CA `ca`, or with `site` that site's own."""
    return f"{LIMITS_PREFIX}{ca}.json" if site is None else f"{LIMITS_PREFIX}{ca}/{site}.json"


def store_probe(token: str) -> str:
    return f"{STORE_PROBE_PREFIX}{token}"


def escrow_prefix(site: str) -> str:
    return f"{ESCROW_PREFIX}{site}/"


def escrow(site: str, version: int) -> str:
    return f"{escrow_prefix(site)}{version}.sealed"


def parse_escrow(key: str) -> tuple[str, int]:
    """(site, version) of an `escrow(site, version)` key; ValueError for any other key."""
    site, _, name = key[len(ESCROW_PREFIX) :].rpartition("/")
    number, _, suffix = name.partition(".")
    if not key.startswith(ESCROW_PREFIX) or not site or suffix != "sealed" or not number.isdigit():
        raise ValueError(f"{key!r} is not an escrow copy's key")
    return site, int(number)


def invite(agent: str) -> str:
    return f"{INVITES_PREFIX}{agent}.json"


def agent_enrollment(agent: str) -> str:
    return f"{agent_prefix(agent)}{ENROLLMENT}"


def agent_prefix(agent: str) -> str:
    return f"{AGENTS_PREFIX}{agent}/"


def agent_index(agent: str) -> str:
    return agent_prefix(agent) + INDEX


def agent_status(agent: str) -> str:
    return agent_prefix(agent) + STATUS


def bundles_of(site: str) -> str:
    """The folder of a site's bundles below an agent's prefix."""
    return f"bundles/{site}/"


def bundle_name(site: str, version: int) -> str:
    """A bundle's key below its agent's prefix (what an index entry names)."""
    return f"{bundles_of(site)}{version}.sealed"


def csr_name(site: str) -> str:
    """A site's CSR statement below its agent's prefix."""
    return f"{CSR_PREFIX}{site}.json"


def agent_key_requests(agent: str) -> str:
    return agent_prefix(agent) + KEY_REQUESTS


def agent_csr(agent: str, site: str) -> str:
    return agent_prefix(agent) + csr_name(site)


def agent_bundles(agent: str, site: str) -> str:
    return agent_prefix(agent) + bundles_of(site)


def escrow_statements(site: str) -> str:
    return f"{ESCROW_STATEMENTS_PREFIX}{site}/"


def escrow_statement(site: str, version: int) -> str:
    return f"{escrow_statements(site)}{version}.json"
