"""Secrets files (DSM password, DSM device id, S3 credentials): readable by the agent's user only.

The agent refuses to run with a secrets file that its group or others may read or write, or that
another user owns, and says which file and the command that fixes it. The check and the read use
the same open file, so the file checked is the file read.
"""

from __future__ import annotations

import errno
import os
import stat

from nas_agent import redaction
from nas_agent.config.errors import SecretFileError

# Secrets are a line or a few lines; anything bigger is the wrong file.
MAX_SECRET_BYTES = 64 * 1024


def check_secret_file(path: str, *, key: str = "") -> None:
    """Raise SecretFileError unless `path` is a regular file owned by this user, mode 0600 or
    stricter. `key` names the configuration key that points at it, for the message."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _open_error(path, exc, key) from exc
    _check(path, info, key)


def read_secret_file(path: str, *, key: str = "") -> str:
    """The file's text without the trailing line break, after the checks of `check_secret_file`;
    from now on masked in the logs."""
    try:
        with open(path, "rb") as handle:
            _check(path, os.fstat(handle.fileno()), key)
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise _open_error(path, exc, key) from exc
    if len(data) > MAX_SECRET_BYTES:
        raise SecretFileError(
            path, f"larger than {MAX_SECRET_BYTES} bytes", "point at the secret itself", key=key
        )
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise SecretFileError(path, "not UTF-8 text", "write the secret as text", key=key) from exc
    redaction.register(text)
    return text


def _check(path: str, info: os.stat_result, key: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(path, "not a regular file", "point at the file itself", key=key)
    user = os.geteuid()
    if info.st_uid != user:
        raise SecretFileError(
            path,
            f"owned by uid {info.st_uid}, not by the agent's user (uid {user})",
            f"run: chown {user} {path}",
            key=key,
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretFileError(
            path,
            f"mode {mode:04o} lets its group or others read or write it",
            f"run: chmod 600 {path}",
            key=key,
        )


def _open_error(path: str, exc: OSError, key: str) -> SecretFileError:
    fix: str | None = None
    if exc.errno == errno.ENOENT:
        fix = "create it (mode 0600) or correct the path"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = "run the agent as the user that owns it"
    return SecretFileError(
        path, f"cannot read ({exc.strerror})", fix or "check the path and the disk", key=key
    )
