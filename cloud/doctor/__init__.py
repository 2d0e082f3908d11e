"""`certdrop doctor`: checks of the issuer's set-up, one module per check.

A check is a function of a `report.Context` returning a `report.Report` of findings; it writes
nothing (no DNS record, no order, no state) but the store check's probe object, deleted at once.
`CHECKS` runs in order; a later check is one more module here and one more entry there.

    store.py             the object store refuses what a conditional write must refuse
                         (`If-None-Match: *` over an object, `If-Match` with a wrong ETag)
    persist_records.py   every dns-persist-01 site's record, read at every authoritative
                         nameserver of its zone: names this issuer's account and the CA
    account_key.py       the ACME account key: a KMS key that exists, is ECC_NIST_P256 and may
                         sign; the stored accounts sign with the configured key
"""

from __future__ import annotations

from collections.abc import Callable

from cloud.doctor import account_key, persist_records, store
from cloud.doctor.report import Context, Report

Check = Callable[[Context], Report]

CHECKS: tuple[Check, ...] = (store.check, persist_records.check, account_key.check)


def run_checks(context: Context, checks: tuple[Check, ...] = CHECKS) -> list[Report]:
    return [check(context) for check in checks]
