# Over 300 lines: one file format, its fields, their checks and the helpers that build them.
"""The agent's local state: one small JSON file, replaced atomically, readable by its user only.

    {"format": "certdrop-agent-state-v1",
     "sites": {"example.com": {"version": 7, "fingerprint": "<sha256 hex of the leaf DER>",
                               "not_after": "2027-01-31T12:00:00Z", "dsm_certificate_id": "Ab12",
                               "installed_at": "2026-11-28T12:00:00Z"}},
     "last_success": "2026-11-28T12:00:00Z",
     "last_error": {"code": "source.unavailable", "message": "...", "at": "...", "site": null},
     "failed_last": false,
     "site_errors": {"shop": {"code": "bundle.names_not_covered", "message": "...", "at": "...",
                              "site": "shop"}},
     "index_etag": "\\"9b2c...\\"", "index_scope": "<sha256 hex>",
     "unconfigured_sites": ["blog"],
     "dsm_check": {"at": "2026-11-28T12:00:00Z", "basis": "<sha256 hex>", "error": null,
                   "transient": false},
     "dsm_version": "DSM 7.2.1-69057 Update 5",
     "index": {"issued_at": "...", "expires_at": "...", "v2_seen": true,
               "trust": {"anchor_key_id": "<16 hex>", "sequence": 1, "key_id": "<16 hex>",
                         "anchor_sequence": 0}},
     "key_requests": {"issued_at": "...", "sites": [{"site": "example.com",
                      "names": ["example.com"], "key_type": "ec-p256"}]},
     "key_requests_read_under": "<issued_at of the index it was last read under>"}

`AgentState` is a frozen value; `with_*` helpers return a changed copy, so a cycle builds the new
state and saves it once. Timestamps are UTC whole seconds. The installed version of each site is
what refuses replays (`verify_entry(installed_version=...)`).

`index_etag` is what the next poll sends as If-None-Match: record it only once every entry of
that index was handled (installed, up to date, or refused for good). Saved earlier, a failed
install would not be retried until the cloud published again. `index_scope` names the
configuration it was handled under (`nas_agent.config.digest.index_scope`): under another one
(a site added, a site id corrected) the ETag is not sent and the index is read again.
`unconfigured_sites` are the sites that index holds entries for but agent.conf does not name.

`index` is what the agent last accepted of a v2 index (`nas_agent.bundle.index`): its signed
issue time (an index signed earlier is refused: a rollback), its expiry (re-checked when the
source answers "not modified": past it the agent is frozen), that v2 was seen (v1 is never read
again), and the issuer key it follows through the key rotations (`nas_agent.bundle.rotation`).
Each installed site also names the key that signed its index (`signed_by`): the version
ratchet holds against that key only, so a rotation resets what a retired key signed (TUF's
fast-forward attack).

`key_requests` are the issuer's key requests the agent last accepted (`nas_agent.custody`):
the sites it makes keys and CSRs for, and their signed issue time (an older document is refused:
a rollback). `key_requests_read_under` is the issue time of the index under which the document
was last read, found or absent: under another index (or with none recorded, after an upgrade)
the index is read again, and the requests with it. The keys themselves are not in this file
(`nas_agent.custody.key_store`).

`dsm_check` is the agent's latest DSM login, a scheduled credential check or an install's login
(`nas_agent.credential_check`): when, under which `basis` (configuration and credential files),
and the error if DSM refused it; it stays until the next login, and while it holds an error the
agent is `failing`.

Errors are recorded by their stable code (`nas_agent.errors`). `last_error` is the newest of
all; `site_errors` holds each site whose latest attempt failed, and loses a site once it is
installed, up to date or no longer configured. A file written before codes holds "kind" (the
class name) instead: it is read, and the name mapped to its code (`nas_agent.legacy_error_kinds`).
`nas_agent.status` renders the state as the report the agent writes back to its source.

A missing file is an empty state. A damaged one raises StateCorrupt telling the user to move it
aside; the caller may go on with an empty state instead: the agent then reinstalls each site's
current bundle once, which is safe, and a replay of an older bundle is still refused once the
first install is recorded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from nas_agent._atomic import write_atomic
from nas_agent._encoding import format_timestamp, load_json_object, parse_timestamp
from nas_agent.bundle.key_requests import KeyRequest
from nas_agent.bundle.rotation import IssuerTrust
from nas_agent.errors import IndexExpired, StateCorrupt, StateUnwritable
from nas_agent.ids import is_site_id
from nas_agent.legacy_error_kinds import code_for_kind

STATE_FORMAT = "certdrop-agent-state-v1"
MAX_STATE_BYTES = 1024 * 1024
MAX_ERROR_MESSAGE = 2000  # characters kept of an error's text: enough to act on, state stays small
_FILE_MODE = 0o600
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class InstalledSite:
    version: int
    fingerprint: str  # hex SHA-256 of the leaf certificate's DER
    not_after: datetime
    dsm_certificate_id: str
    installed_at: datetime
    signed_by: str | None = None  # the issuer key id of the index it came from; None: older


@dataclass(frozen=True)
class IndexSeen:
    """The last v2 index accepted."""

    issued_at: datetime
    expires_at: datetime
    trust: IssuerTrust


@dataclass(frozen=True)
class KeyRequestsHeld:
    """The key requests last accepted."""

    issued_at: datetime
    sites: tuple[KeyRequest, ...]

    def request(self, site: str) -> KeyRequest | None:
        for candidate in self.sites:
            if candidate.site == site:
                return candidate
        return None


@dataclass(frozen=True)
class LastError:
    code: str  # the error's stable code, e.g. "source.unavailable", "bundle.names_not_covered"
    message: str
    at: datetime
    site: str | None = None


@dataclass(frozen=True)
class DsmCheck:
    """The agent's latest DSM login: a scheduled credential check, or the login of an install."""

    at: datetime
    basis: str  # `credential_check.credentials_basis` when it was made
    error: LastError | None = None  # None: DSM accepted the login
    transient: bool = False  # the error may pass by itself (DSM unreachable): check next run


