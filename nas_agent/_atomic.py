"""The agent's own files: a small file replaced atomically (a reader sees the old content or the
new, never part of one) through a temporary file nobody can plant in advance, in directories
only the agent's user can enter."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress


def write_atomic(path: str, data: bytes, *, mode: int) -> None:
    """Write `data` to a temporary file beside `path` with exactly `mode`, fsync it, rename it over
    `path` and fsync the directory, so the rename survives a power cut. Raises OSError; a failed
    write leaves `path` as it was and removes the temporary file."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have removed bits; be exact
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):  # the original error is the one to report
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def make_private_dirs(path: str) -> None:
    """Create `path` and each missing parent with exactly mode 0700 (whatever the umask), like
    `mkdir -p -m 700`, and set `path` itself to 0700 when it was there already (a root shell's
    `mkdir` makes 0755); parents that exist are left as they are. Raises OSError (EPERM: `path`
    belongs to another user)."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if os.path.isdir(directory):
                continue  # made meanwhile by someone else: theirs to set, but for `path`
            raise
        os.chmod(directory, 0o700)  # the umask may have removed bits; be exact
    os.chmod(path, 0o700)


def _fsync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some network filesystems refuse fsync on a directory; the rename is done anyway
    finally:
        os.close(descriptor)
