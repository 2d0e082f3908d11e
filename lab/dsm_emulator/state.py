"""Everything one emulated DSM holds, shared by the request threads and the listeners."""

from __future__ import annotations

import os
import threading
from typing import Callable

from nas_agent import totp

from .encryption import LoginEncryption
from .envelope import ApiFailure
from .faults import AccountState, Controls, Faults
from .profiles import Profile
from .recording import Incoming, RequestLog
from .sessions import DeviceRegistry, Session, Sessions
from .store import CertStore

NO_SESSION = 119
NOT_ADMIN = 105

# Called with force=True for an explicit "restart the web server", False after a store change.
ServedListener = Callable[[bool], None]


class Emulator:
    def __init__(
        self,
        data_dir: str,
        user: str,
        password: str,
        otp_secret: str | None,
        profile: Profile,
        account: AccountState,
        faults: Faults,
        clock: Callable[[], float],
    ) -> None:
        if otp_secret is not None:
            totp.decode_secret(otp_secret)  # refuse a bad secret now, not at the first login
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        self.data_dir = data_dir
        self.user = user
        self.password = password
        self.otp_secret = otp_secret
        self.profile = profile
        self.clock = clock
        self.started_at = clock()
        self.controls = Controls(account, faults)
        self.store = CertStore(data_dir, clock)
        self.sessions = Sessions()
        self.devices = DeviceRegistry(data_dir)
        self.encryption = LoginEncryption()
        self.log = RequestLog()
        self._listeners_lock = threading.Lock()
        self._listeners: list[ServedListener] = []

    def require_session(self, incoming: Incoming, admin: bool = True) -> Session:
        """The caller's session, checked as DSM does: sid (param or ``id`` cookie), token, and
        (unless ``admin`` is False, for APIs any user may call) administrator rights."""
        sid = incoming.param("_sid") or incoming.cookies.get("id")
        session = self.sessions.get(sid) if sid else None
        if session is None:
            raise ApiFailure(NO_SESSION)
        # Reference §3.5: a session made with a real SynoToken demands it on every call [multi];
        # one made without (or given the "--------" placeholder) ignores whatever token comes.
        if session.token is not None:
            # The header [multi] or the SynoToken parameter. That the parameter alone suffices is
            # [one]: emulator choice, the lenient reading, and from the query or the form body.
            offered = (incoming.header("X-SYNO-TOKEN"), incoming.param("SynoToken"))
            if session.token not in offered:
                raise ApiFailure(NO_SESSION)
        if admin and not self.controls.account.admin:
            raise ApiFailure(NOT_ADMIN)
        return session

    def add_served_listener(self, listener: ServedListener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def store_changed(self) -> None:
        self._notify(force=False)

    def restart_httpd(self) -> None:
        """What a restart of DSM's web server does: serve the current default certificate."""
        self._notify(force=True)

    def _notify(self, force: bool) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(force)