@dataclass(frozen=True)
class AgentState:
    sites: Mapping[str, InstalledSite] = field(default_factory=lambda: MappingProxyType({}))
    last_success: datetime | None = None
    last_error: LastError | None = None
    # Whether the latest of the two was the error: by the order they happened in, not by their
    # times, which a clock set back would reorder. None in a file from before (times decide).
    failed_last: bool | None = None
    site_errors: Mapping[str, LastError] = field(default_factory=lambda: MappingProxyType({}))
    index_etag: str | None = None
    index_scope: str | None = None  # the configuration index_etag was recorded under
    unconfigured_sites: tuple[str, ...] = ()  # in the index, not in agent.conf
    dsm_check: DsmCheck | None = None
    dsm_version: str | None = None
    index: IndexSeen | None = None
    key_requests: KeyRequestsHeld | None = None
    key_requests_read_under: datetime | None = None

    def installed(self, site: str) -> InstalledSite | None:
        return self.sites.get(site)

    def installed_version(self, site: str, signer: str | None = None) -> int | None:
        """The version installed, when it came from an index `signer` signed (or from before
        signers were recorded): a version ratchet does not outlive the key that set it."""
        installed = self.sites.get(site)
        if installed is None:
            return None
        if signer is not None and installed.signed_by not in (None, signer):
            return None
        return installed.version

    @property
    def frozen(self) -> bool:
        """The last error is the index's expiry (nothing newer can be verified)."""
        return (
            self.failing
            and self.last_error is not None
            and self.last_error.code == (IndexExpired.code)
        )

    @property
    def failing(self) -> bool:
        """The last error came after the last success (or there was never a success), or DSM
        refused the agent's latest login."""
        if self.dsm_check is not None and self.dsm_check.error is not None:
            return True
        if self.last_error is None:
            return False
        if self.failed_last is not None:
            return self.failed_last
        return self.last_success is None or self.last_error.at >= self.last_success

    def with_installed(
        self,
        site: str,
        *,
        version: int,
        fingerprint: str,
        not_after: datetime,
        dsm_certificate_id: str,
        installed_at: datetime,
        signed_by: str | None = None,
    ) -> AgentState:
        installed = InstalledSite(
            version,
            fingerprint,
            _whole(not_after),
            dsm_certificate_id,
            _whole(installed_at),
            signed_by,
        )
        _check_site(site, installed)
        sites = dict(self.sites)
        sites[site] = installed
        return dataclasses.replace(self, sites=MappingProxyType(sites))

    def with_error(
        self, code: str, message: str, at: datetime, site: str | None = None
    ) -> AgentState:
        error = LastError(code, message[:MAX_ERROR_MESSAGE], _whole(at), site)
        if site is None:
            return dataclasses.replace(self, last_error=error, failed_last=True)
        site_errors = dict(self.site_errors)
        site_errors[site] = error
        return dataclasses.replace(
            self, last_error=error, failed_last=True, site_errors=MappingProxyType(site_errors)
        )

    def with_site_errors_of(self, failed: Iterable[str]) -> AgentState:
        """Keeps the errors of the sites in `failed` only: every other site was installed, is up
        to date, or is no longer configured."""
        kept = {site: self.site_errors[site] for site in failed if site in self.site_errors}
        return dataclasses.replace(self, site_errors=MappingProxyType(kept))

    def with_success(self, at: datetime) -> AgentState:
        """A cycle that ended well; the last error stays on record (see `failing`)."""
        return dataclasses.replace(self, last_success=_whole(at), failed_last=False)

    def with_index_etag(self, etag: str | None, scope: str | None = None) -> AgentState:
        return dataclasses.replace(self, index_etag=etag, index_scope=scope)

    def with_unconfigured_sites(self, sites: Iterable[str]) -> AgentState:
        return dataclasses.replace(self, unconfigured_sites=tuple(sorted(set(sites))))

    def with_dsm_check(
        self,
        at: datetime,
        basis: str,
        *,
        code: str | None = None,
        message: str = "",
        transient: bool = False,
    ) -> AgentState:
        """A DSM login: accepted when `code` is None, else refused or failed with that code."""
        moment = _whole(at)
        error = None if code is None else LastError(code, message[:MAX_ERROR_MESSAGE], moment)
        check = DsmCheck(moment, basis, error, transient and error is not None)
        return dataclasses.replace(self, dsm_check=check)

    def with_dsm_version(self, version: str | None) -> AgentState:
        return dataclasses.replace(self, dsm_version=version)

    def with_key_requests(
        self, held: KeyRequestsHeld | None, read_under: datetime | None
    ) -> AgentState:
        """The requests accepted (None: none ever), read under the index issued at
        `read_under`."""
        if held is not None:
            held = KeyRequestsHeld(_whole(held.issued_at), held.sites)
        return dataclasses.replace(
            self,
            key_requests=held,
            key_requests_read_under=None if read_under is None else _whole(read_under),
        )

    def with_index(self, seen: IndexSeen) -> AgentState:
        return dataclasses.replace(
            self,
            index=IndexSeen(_whole(seen.issued_at), _whole(seen.expires_at), seen.trust),
        )


