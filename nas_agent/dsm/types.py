"""Typed views of DSM's answers: discovery, login session, ``CRT.list`` entries (reference §2-§5).

Parsing is lenient where DSM varies (optional name fields, day padding in dates, absent
``signature_algorithm``) and strict where the client depends on a field (ids, flags, services).
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any, Mapping

from nas_agent.dsm.errors import DsmProtocolError

EXPORT_MEMBERS = ("cert.pem", "privkey.pem", "chain.pem")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


@dataclass(frozen=True)
class ApiInfo:
    """Where the APIs the client uses live, from ``SYNO.API.Info`` (never hard-coded)."""

    auth_path: str
    auth_min_version: int
    auth_max_version: int
    certificate_path: str
    crt_path: str
    service_path: str


@dataclass(frozen=True)
class Session:
    """A logged-in DSM session. The secrets stay out of ``repr`` so they never reach a log."""

    account: str
    auth_version: int
    sid: str = field(repr=False)
    synotoken: str | None = field(repr=False)
    # Set when this login remembered the device (an OTP login); store it for the next runs.
    device_id: str | None = field(repr=False)


@dataclass(frozen=True)
class CertName:
    common_name: str
    country: str = ""
    organization: str = ""
    city: str = ""
    department: str = ""
    email: str = ""
    state: str = ""
    sub_alt_name: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertService:
    service: str
    display_name: str
    subscriber: str
    owner: str
    is_pkg: bool
    # The object exactly as DSM listed it: Service.set must send it back unchanged.
    listed_json: str

    def as_listed(self) -> dict[str, Any]:
        return json.loads(self.listed_json)


@dataclass(frozen=True)
class Certificate:
    id: str
    desc: str
    is_default: bool
    is_broken: bool
    renewable: bool
    user_deletable: bool
    key_types: str
    signature_algorithm: str
    issuer: CertName
    subject: CertName
    valid_from: datetime.datetime | None
    valid_till: datetime.datetime | None
    services: tuple[CertService, ...]
    self_signed: bool


@dataclass(frozen=True)
class ImportResult:
    id: str
    # False is not a failure: DSM decides when to restart; confirm with a TLS handshake.
    restart_httpd: bool


def parse_dsm_time(text: str) -> datetime.datetime | None:
    """``Mar 16 15:49:37 2027 GMT`` (day zero- or space-padded) as an aware UTC datetime."""
    words = text.split()
    if len(words) != 5 or words[4] != "GMT" or words[0] not in _MONTHS:
        return None
    try:
        hour, minute, second = (int(p) for p in words[2].split(":"))
        return datetime.datetime(
            int(words[3]),
            _MONTHS[words[0]],
            int(words[1]),
            hour,
            minute,
            second,
            tzinfo=datetime.timezone.utc,
        )
    except ValueError:
        return None


def _require(obj: Mapping[str, Any], key: str, kind: type, where: str, url: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise DsmProtocolError(url, f"{where}: field {key!r} missing or not {kind.__name__}")
    return value


def _name(raw: Any) -> CertName:
    raw = raw if isinstance(raw, dict) else {}
    texts = {k: str(raw.get(k, "")) for k in ("common_name", "country", "organization", "city")}
    texts.update({k: str(raw.get(k, "")) for k in ("department", "email", "state")})
    alt = raw.get("sub_alt_name")
    return CertName(
        sub_alt_name=tuple(str(a) for a in alt) if isinstance(alt, list) else (), **texts
    )


def _service(raw: Any, url: str) -> CertService:
    if not isinstance(raw, dict):
        raise DsmProtocolError(url, "CRT.list: a services[] entry is not an object")
    return CertService(
        service=_require(raw, "service", str, "CRT.list services[]", url),
        display_name=str(raw.get("display_name", "")),
        subscriber=str(raw.get("subscriber", "")),
        owner=str(raw.get("owner", "")),
        is_pkg=bool(raw.get("isPkg", False)),
        listed_json=json.dumps(raw, separators=(",", ":"), sort_keys=True),
    )


def parse_certificates(data: Mapping[str, Any], url: str) -> tuple[Certificate, ...]:
    entries = data.get("certificates")
    if not isinstance(entries, list):
        raise DsmProtocolError(url, "CRT.list: no certificates array")
    out = []
    for raw in entries:
        if not isinstance(raw, dict):
            raise DsmProtocolError(url, "CRT.list: an entry is not an object")
        services = raw.get("services", [])
        out.append(
            Certificate(
                id=_require(raw, "id", str, "CRT.list", url),
                desc=_require(raw, "desc", str, "CRT.list", url),
                is_default=_require(raw, "is_default", bool, "CRT.list", url),
                is_broken=bool(raw.get("is_broken", False)),
                renewable=bool(raw.get("renewable", False)),
                user_deletable=bool(raw.get("user_deletable", False)),
                key_types=str(raw.get("key_types", "")),
                signature_algorithm=str(raw.get("signature_algorithm", "")),
                issuer=_name(raw.get("issuer")),
                subject=_name(raw.get("subject")),
                valid_from=parse_dsm_time(str(raw.get("valid_from", ""))),
                valid_till=parse_dsm_time(str(raw.get("valid_till", ""))),
                services=tuple(_service(s, url) for s in services)
                if isinstance(services, list)
                else (),
                self_signed="self_signed_cacrt_info" in raw,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class ExportedCertificate:
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes


def read_export_archive(data: bytes) -> ExportedCertificate:
    """Open what ``export`` returned, in the emulator's format: a zip of cert/privkey/chain.pem.

    Real DSM's archive format is not documented (reference §6.3), so the agent keeps its own
    copy of what it replaces for rollback and treats the export as an extra backup.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            cert, key, chain = (archive.read(name) for name in EXPORT_MEMBERS)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DsmProtocolError("export", f"not a cert/privkey/chain.pem zip ({exc})") from None
    return ExportedCertificate(cert, key, chain)
