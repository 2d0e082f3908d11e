"""The ACME challenge types a site can be validated with (its `challenge` setting).

- `dns-01` (RFC 8555 §8.4): a fresh TXT value at `_acme-challenge.<domain>` for every order,
  written and removed through the site's DNS provider: the issuer holds DNS credentials.
- `dns-persist-01` (draft-ietf-acme-dns-persist): one TXT record at
  `_validation-persist.<domain>`, created once by the domain's owner, naming the CA and
  certdrop's ACME account; the issuer holds no DNS credentials at all and writes nothing.
"""

from __future__ import annotations

import enum


class ChallengeType(enum.Enum):
    DNS_01 = "dns-01"
    DNS_PERSIST_01 = "dns-persist-01"
