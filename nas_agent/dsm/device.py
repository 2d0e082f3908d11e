"""The remembered 2FA device id: one line in a file only the agent's user can read.

DSM hands the id out after an OTP login with ``enable_device_token=yes``; later logins send it
instead of a code. It is a credential, so it is written atomically with mode 0600 and never
logged.
"""

from __future__ import annotations

import os

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
        return device_id or None

    def save(self, device_id: str) -> None:
        tmp = f"{self.path}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(device_id + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover temp file
            os.replace(tmp, self.path)
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
