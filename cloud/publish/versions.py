"""Version numbers of a site's certificates: reserved by a conditional write before anything is
sealed, so one number never names two certificates, and kept when a site is removed, so a
re-added site continues above every number its agents have seen.

    state/versions/<site>/<version>    {"sha256": the certificate's leaf fingerprint}

A reservation is unsigned, as is the site state's current version: anyone who can write the
store can plant one. So neither sets the start on its own: the next version is the lowest free
one above the highest the issuer itself vouched for (its escrow statements,
`EscrowStatements.top_version`), and a reservation or current version counts only within
VERSION_GAP of that. One further away is not the issuer's: logged and passed over, so a planted
2**53-2 neither makes the issuer sign a version no agent can ever leave nor stops its issuances.
Numbers taken from the start on are stepped over in memory, never reused: those a removed site
kept (its statements went with it), or those a store writer planted, one write each.
"""

from __future__ import annotations

import json
import logging
import re

from cloud.errors import PreconditionFailed, VersionsExhausted
from cloud.store import Store
from nas_agent import store_layout
from nas_agent.bundle.plaintext import MAX_VERSION

log = logging.getLogger(__name__)

# A version is reserved before the statement vouching for it is written, and an attempt failing
# in between (the store failing; each run tries a few times) leaves its reservation unused: a
# genuine reservation may lie that far above the statements. 64 is many failed runs' worth, and
# nothing next to MAX_VERSION.
VERSION_GAP = 64
_NAME = re.compile("[1-9][0-9]*")  # what version_reservation writes; anything else is no version


def reserve_next(
    store: Store, site: str, cert_sha256: str, *, trusted_top: int, above: int = 0
) -> int:
    """Reserves for this certificate the lowest free version above `trusted_top` (the highest
    the issuer vouched for) and above every reservation and `above` (the state's current
    version, for stores written before reservations existed) within VERSION_GAP of it.
    VersionsExhausted, reserving nothing, when that is past MAX_VERSION."""
    prefix = store_layout.versions_of(site)
    names = (info.key[len(prefix) :] for info in store.list(prefix))
    taken = {int(name) for name in names if _NAME.fullmatch(name)}
    bound = trusted_top + VERSION_GAP
    beyond = [v for v in (above, *taken) if v > bound]
    if beyond:
        log.warning(
            "%d reservation(s) or current version up to %d ignored: more than %d above %d, the"
            " highest version the issuer vouched for, so not the issuer's",
            len(beyond),
            max(beyond),
            VERSION_GAP,
            trusted_top,
            extra={"site": site},
        )
    version = max(v for v in (trusted_top, above, *taken) if v <= bound) + 1
    body = json.dumps({"sha256": cert_sha256}).encode()
    while True:
        while version in taken:
            version += 1
        check_in_range(site, version)
        try:
            store.put(store_layout.version_reservation(site, version), body, if_absent=True)
            return version
        except PreconditionFailed:
            version += 1  # taken by a run we raced: the next one is ours to try


def check_in_range(site: str, version: int) -> None:
    """VersionsExhausted when `version` is past MAX_VERSION, the highest an index carries."""
    if version > MAX_VERSION:
        raise VersionsExhausted(site, version, MAX_VERSION)