def load_state(path: str) -> AgentState:
    """The state saved at `path`; an empty one if there is no file. Raises StateCorrupt."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return AgentState()
    except OSError as exc:
        raise StateCorrupt(path, f"cannot read ({exc.strerror})") from exc
    return decode_state(data, path)


def save_state(path: str, state: AgentState) -> None:
    """Replace the file at `path` atomically, mode 0600. Raises StateUnwritable."""
    try:
        write_atomic(path, encode_state(state), mode=_FILE_MODE)
    except OSError as exc:
        raise StateUnwritable(path, f"cannot save ({exc.strerror})") from exc


def encode_state(state: AgentState) -> bytes:
    document = {
        "format": STATE_FORMAT,
        "sites": {site: _site_json(installed) for site, installed in sorted(state.sites.items())},
        "last_success": _time_or_none(state.last_success),
        "last_error": error_json(state.last_error),
        "failed_last": state.failed_last,
        "site_errors": {site: error_json(e) for site, e in state.site_errors.items()},
        "index_etag": state.index_etag,
        "index_scope": state.index_scope,
        "unconfigured_sites": list(state.unconfigured_sites),
        "dsm_check": _check_json(state.dsm_check),
        "dsm_version": state.dsm_version,
        "index": _index_json(state.index),
        "key_requests": _key_requests_json(state.key_requests),
        "key_requests_read_under": _time_or_none(state.key_requests_read_under),
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def decode_state(data: bytes, path: str = "(state)") -> AgentState:
    """Read the bytes of a state file; every field is checked. Raises StateCorrupt."""
    try:
        document = load_json_object(data, max_size=MAX_STATE_BYTES)
        if document.get("format") != STATE_FORMAT:
            raise ValueError(f"format {document.get('format')!r} is not {STATE_FORMAT}")
        sites = _object(document, "sites")
        state = AgentState(
            sites=MappingProxyType({str(k): _site(k, v) for k, v in sites.items()}),
            last_success=_optional_time(document.get("last_success")),
            last_error=_error(document.get("last_error")),
            failed_last=_optional_bool(document, "failed_last"),
            site_errors=_site_errors(document.get("site_errors")),
            index_etag=_optional_text(document, "index_etag"),
            index_scope=_optional_text(document, "index_scope"),
            unconfigured_sites=_site_ids(document.get("unconfigured_sites")),
            dsm_check=_check(document.get("dsm_check")),
            dsm_version=_optional_text(document, "dsm_version"),
            index=_index(document.get("index")),
            key_requests=_key_requests(document.get("key_requests")),
            key_requests_read_under=_optional_time(document.get("key_requests_read_under")),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise StateCorrupt(path, f"not a state file this agent can read ({exc})") from exc
    return state


def error_json(error: LastError | None) -> dict[str, Any] | None:
    """A recorded error as the state file and the status report both write it."""
    if error is None:
        return None
    return {
        "code": error.code,
        "message": error.message,
        "at": format_timestamp(error.at),
        "site": error.site,
    }


def _check_json(check: DsmCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "at": format_timestamp(check.at),
        "basis": check.basis,
        "error": error_json(check.error),
        "transient": check.transient,
    }


def _whole(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("state timestamps must be timezone-aware")
    return moment.replace(microsecond=0)


def _check_site(site: object, installed: InstalledSite) -> None:
    if not is_site_id(site):
        raise ValueError(f"{site!r} is not a site id")
    if type(installed.version) is not int or installed.version < 1:
        raise ValueError(f"version {installed.version!r} is not a positive integer")
    fingerprint = installed.fingerprint
    if not isinstance(fingerprint, str) or len(fingerprint) != 64 or set(fingerprint) - _HEX:
        raise ValueError("fingerprint is not 64 lower-case hex digits")
    if not isinstance(installed.dsm_certificate_id, str) or not installed.dsm_certificate_id:
        raise ValueError("dsm_certificate_id is empty")


def _site_json(installed: InstalledSite) -> dict[str, Any]:
    return {
        "version": installed.version,
        "fingerprint": installed.fingerprint,
        "not_after": format_timestamp(installed.not_after),
        "dsm_certificate_id": installed.dsm_certificate_id,
        "installed_at": format_timestamp(installed.installed_at),
        "signed_by": installed.signed_by,
    }


def _index_json(seen: IndexSeen | None) -> dict[str, Any] | None:
    if seen is None:
        return None
    return {
        "issued_at": format_timestamp(seen.issued_at),
        "expires_at": format_timestamp(seen.expires_at),
        "v2_seen": True,
        "trust": {
            "anchor_key_id": seen.trust.anchor_key_id,
            "sequence": seen.trust.sequence,
            "key_id": seen.trust.key_id,
            "anchor_sequence": seen.trust.anchor_sequence,
        },
    }


def _index(raw: Any) -> IndexSeen | None:
    if raw is None:  # a file written before index v2
        return None
    if not isinstance(raw, dict) or raw.get("v2_seen") is not True:
        raise ValueError("index is not an object with v2_seen true")
    trust = _object(raw, "trust")
    sequence = _whole_number(trust.get("sequence"), "index.trust.sequence")
    anchor_sequence = _whole_number(trust.get("anchor_sequence", 0), "index.trust.anchor_sequence")
    return IndexSeen(
        issued_at=parse_timestamp(raw["issued_at"]),
        expires_at=parse_timestamp(raw["expires_at"]),
        trust=IssuerTrust(
            _text(trust, "anchor_key_id"), sequence, _text(trust, "key_id"), anchor_sequence
        ),
    )


def _key_requests_json(held: KeyRequestsHeld | None) -> dict[str, Any] | None:
    if held is None:
        return None
    return {
        "issued_at": format_timestamp(held.issued_at),
        "sites": [request.to_json() for request in held.sites],
    }


def _key_requests(raw: Any) -> KeyRequestsHeld | None:
    if raw is None:  # a file written before agent custody, or no requests accepted yet
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("sites"), list):
        raise ValueError("key_requests is not an object with a sites list")
    sites = []
    for item in raw["sites"]:
        names = item["names"]
        if not is_site_id(item["site"]) or not all(isinstance(n, str) for n in names):
            raise ValueError("key_requests.sites holds an entry that is not a key request")
        sites.append(KeyRequest(item["site"], tuple(names), _text(item, "key_type")))
    return KeyRequestsHeld(parse_timestamp(raw["issued_at"]), tuple(sites))


def _site(site: str, raw: Any) -> InstalledSite:
    if not isinstance(raw, dict):
        raise ValueError(f"sites.{site} is not an object")
    installed = InstalledSite(
        version=raw["version"],
        fingerprint=raw["fingerprint"],
        not_after=parse_timestamp(raw["not_after"]),
        dsm_certificate_id=raw["dsm_certificate_id"],
        installed_at=parse_timestamp(raw["installed_at"]),
        signed_by=_optional_text(raw, "signed_by"),
    )
    _check_site(site, installed)
    return installed


def _error(raw: Any) -> LastError | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("last_error is not an object")
    # Written before codes: the class name instead.
    code = _text(raw, "code") if "code" in raw else code_for_kind(_text(raw, "kind"))
    return LastError(
        code=code,
        message=_text(raw, "message"),
        at=parse_timestamp(raw["at"]),
        site=_optional_text(raw, "site"),
    )


def _site_errors(raw: Any) -> Mapping[str, LastError]:
    if raw is None:  # a file written before per-site errors
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise ValueError("site_errors is not an object")
    errors: dict[str, LastError] = {}
    for site, value in raw.items():
        error = _error(value)
        if error is None or error.site != site:
            raise ValueError("site_errors holds an entry that is not an error of its site")
        errors[site] = error
    return MappingProxyType(errors)


def _whole_number(raw: Any, name: str) -> int:
    if type(raw) is not int or raw < 0:
        raise ValueError(f"{name} is not a whole number")
    return raw


def _site_ids(raw: Any) -> tuple[str, ...]:
    if raw is None:  # a file written before unconfigured sites were noted
        return ()
    if not isinstance(raw, list) or not all(is_site_id(site) for site in raw):
        raise ValueError("unconfigured_sites is not a list of site ids")
    return tuple(sorted(set(raw)))


def _check(raw: Any) -> DsmCheck | None:
    if raw is None:  # a file written before credential checks
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("transient"), bool):
        raise ValueError("dsm_check is not an object with transient true or false")
    error = _error(raw.get("error"))
    return DsmCheck(
        at=parse_timestamp(raw["at"]),
        basis=_text(raw, "basis"),
        error=error,
        transient=raw["transient"] and error is not None,
    )


def _object(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return value


def _text(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    return value


def _optional_text(document: Mapping[str, Any], key: str) -> str | None:
    return None if document.get(key) is None else _text(document, key)


def _optional_bool(document: Mapping[str, Any], key: str) -> bool | None:
    value = document.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{key} is not true, false or null")
    return value


def _time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _optional_time(raw: Any) -> datetime | None:
    return None if raw is None else parse_timestamp(raw)
