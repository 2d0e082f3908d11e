"""Knobs tests turn: the account's state (auth errors of case 5, admin rights) and injected faults.

Both are frozen values swapped under a lock, settable from Python (``Controls.update_*``) or over
HTTP (``POST /_emulator/account``, ``POST /_emulator/faults`` with a JSON object).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Mapping

# Login answers for an expired password (reference §3.6).
PASSWORD_STATES: dict[str, int | None] = {
    "ok": None,
    "expired_cannot_change": 408,
    "expired": 409,
    "must_change": 410,
}
DROP_MODES = ("before_apply", "after_apply")


@dataclass(frozen=True)
class AccountState:
    admin: bool = True  # False: every SYNO.Core.* call answers 105
    disabled: bool = False  # login answers 401
    password: str = "ok"  # a key of PASSWORD_STATES
    otp_enforced: bool = False  # 2FA required by policy: 406 while the account has no OTP secret
    ip_blocked: bool = False  # login answers 407


@dataclass(frozen=True)
class Faults:
    # The next import answers this error code and changes nothing.
    fail_next_import: int | None = None
    # The next import closes the connection without an answer, before or after applying.
    drop_next_import: str | None = None
    # Imports change the store but the HTTPS listener keeps its certificate (acme.sh#3456).
    keep_serving_old: bool = False
    # DSM's bug: any non-empty as_default, "false" included, means true (reference §5.3).
    as_default_any_value_true: bool = True
    # Refuse a one-time code that was already accepted (RFC 6238 §5.2 recommends it; whether
    # DSM does is unknown, so it is off by default).
    otp_single_use: bool = False


_TYPES: dict[str, type | tuple[type, ...]] = {
    "admin": bool,
    "disabled": bool,
    "password": str,
    "otp_enforced": bool,
    "ip_blocked": bool,
    "fail_next_import": (int, type(None)),
    "drop_next_import": (str, type(None)),
    "keep_serving_old": bool,
    "as_default_any_value_true": bool,
    "otp_single_use": bool,
}


def _checked(current: Any, changes: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(current)}
    for key, value in changes.items():
        if key not in names:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(names))}")
        expected = _TYPES[key]
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ValueError(f"{key}: wrong type {type(value).__name__}")
    updated = dataclasses.replace(current, **changes)
    if isinstance(updated, AccountState) and updated.password not in PASSWORD_STATES:
        raise ValueError(f"password: choose one of {', '.join(PASSWORD_STATES)}")
    if isinstance(updated, Faults) and updated.drop_next_import not in (None, *DROP_MODES):
        raise ValueError(f"drop_next_import: choose one of {', '.join(DROP_MODES)} or null")
    return updated


class Controls:
    """The current account state and faults, shared by every request thread."""

    def __init__(self, account: AccountState, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._account = account
        self._faults = faults

    @property
    def account(self) -> AccountState:
        with self._lock:
            return self._account

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def update_account(self, **changes: Any) -> AccountState:
        with self._lock:
            self._account = _checked(self._account, changes)
            return self._account

    def update_faults(self, **changes: Any) -> Faults:
        with self._lock:
            self._faults = _checked(self._faults, changes)
            return self._faults

    def take_import_faults(self) -> tuple[int | None, str | None]:
        """Consume the one-shot import faults: (error code to answer, drop mode)."""
        with self._lock:
            taken = (self._faults.fail_next_import, self._faults.drop_next_import)
            self._faults = dataclasses.replace(
                self._faults, fail_next_import=None, drop_next_import=None
            )
            return taken
