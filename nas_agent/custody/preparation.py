"""What a run does for agent custody: read the issuer's key requests, and keep one pending key
with a posted CSR statement for each requested site.

The cycle (`nas_agent.cycle`) calls `read_key_requests` when the index changed (the issuer
re-signs the index whenever it writes the requests) and `ensure_pending` for every site the
requests name, after its installs: a site whose certificate was just installed has no pending
key any more (`SiteKeys.installed`), so the next renewal's key and CSR are made right away. A
pending key whose names or key type no longer match the request is replaced. `certdrop-agent
rekey SITE` calls `prepare` with `rekey=True`. Key generation is imported only when a key is
made: most runs make none.

Two things keep a site from waiting for ever:

- The local `posted` flag says the source took the statement once, not that it is still there
  (a store writer, a lifecycle rule or a bucket move may delete it). So the cycle asks for a
  re-post (`repost`) each time it reads the key requests, unless the index holds a certificate
  that may answer the pending CSR; the issuer takes the same sequence twice.
- Both steps first compare the pending key with the certificate installed for the site (the
  agent's copy of what DSM took, `nas_agent.local_copies`): a run stopped after DSM took the
  certificate and before the site's keys file recorded it left that certificate's key as the
  pending one. It becomes the current key (`SiteKeys.promoted_if_installed`) and the next CSR is
  made, so the renewal goes on and the key DSM serves with is never deleted by a replacement.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from nas_agent import store_layout
from nas_agent.bundle.key_requests import (
    KeyRequest,
    KeyRequests,
    parse_key_requests,
    verify_key_requests,
)
from nas_agent.custody.errors import KeyRequestsMissing, SourceReadOnly
from nas_agent.custody.key_store import KeyStore, PendingKey, SiteKeys
from nas_agent.sources import Fetched
from nas_agent.sources.errors import SourceNotFound

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from nas_agent.keys import AgentKeys
    from nas_agent.sources import Source

_log = logging.getLogger(__name__)


def read_key_requests(
    source: Source,
    *,
    agent_id: str,
    issuer_public_key: ed25519.Ed25519PublicKey,
    accepted_issued_at: datetime | None,
) -> KeyRequests | None:
    """The issuer's key requests, verified; None when it has written none. Raises
    KeyRequestError (refused: the caller keeps what it held) or SourceError. A document that
    was there once and is gone (`accepted_issued_at` set) raises KeyRequestsMissing."""
    try:
        fetched = source.fetch(store_layout.KEY_REQUESTS)
    except SourceNotFound as exc:
        if accepted_issued_at is None:
            return None  # no site of this agent was ever in agent custody
        raise KeyRequestsMissing(
            "the document is gone from the source; keeping the requests held"
        ) from exc
    assert isinstance(fetched, Fetched)  # asked without an ETag: never NotModified
    requests = verify_key_requests(
        parse_key_requests(fetched.body),
        agent_id=agent_id,
        issuer_public_key=issuer_public_key,
        accepted_issued_at=accepted_issued_at,
    )
    _log.info(
        "key requests of %s: %s in agent custody",
        requests.issued_at.isoformat(),
        ", ".join(r.site for r in requests.sites) or "no site",
    )
    return requests


def ensure_pending(
    store: KeyStore,
    request: KeyRequest,
    *,
    agent: AgentKeys,
    source: Source,
    now: datetime,
    installed_sha256: str,
    installed_key: bytes | None,
    repost: bool = False,
) -> PendingKey:
    """The site's pending key: the one held when it still answers `request`, else a new one
    (`prepare`). The held one's statement is posted when the source did not take it yet, and
    posted again with `repost` (the statement may be gone from the store; the issuer takes the
    same sequence twice). First, a pending key the installed certificate has (`installed_key`,
    its SubjectPublicKeyInfo DER) becomes the current one (`SiteKeys.promoted_if_installed`),
    so a new key and CSR are made. Raises SourceReadOnly, SourceError, KeyFileError."""
    keys = _promoted(store, request.site, installed_key)
    pending = keys.pending
    if pending is not None and pending.answers(request.names, request.key_type):
        if repost and pending.posted:
            _log.info("site %s: posting CSR %d again", request.site, pending.sequence)
            # Owed until the source takes it, also when this run stops before.
            pending = dataclasses.replace(pending, posted=False)
            store.save(keys.with_pending(pending))
        if not pending.posted:
            pending = post(store, request.site, source)
        return pending
    if pending is not None:
        _log.info("site %s: the key request changed: replacing the pending key", request.site)
    return prepare(
        store,
        request,
        agent=agent,
        source=source,
        now=now,
        installed_sha256=installed_sha256,
        installed_key=installed_key,
        rekey=False,
    )


def prepare(
    store: KeyStore,
    request: KeyRequest,
    *,
    agent: AgentKeys,
    source: Source,
    now: datetime,
    installed_sha256: str,
    installed_key: bytes | None,
    rekey: bool,
) -> PendingKey:
    """A new key and CSR statement for the site, saved as its pending key (deleting the one it
    replaces, unless the installed certificate has that one: it becomes the current key), then
    posted. `installed_sha256` is the installed certificate's fingerprint, "" when none, and
    `installed_key` its SubjectPublicKeyInfo DER, None when unknown. Raises SourceReadOnly,
    SourceError, KeyFileError; the new key is kept either way and posted again by the next
    run."""
    from nas_agent.custody.key_types import generate_key
    from nas_agent.custody.keygen import csr_der, key_pem
    from nas_agent.custody.statement import next_sequence, sign_csr_statement

    keys = _promoted(store, request.site, installed_key)
    key = generate_key(request.key_type)
    sequence = next_sequence(keys.last_sequence or None, now)
    statement = sign_csr_statement(
        agent_id=agent.agent_id,
        site=request.site,
        sequence=sequence,
        current_cert_sha256=installed_sha256,
        rekey=rekey,
        csr_der=csr_der(key, request.names),
        created_at=now,
        signing_key=agent.signing_key,
    )
    pending = PendingKey(
        key_pem(key), sequence, request.names, request.key_type, rekey, statement, posted=False
    )
    store.save(keys.with_pending(pending))
    _log.info(
        "site %s: new %s key and CSR %d%s",
        request.site,
        request.key_type,
        sequence,
        " (rekey)" if rekey else "",
    )
    return post(store, request.site, source)


def post(store: KeyStore, site: str, source: Source) -> PendingKey:
    """Write the pending key's CSR statement through the source; record that it was taken."""
    keys = store.load(site)
    pending = keys.pending
    assert pending is not None
    if not source.put_csr(site, pending.statement):
        raise SourceReadOnly(
            f"the source {source.url} cannot take CSR statements: site {site} waits for its"
            " certificate; use an s3:// or file:// source for sites in agent custody",
            site=site,
        )
    posted = dataclasses.replace(pending, posted=True)
    store.save(keys.with_pending(posted))
    _log.info("site %s: CSR %d posted", site, pending.sequence)
    return posted


def _promoted(store: KeyStore, site: str, installed_key: bytes | None) -> SiteKeys:
    """The site's keys, with a pending key the installed certificate has made the current one
    (and saved so)."""
    keys = store.load(site)
    promoted = keys.promoted_if_installed(installed_key)
    if promoted is not keys:
        assert keys.pending is not None
        _log.warning(
            "site %s: the installed certificate has the key of CSR %d, still recorded as pending"
            " (a run stopped before recording it): it is the current key now",
            site,
            keys.pending.sequence,
        )
        store.save(promoted)
    return promoted
