"""The doctor's store check: the object store probed for the conditional writes that locks and
version reservations rely on (`cloud.store.conditional_writes`). It writes one probe object,
deletes it, and records nothing: the runs' own record is left as it is."""

from __future__ import annotations

from cloud.doctor.report import Context, Finding, Report
from cloud.errors import CertdropError, NoConditionalWrites
from cloud.store.conditional_writes import IF_MATCH, IF_NONE_MATCH, probe

TITLE = "object store: conditional writes (locks and version reservations rely on them)"


def check(context: Context) -> Report:
    try:
        store = context.store()
        result = probe(store)
    except CertdropError as exc:
        where = context.config.storage.store_url
        return Report(TITLE, (Finding(where, False, f"not probed: {exc} ({exc.code})"),))
    findings = []
    for write in (IF_NONE_MATCH, IF_MATCH):
        if write in result.accepted:
            text = (
                f"{write}: accepted, where it must be refused (412 Precondition Failed); runs "
                f"refuse this store ({NoConditionalWrites.code})"
            )
        else:
            text = f"{write}: refused (412 Precondition Failed)"
        findings.append(Finding(result.location, write not in result.accepted, text))
    return Report(TITLE, tuple(findings))
