"""Whether a new certificate may replace the one DSM already holds for a site (rollback guard).

The agent's state file is not the only record of what is installed: DSM itself lists, under the
site's description, the certificate an install would replace. An agent that lost its state (or
never had one) would otherwise accept any genuinely signed bundle, including yesterday's one
restored into the store. So before every import the agent compares the new leaf with what DSM
holds, whatever its state says:

- the same certificate (equal SHA-256 of the leaf DER) → `SAME`: nothing to import, the state
  records it as installed;
- a leaf whose notBefore is earlier than the held certificate's `valid_from` → `OLDER`: refused
  (`bundle.older_than_installed`), never imported;
- anything else → `NEWER`: installed.

The signal is the notBefore date because it is the only ordering DSM gives back: `CRT.list`
carries `valid_from`/`valid_till`, issuer and subject, but no serial number, no fingerprint and
nothing of certdrop's (version, issued_at). notBefore is set by the CA when it signs, so it grows
with each renewal and nobody without the CA's key can move it; a replayed bundle carries the old
date. DSM lists it to the second, as X.509 stores it. Equal dates are not a rollback (two
issuances in one second are both current), so they install unless the fingerprints show the same
certificate. The fingerprint of the held certificate is known only when DSM's export could be
read; without it an equal-dated certificate is imported again, which is harmless.

If DSM lists no readable `valid_from` the comparison cannot be made: the certificate is installed
(DSM's own list is not an attacker's input, and refusing would stop every renewal on such a DSM).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Verdict(enum.Enum):
    NEWER = "newer"  # install it
    SAME = "same"  # DSM already holds this very certificate: record, do not import
    OLDER = "older"  # a rollback: refuse


@dataclass(frozen=True)
class LeafFacts:
    """What the comparison needs of a certificate: its validity and the SHA-256 of its DER."""

    not_before: datetime
    not_after: datetime | None  # None when DSM's `valid_till` could not be read
    sha256: str | None = None  # hex; None when unknown (DSM lists none; its export unreadable)


def could_be_same(new: LeafFacts, held: LeafFacts) -> bool:
    """Whether DSM's listed dates match the new leaf's: only then is the held certificate's
    fingerprint worth fetching (an extra DSM call)."""
    return held.not_before == new.not_before and held.not_after == new.not_after


def judge(new: LeafFacts, held: LeafFacts | None) -> Verdict:
    """The new certificate against the one DSM holds under the site's description (None: DSM
    holds none, or its dates could not be read)."""
    if held is None:
        return Verdict.NEWER
    if held.sha256 is not None and held.sha256 == new.sha256:
        return Verdict.SAME
    if new.not_before < held.not_before:
        return Verdict.OLDER
    return Verdict.NEWER
