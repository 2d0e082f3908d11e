"""Login sessions (in memory, like DSM's after a restart) and remembered 2FA devices (persisted)."""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field

DEVICES_FILE = "devices.json"


@dataclass(frozen=True)
class Session:
    account: str
    # None when the login got no real SynoToken (none asked for, or the "--------" placeholder
    # of DSM's POST quirk): _sid or the id cookie alone then suffices (case 15, reference §3.5).
    token: str | None = field(repr=False)
    sid: str = field(repr=False)


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_sid: dict[str, Session] = {}
        self._used_codes: dict[str, float] = {}

    def create(self, account: str, with_token: bool) -> Session:
        session = Session(
            account=account,
            token=secrets.token_urlsafe(16) if with_token else None,
            sid=secrets.token_urlsafe(40),
        )
        with self._lock:
            self._by_sid[session.sid] = session
        return session

    def get(self, sid: str) -> Session | None:
        with self._lock:
            return self._by_sid.get(sid)

    def end(self, sid: str) -> bool:
        with self._lock:
            return self._by_sid.pop(sid, None) is not None

    def first_use_of(self, otp_code: str, now: float) -> bool:
        """Remember an accepted one-time code; False if it was accepted while still valid.

        A code is valid for at most three 30-second steps (the accepted window), so older
        entries are forgotten: the same six digits come round again later.
        """
        with self._lock:
            self._used_codes = {c: t for c, t in self._used_codes.items() if now - t < 90}
            if otp_code in self._used_codes:
                return False
            self._used_codes[otp_code] = now
            return True

    def count(self) -> int:
        with self._lock:
            return len(self._by_sid)


class DeviceRegistry:
    """Device ids DSM handed out for "remember this device"; stored in DATA_DIR/devices.json."""

    def __init__(self, data_dir: str) -> None:
        self._path = os.path.join(data_dir, DEVICES_FILE)
        self._lock = threading.Lock()
        self._devices: dict[str, dict[str, str]] = {}
        if os.path.exists(self._path):
            with open(self._path, encoding="utf-8") as fh:
                self._devices = json.load(fh)

    def issue(self, account: str, name: str) -> str:
        device_id = secrets.token_urlsafe(32)
        with self._lock:
            self._devices[device_id] = {"account": account, "name": name}
            self._save()
        return device_id

    def is_valid(self, account: str, device_id: str) -> bool:
        with self._lock:
            entry = self._devices.get(device_id)
        return entry is not None and entry["account"] == account

    def revoke_all(self) -> int:
        with self._lock:
            revoked = len(self._devices)
            self._devices = {}
            self._save()
        return revoked

    def _save(self) -> None:
        tmp = f"{self._path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self._devices, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
