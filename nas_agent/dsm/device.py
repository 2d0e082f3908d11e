"""The remembered 2FA device id: one line in a file only the agent's user can read.

DSM hands the id out after an OTP login with ``enable_device_token=yes``; later logins send it
instead of a code. It is a credential, so it is written atomically with mode 0600, through a
temporary file of a unique name (`nas_agent._atomic`), and never logged.
"""

from __future__ import annotations

import os

from nas_agent import redaction
from nas_agent._atomic import write_atomic
from nas_agent.errors import KeyFileError


class DeviceIdFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                device_id = fh.read().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyFileError(self.path, f"cannot read the DSM device id: {exc.strerror}") from exc
        redaction.register(device_id)
        return device_id or None

    def save(self, device_id: str) -> None:
        redaction.register(device_id)
        try:
            write_atomic(self.path, (device_id + "\n").encode("utf-8"), mode=0o600)
        except OSError as exc:
            raise KeyFileError(
                self.path, f"cannot write the DSM device id: {exc.strerror}"
            ) from exc

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise KeyFileError(
                self.path, f"cannot remove the DSM device id: {exc.strerror}"
            ) from exc
