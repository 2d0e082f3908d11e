"""An agent's status report as the fleet's view believes it: read with a size cap, its signature
checked, and the type of every field it holds checked before anything is taken from it.

Each agent writes `agents/<id>/status.json` itself (`nas_agent.status` documents the format), so
for everything that reads the fleet it is untrusted input. A report larger than
`MAX_REPORT_BYTES` (refused unread), not JSON, not signed by the agent, or holding a field of
another type than documented raises StatusReportInvalid naming what is wrong: its own agent then
shows as "report invalid", and nothing else is affected. Fields older agents did not send may be
absent; unknown fields are ignored (a later agent may send more).

When the agent says it reported (`seen_at`) is believed up to when the store says the report
was written, and never later than now: a clock running ahead, or a report claiming the future,
cannot keep a silent agent from counting as quiet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.errors import ObjectTooLarge
from cloud.store import Store, StoredObject
from nas_agent import store_layout
from nas_agent._encoding import parse_timestamp
from nas_agent.errors import UNKNOWN_CODE, StatusReportInvalid
from nas_agent.legacy_error_kinds import code_for_kind
from nas_agent.status import MAX_REPORT_BYTES, STATUS_FORMAT, verify_status

_Check = Callable[[Any], bool]
_MAX_POLL_INTERVAL = 366 * 86400.0  # an agent reporting less than yearly is a broken one

__all__ = ["MAX_REPORT_BYTES", "AgentReport", "ErrorEntry", "Installed", "load_report"]


@dataclass(frozen=True)
class ErrorEntry:
    code: str  # the error's code; from the class an older agent named, or "unknown"
    message: str


@dataclass(frozen=True)
class Installed:
    version: int
    fingerprint: str
    not_after: datetime


@dataclass(frozen=True)
class AgentReport:
    seen_at: datetime  # never later than the store's write time, nor than now
    poll_interval: float | None  # seconds; None when the report does not say
    dsm_version: str | None
    sites: Mapping[str, Installed]
    last_error: ErrorEntry | None
    site_errors: Mapping[str, ErrorEntry]
    failing: bool
    frozen: bool  # its index expired: nothing new can be installed (agents since index v2)
    # Sites its index holds and its agent.conf has no [site:] section for: never installed.
    unconfigured_sites: tuple[str, ...] = ()


def load_report(
    store: Store, agent_id: str, public_key: ed25519.Ed25519PublicKey, now: datetime
) -> AgentReport | None:
    """The agent's report, or None when it has written none. Raises StatusReportInvalid for a
    report that is not believed, StoreError when the store cannot be read."""
    key = store_layout.agent_status(agent_id)
    try:
        found = store.get(key, max_bytes=MAX_REPORT_BYTES)
    except ObjectTooLarge as exc:
        size = f"{exc.size} bytes, " if exc.size is not None else ""
        raise StatusReportInvalid(
            f"it has {size}more than the {MAX_REPORT_BYTES} bytes a report may have"
        ) from exc
    if not isinstance(found, StoredObject):
        return None
    report = verify_status(found.body, agent_id=agent_id, public_key=public_key)
    return parse_report(report, written_at=found.modified, now=now)


def parse_report(
    report: Mapping[str, Any], *, written_at: datetime | None, now: datetime
) -> AgentReport:
    """The fields of a report whose signature was checked, each of its documented type."""
    _optional(report, "format", lambda v: v == STATUS_FORMAT, f'"{STATUS_FORMAT}"')
    _optional(report, "agent", _is_str, "a string")
    seen = _timestamp(report.get("seen_at"), "seen_at")
    interval = _optional(
        report, "poll_interval_s", _is_interval, "a number of seconds, 1 to a year"
    )
    dsm = _optional(report, "dsm_version", _is_str, "a string or null", nullable=True)
    sites = _table(report, "sites", _installed)
    last_error = _error(report["last_error"], "last_error") if "last_error" in report else None
    site_errors = _table(report, "site_errors", _error)
    _optional(report, "last_success", _is_timestamp, "a timestamp or null", nullable=True)
    unconfigured = _optional(report, "unconfigured_sites", _is_str_list, "a list of strings")
    if report.get("dsm_check") is not None:
        _dsm_check(report["dsm_check"])
    failing = _optional(report, "failing", lambda v: isinstance(v, bool), "true or false")
    frozen = _optional(report, "frozen", lambda v: isinstance(v, bool), "true or false")
    bounds = [moment for moment in (written_at, now) if moment is not None]
    return AgentReport(
        seen_at=min([seen, *bounds]),
        poll_interval=float(interval) if interval is not None else None,
        dsm_version=dsm,
        sites=sites,
        last_error=last_error,
        site_errors=site_errors,
        failing=bool(failing),
        frozen=bool(frozen),
        unconfigured_sites=tuple(unconfigured or ()),
    )


def _installed(raw: Any, where: str) -> Installed:
    entry = _object(raw, where)
    version = entry.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise _invalid(f"{where}.version", "a whole number", version)
    fingerprint = entry.get("fingerprint")
    if not isinstance(fingerprint, str):
        raise _invalid(f"{where}.fingerprint", "a string", fingerprint)
    not_after = _timestamp(entry.get("not_after"), f"{where}.not_after")
    _optional(entry, "installed_at", _is_timestamp, "a timestamp", where=where)
    return Installed(version, fingerprint, not_after)


def _error(raw: Any, where: str) -> ErrorEntry | None:
    """An error as agents write it; reports from before codes name its class ("kind")."""
    if raw is None:
        return None
    error = _object(raw, where)
    code = _optional(error, "code", _is_str, "a string", where=where)
    kind = _optional(error, "kind", _is_str, "a string", where=where)
    message = _optional(error, "message", _is_str, "a string", where=where)
    _optional(error, "at", _is_timestamp, "a timestamp", where=where)
    _optional(error, "site", _is_str, "a string or null", where=where, nullable=True)
    if code is None:
        code = code_for_kind(kind) if kind is not None else UNKNOWN_CODE
    return ErrorEntry(code, message or "")


def _dsm_check(raw: Any) -> None:
    check = _object(raw, "dsm_check")
    _timestamp(check.get("at"), "dsm_check.at")
    if "error" in check:
        _error(check["error"], "dsm_check.error")


def _table(report: Mapping[str, Any], name: str, read: Callable[[Any, str], Any]) -> dict[str, Any]:
    """A field holding an object of site ids to entries, each read by `read` (None left out)."""
    raw = report.get(name)
    if raw is None and name not in report:
        return {}
    entries = _object(raw, name)
    read_entries = {site: read(value, f"{name}.{site}") for site, value in entries.items()}
    return {site: entry for site, entry in read_entries.items() if entry is not None}


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _invalid(where, "an object", raw)
    return raw


def _timestamp(raw: Any, where: str) -> datetime:
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise _invalid(where, "a YYYY-MM-DDTHH:MM:SSZ timestamp", raw) from None


def _optional(
    raw: Mapping[str, Any],
    name: str,
    check: _Check,
    expected: str,
    *,
    where: str = "",
    nullable: bool = False,
) -> Any:
    """The field's value (None when absent, or null and `nullable`), once `check` accepts it."""
    if name not in raw or (nullable and raw[name] is None):
        return None
    value = raw[name]
    if not check(value):
        raise _invalid(f"{where}.{name}" if where else name, expected, value)
    return value


def _invalid(field: str, expected: str, value: Any) -> StatusReportInvalid:
    shown = "null or missing" if value is None else f"{type(value).__name__} {_short(value)}"
    return StatusReportInvalid(f"{field} must be {expected}, not {shown}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_interval(value: Any) -> bool:
    number = _is_int(value) or (isinstance(value, float) and math.isfinite(value))
    return number and 1 <= value <= _MAX_POLL_INTERVAL


def _is_timestamp(value: Any) -> bool:
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
