"""Version numbers of a site's certificates: reserved by a conditional write before anything is
sealed, so one number never names two certificates, and kept when a site is removed, so a
re-added site continues above every number its agents have seen.

    state/versions/<site>/<version>    {"sha256": the certificate's leaf fingerprint}
"""

from __future__ import annotations

import json

from cloud.errors import PreconditionFailed
from cloud.store import Store
from nas_agent import store_layout


def reserve_next(store: Store, site: str, cert_sha256: str, *, above: int = 0) -> int:
    """Reserves the lowest version above every reserved one (and above `above`, the state's
    current version, for stores written before reservations existed) for this certificate."""
    prefix = store_layout.versions_of(site)
    taken = [
        int(name)
        for name in (info.key[len(prefix) :] for info in store.list(prefix))
        if name.isdigit()
    ]
    version = max([above, *taken]) + 1
    body = json.dumps({"sha256": cert_sha256}).encode()
    while True:
        try:
            store.put(store_layout.version_reservation(site, version), body, if_absent=True)
            return version
        except PreconditionFailed:
            version += 1  # taken by a run we raced: the next one is ours to try
