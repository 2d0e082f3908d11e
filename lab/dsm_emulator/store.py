"""The emulated certificate store: certificates, descriptions, the default flag and service
bindings, persisted as one JSON file in the data directory (written atomically, mode 0600
because it holds private keys, as DSM's own ``_archive`` does).

Every mutation builds the new state completely before anything is written, so a refused
import leaves the store exactly as it was (case 31).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import secrets
import string
import threading
from dataclasses import dataclass
from typing import Any, Callable, Collection, Sequence

from .envelope import ApiFailure
from .pki import ILLEGAL_CERT, Material, builtin_material

STORE_FILE = "certificates.json"
# A JSON parameter that does not parse or has the wrong shape (ProtoThis/python-synology#163).
BAD_PARAMETER = 5503
# Emulator choice: DSM lists its default certificate as user_deletable:false, and what it answers
# to a delete anyway is unknown; 105 is its common "permission denied" code.
UNDELETABLE = 105
_FORMAT = 1
_ID_ALPHABET = string.ascii_letters + string.digits

# The services DSM binds to its factory certificate; the extra bools appear only on DSM 7.
_FACTORY_SERVICES = (
    {
        "display_name": "DSM Desktop Service",
        "display_name_i18n": "common:web_desktop",
        "isPkg": False,
        "multiple_cert": True,
        "owner": "root",
        "service": "default",
        "subscriber": "system",
        "user_setable": True,
    },
    {
        "display_name": "FTPS",
        "isPkg": False,
        "multiple_cert": False,
        "owner": "root",
        "service": "ftpd",
        "subscriber": "smbftpd",
        "user_setable": True,
    },
    {
        "display_name": "nas.example.test",
        "isPkg": False,
        "multiple_cert": False,
        "owner": "root",
        "service": "ReverseProxy_1",
        "subscriber": "reverse_proxy",
        "user_setable": True,
    },
)
DEFAULT_SERVICE = "default"


@dataclass(frozen=True)
class Record:
    id: str
    desc: str
    is_default: bool
    builtin: bool
    material: Material
    services: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ServiceMove:
    service: dict[str, Any]
    old_id: str
    new_id: str


def _to_json(record: Record) -> dict[str, Any]:
    out = dataclasses.asdict(record)
    out["services"] = list(record.services)
    return out


def _from_json(raw: dict[str, Any]) -> Record:
    return Record(
        id=raw["id"],
        desc=raw["desc"],
        is_default=raw["is_default"],
        builtin=raw["builtin"],
        material=Material(**raw["material"]),
        services=tuple(raw["services"]),
    )


def _without_service(services: Sequence[dict[str, Any]], name: str) -> tuple[dict[str, Any], ...]:
    return tuple(s for s in services if s["service"] != name)


class CertStore:
    def __init__(self, data_dir: str, clock: Callable[[], float]) -> None:
        self._path = os.path.join(data_dir, STORE_FILE)
        self._lock = threading.Lock()
        if os.path.exists(self._path):
            with open(self._path, encoding="utf-8") as fh:
                self._records = tuple(_from_json(r) for r in json.load(fh)["certificates"])
        else:
            now = datetime.datetime.fromtimestamp(clock(), datetime.timezone.utc)
            factory = Record(
                id=self._new_id(()),
                desc="",
                is_default=True,
                builtin=True,
                material=builtin_material(now),
                services=tuple(dict(s) for s in _FACTORY_SERVICES),
            )
            self._save((factory,))

    def records(self) -> tuple[Record, ...]:
        with self._lock:
            return self._records

    def get(self, cert_id: str) -> Record | None:
        return next((r for r in self.records() if r.id == cert_id), None)

    def served(self) -> Record:
        """The certificate of DSM's web server: the one bound to ``default``, else the default."""
        records = self.records()
        for record in records:
            if any(s["service"] == DEFAULT_SERVICE for s in record.services):
                return record
        return next(r for r in records if r.is_default)

    def import_certificate(
        self, material: Material, cert_id: str, desc: str | None, as_default: bool
    ) -> tuple[str, bool]:
        """Create (empty ``cert_id``) or replace; return (id, whether the default was touched)."""
        with self._lock:
            records = list(self._records)
            if cert_id:
                index = next((i for i, r in enumerate(records) if r.id == cert_id), None)
                if index is None:
                    raise ApiFailure(ILLEGAL_CERT)  # emulator choice for an unknown id
                old = records[index]
                target = dataclasses.replace(
                    old,
                    material=material,
                    builtin=False,
                    desc=old.desc if desc is None else desc,
                )
                records[index] = target
                touched_default = old.is_default
            else:
                target = Record(self._new_id(records), desc or "", False, False, material, ())
                records.append(target)
                touched_default = False
            if as_default and not target.is_default:
                records = self._moved_default(records, target.id)
                touched_default = True
            self._save(tuple(records))
            return target.id, touched_default

    def update(self, cert_id: str, desc: str | None, as_default: bool) -> None:
        """Apply ``CRT.set``: a new description (None keeps it) and maybe the default flag, as
        an import would."""
        with self._lock:
            records = list(self._records)
            index = next((i for i, r in enumerate(records) if r.id == cert_id), None)
            if index is None:
                raise ApiFailure(ILLEGAL_CERT)  # emulator choice for an unknown id, as on import
            old = records[index]
            if desc is not None:
                records[index] = dataclasses.replace(old, desc=desc)
            if as_default and not old.is_default:
                records = self._moved_default(records, cert_id)
            self._save(tuple(records))

    def bind(self, moves: Sequence[ServiceMove], same_id_removes: bool) -> None:
        """Apply ``Service.set``: each service leaves ``old_id`` and joins ``new_id``."""
        with self._lock:
            records = list(self._records)
            known = {r.id for r in records}
            if any(m.old_id not in known or m.new_id not in known for m in moves):
                raise ApiFailure(BAD_PARAMETER)  # emulator choice; DSM's answer is unknown
            for move in moves:
                name = move.service["service"]
                if move.old_id == move.new_id:
                    if same_id_removes:  # DSM 6 drops the binding altogether
                        records = [
                            dataclasses.replace(r, services=_without_service(r.services, name))
                            if r.id == move.old_id
                            else r
                            for r in records
                        ]
                    continue
                current = [s for r in records for s in r.services if s["service"] == name]
                service = current[0] if current else dict(move.service)
                records = [
                    dataclasses.replace(
                        r,
                        services=_without_service(r.services, name)
                        + ((service,) if r.id == move.new_id else ()),
                    )
                    for r in records
                ]
            self._save(tuple(records))

    def delete(self, cert_ids: Collection[str]) -> None:
        """Apply ``CRT.delete``: remove the certificates, all of them or none.

        Emulator choice, the conservative reading of §6.2 (parameters single-sourced, effects
        unknown): the default certificate cannot be deleted, and the services bound to a deleted
        certificate go back to the default one, so no service is left without a certificate.
        """
        with self._lock:
            by_id = {r.id: r for r in self._records}
            if any(i not in by_id for i in cert_ids):
                raise ApiFailure(ILLEGAL_CERT)  # emulator choice for an unknown id, as on import
            if any(by_id[i].is_default for i in cert_ids):
                raise ApiFailure(UNDELETABLE)
            orphans = tuple(s for r in self._records if r.id in cert_ids for s in r.services)
            self._save(
                tuple(
                    dataclasses.replace(r, services=r.services + orphans) if r.is_default else r
                    for r in self._records
                    if r.id not in cert_ids
                )
            )

    @staticmethod
    def _moved_default(records: list[Record], new_default: str) -> list[Record]:
        # The previous default loses the flag; the DSM web UI binding moves with it (case 23).
        holders = [s for r in records for s in r.services if s["service"] == DEFAULT_SERVICE]
        moved = []
        for r in records:
            services = _without_service(r.services, DEFAULT_SERVICE)
            if r.id == new_default:
                services += tuple(holders[:1])
            moved.append(dataclasses.replace(r, is_default=r.id == new_default, services=services))
        return moved

    @staticmethod
    def _new_id(records: Sequence[Record]) -> str:
        taken = {r.id for r in records}
        while True:
            candidate = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
            if candidate not in taken:
                return candidate

    def _save(self, records: tuple[Record, ...]) -> None:
        body = json.dumps(
            {"certificates": [_to_json(r) for r in records], "format": _FORMAT}, indent=1
        )
        tmp = f"{self._path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
        self._records = records
