"""Private keys the issuer keeps: the ACME account key now, the issuer's signing and escrow keys.

Local mode keeps each as a file readable by its owner only (0600 in a 0700 directory), written
atomically; AWS mode will keep them in Secrets Manager behind the same two calls.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from cloud.errors import KeyExists, StoreError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class KeyStore(Protocol):
    """Where the issuer keeps private keys: owner-only files locally, Secrets Manager on AWS."""

    def load(self, name: str) -> bytes | None: ...

    def create(self, name: str, data: bytes) -> None:
        """Stores a new key; raises KeyExists rather than replace one."""
        ...

    def replace(self, name: str, data: bytes) -> None:
        """Replaces an existing key's entry as a whole (key rotation only)."""
        ...


class LocalKeyStore:
    def __init__(self, directory: Path):
        self.directory = directory

    def load(self, name: str) -> bytes | None:
        path = self._path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(str(path), f"cannot read ({exc.strerror})") from exc

    def create(self, name: str, data: bytes) -> None:
        """Stores a new key; an existing one is never replaced (raises KeyExists)."""
        path = self._path(name)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                # link() fails if the name exists: two racing creators cannot both win.
                os.link(tmp, path)
            finally:
                os.unlink(tmp)
        except FileExistsError as exc:
            raise KeyExists(name) from exc
        except OSError as exc:
            raise StoreError(str(path), f"cannot write ({exc.strerror})") from exc

    def replace(self, name: str, data: bytes) -> None:
        """Replaces the entry atomically: a reader sees the old bytes or the new, never a mix."""
        path = self._path(name)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise StoreError(str(path), f"cannot write ({exc.strerror})") from exc

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"invalid key name {name!r}")
        return self.directory / name
