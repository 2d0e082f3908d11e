"""``SYNO.Core.Certificate*``: list, import, export, set, delete, service binding (§4-§6)."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from typing import Any

from flask import Response, request

from .envelope import ApiFailure, success
from .pki import ILLEGAL_CERT, describe, validate_upload
from .recording import Incoming
from .state import Emulator
from .store import BAD_PARAMETER, Record, ServiceMove

UPLOAD_FAILED = 108
MISSING_PARAMETER = 114
UNSAFE_FILENAME = -8
_PROFILE_ONLY_SERVICE_FIELDS = ("multiple_cert", "user_setable")
EXPORT_MEMBERS = ("cert.pem", "privkey.pem", "chain.pem")


def _listed(record: Record, emu: Emulator) -> dict[str, Any]:
    services = []
    for service in record.services:
        shown = dict(service)
        if not emu.profile.service_extra_fields:
            for name in _PROFILE_ONLY_SERVICE_FIELDS:
                shown.pop(name, None)
        services.append(shown)
    entry: dict[str, Any] = {
        "desc": record.desc,
        "id": record.id,
        "is_broken": False,
        "is_default": record.is_default,
        "renewable": False,
        "services": services,
        "user_deletable": not record.is_default,
    }
    entry.update(describe(record.material.cert_pem, record.material.chain_pem, record.builtin))
    return entry


def list_certificates(emu: Emulator, incoming: Incoming, version: int) -> Response:
    emu.require_session(incoming)
    return success({"certificates": [_listed(r, emu) for r in emu.store.records()]})


def _as_default(value: str, any_value_true: bool) -> bool:
    if not value:
        return False
    return any_value_true or value.lower() in ("true", "1", "yes")


def _drop_connection() -> None:
    """Close the client's connection without an answer, as a crashing or rebooting DSM would."""
    sock = request.environ["werkzeug.socket"]
    sock.shutdown(socket.SHUT_RDWR)


def import_certificate(emu: Emulator, incoming: Incoming, version: int) -> Response:
    emu.require_session(incoming)
    if emu.profile.rejects_path_filenames and any(p.has_path for p in incoming.parts):
        raise ApiFailure(UPLOAD_FAILED, {"upload_err": UNSAFE_FILENAME})
    fail_code, drop = emu.controls.take_import_faults()
    if drop == "before_apply":
        _drop_connection()
        return Response(b"")
    if fail_code is not None:
        raise ApiFailure(fail_code)
    uploads: dict[str, bytes] = {p.name: p.data for p in incoming.parts}
    fields = {p.name: p.data.decode("utf-8", "replace") for p in incoming.parts}
    material = validate_upload(
        uploads.get("cert", b""),
        uploads.get("key", b""),
        uploads.get("inter_cert", b""),
        emu.profile.accepts_ec_keys,
    )
    as_default = _as_default(
        fields.get("as_default", ""), emu.controls.faults.as_default_any_value_true
    )
    cert_id, touched_default = emu.store.import_certificate(
        material, fields.get("id", ""), fields.get("desc"), as_default
    )
    emu.store_changed()
    if drop == "after_apply":
        _drop_connection()
        return Response(b"")
    return success({"id": cert_id, "restart_httpd": touched_default})


def export_certificate(emu: Emulator, incoming: Incoming, version: int) -> Response:
    """Emulator choice for the unknown archive format: a zip of cert.pem, privkey.pem, chain.pem."""
    emu.require_session(incoming)
    record = emu.store.get(incoming.param("id") or "")
    if record is None:
        raise ApiFailure(ILLEGAL_CERT)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        contents = (record.material.cert_pem, record.material.key_pem, record.material.chain_pem)
        for member, text in zip(EXPORT_MEMBERS, contents):
            archive.writestr(member, text)
    return Response(
        buffer.getvalue(),
        status=200,
        content_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="archive.zip"'},
    )


def _moves(settings: str) -> list[ServiceMove]:
    try:
        entries = json.loads(settings)
    except ValueError:
        raise ApiFailure(BAD_PARAMETER) from None
    moves = []
    for entry in entries if isinstance(entries, list) else [None]:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("service"), dict)
            and isinstance(entry["service"].get("service"), str)
            and isinstance(entry.get("old_id"), str)
            and isinstance(entry.get("id"), str)
        ):
            raise ApiFailure(BAD_PARAMETER)
        moves.append(ServiceMove(entry["service"], entry["old_id"], entry["id"]))
    return moves


def set_services(emu: Emulator, incoming: Incoming, version: int) -> Response:
    emu.require_session(incoming)
    settings = incoming.param("settings")
    if settings is None:
        raise ApiFailure(MISSING_PARAMETER)
    emu.store.bind(_moves(settings), emu.profile.same_id_binding_removes)
    emu.store_changed()
    return success()


def _json_text(value: str) -> str:
    """A parameter of a ``requestFormat: JSON`` API: JSON-quoted as N4S4 sends it, or bare."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value  # emulator choice, the lenient reading: a bare string is taken as it is
    return decoded if isinstance(decoded, str) else value


def set_certificate(emu: Emulator, incoming: Incoming, version: int) -> Response:
    """``CRT.set`` with ``id``, ``desc`` and ``as_default`` ([N4S4], §6.2 [one]).

    N4S4 sends ``as_default=true&desc=""&id="<id>"`` to make a certificate default; [YCHIU]
    confirmed the method exists on DSM 7.3. Emulator choices for what no source shows: the
    values apply as an import's do (``desc`` stored verbatim when present, any non-empty
    ``as_default`` under the ``as_default_any_value_true`` fault), and the answer has no data.
    """
    emu.require_session(incoming)
    cert_id = _json_text(incoming.param("id") or "")
    if not cert_id:
        raise ApiFailure(MISSING_PARAMETER)
    desc = incoming.param("desc")
    as_default = _as_default(
        _json_text(incoming.param("as_default") or ""),
        emu.controls.faults.as_default_any_value_true,
    )
    emu.store.update(cert_id, None if desc is None else _json_text(desc), as_default)
    emu.store_changed()
    return success()


def _ids(text: str) -> list[str]:
    # An empty array is not refused: it deletes nothing (DSM's answer is unknown; lenient).
    try:
        ids = json.loads(text)
    except ValueError:
        raise ApiFailure(BAD_PARAMETER) from None
    if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise ApiFailure(BAD_PARAMETER)
    return ids


def delete_certificates(emu: Emulator, incoming: Incoming, version: int) -> Response:
    """``CRT.delete`` with ``ids``, a JSON array of certificate ids ([N4S4], [YCHIU]; §6.2)."""
    emu.require_session(incoming)
    ids = incoming.param("ids")
    if ids is None:
        raise ApiFailure(MISSING_PARAMETER)
    emu.store.delete(_ids(ids))
    emu.store_changed()
    return success()
