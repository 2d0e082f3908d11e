"""``SYNO.DSM.Info`` ``getinfo``: the few system facts [MIB] reads right after its login.

py-synologydsm-api (Home Assistant's library) calls it inside ``login()`` and fails the login
when DSM does not list it; every DSM 6 and 7 does. The values are the emulator's own.
"""

from __future__ import annotations

from flask import Response

from .envelope import success
from .recording import Incoming
from .state import Emulator

MODEL = "VirtualDSM"


def dsm_info(emu: Emulator, incoming: Incoming, version: int) -> Response:
    # Emulator choice: any logged-in user may read it, not only an administrator.
    emu.require_session(incoming, admin=False)
    version_string = emu.profile.dsm_version
    return success(
        {
            "model": MODEL,
            "ram": 4096,
            "serial": "EMULATOR0001",
            "temperature": 40,
            "temperature_warn": False,
            "uptime": max(0, int(emu.clock() - emu.started_at)),
            "version": version_string.rsplit("-", 1)[1],
            "version_string": version_string,
        }
    )
