"""Each agent's key requests, `agents/<agent>/key-requests.json`: which of its sites are in agent
custody (names and key type), signed by the issuer's key in use.

Written when what an agent should receive changes (a site switched, its names or key type
changed, the agent subscribed, the signing key rotated), never otherwise: `sync` compares with
the document in the store first. The agent reads it only when its index changed, so the index is
signed again right after. Every registered agent gets one, an empty list when none of its sites
is in agent custody: an agent then never asks for a missing object (which S3 answers with 403,
not 404, to a reader that may not list the bucket). A record the issuer did not sign gets
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from cloud.config import Config, KeyCustody
from cloud.custody.agent_side import (
    MAX_KEY_REQUESTS_BYTES,
    KeyRequest,
    KeyRequestError,
    key_requests_key,
    parse_key_requests,
    sign_key_requests,
    verify_key_requests,
)
from cloud.errors import CertdropError, ObjectTooLarge
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRecord
from cloud.store import StoredObject

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wanted(config: Config, record: AgentRecord) -> tuple[KeyRequest, ...]:
    """The agent's sites in agent custody, as its key requests list them (sorted by site)."""
    found = []
    for site_id in sorted(set(record.sites)):
        site = config.sites.get(site_id)
        if site is not None and site.key_custody is KeyCustody.AGENT:
            names = tuple(sorted({name.lower() for name in site.names}))
            found.append(KeyRequest(site.id, names, site.key_type.value))
    return tuple(found)


def sync(
    publisher: Publisher,
    config: Config,
    now: datetime,
    agents: Iterable[AgentRecord] | None = None,
) -> list[str]:
    """Writes the key requests of each agent (of `agents`, default every registered one) whose
    document is missing or differs, and signs its index again; returns those agents. One
    agent's failure is logged and does not stop the others."""
    written = []
    for record in publisher.registry.all() if agents is None else agents:
        if publisher.registry.problem(record) is not None:
            continue
        try:
            if _sync_one(publisher, record, wanted(config, record), now):
                written.append(record.agent_id)
        except CertdropError as exc:
            log.error(
                "key requests not written: %s: %s",
                exc.code,
                exc,
                extra={"agent": record.agent_id},
            )
    return written


def _sync_one(
    publisher: Publisher, record: AgentRecord, want: tuple[KeyRequest, ...], now: datetime
) -> bool:
    key = key_requests_key(record.agent_id)
    try:
        found = publisher.store.get(key, max_bytes=MAX_KEY_REQUESTS_BYTES)
    except ObjectTooLarge as exc:  # not one the issuer wrote: replaced
        log.error("key requests replaced: %s", exc, extra={"agent": record.agent_id})
        found = None
    last = _EPOCH
    if isinstance(found, StoredObject):
        held = _held(publisher, record.agent_id, found.body)
        if held is not None:
            issuer_key_id, last, sites = held
            if sites == want and issuer_key_id == publisher.signer.key_id:
                return False
    # Never before the document it replaces: the agent refuses an older one as rolled back.
    issued = max(now, last).astimezone(UTC).replace(microsecond=0)
    body = sign_key_requests(
        want, agent_id=record.agent_id, signing_key=publisher.signer.key, issued_at=issued
    )
    publisher.store.put(key, body)
    publisher.indexes.resign(record.agent_id, now)
    log.info(
        "key requests written: %d site(s) in agent custody",
        len(want),
        extra={"agent": record.agent_id},
    )
    return True


def _held(
    publisher: Publisher, agent_id: str, body: bytes
) -> tuple[str, datetime, tuple[KeyRequest, ...]] | None:
    """(signing key id, issued_at, sites) of the stored document if a key of the issuer signed
    it for this agent; None for anything else (it is replaced)."""
    try:
        document = parse_key_requests(body)
        issuer_key = publisher.signer.trusted.get(document.issuer_key_id)
        if issuer_key is None:
            return None
        verify_key_requests(document, agent_id=agent_id, issuer_public_key=issuer_key)
    except KeyRequestError as exc:
        log.error("key requests replaced: %s", exc, extra={"agent": agent_id})
        return None
    return document.issuer_key_id, document.issued_at, document.sites
