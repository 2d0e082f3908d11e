"""The configuration file's bytes: read as UTF-8 text, and written back by `cloud.config.edit`.

A file is read the same way wherever it comes from (a local path, the Lambda's bucket object):
UTF-8 with an optional byte order mark, its line endings kept so an edit can keep them too. A
rewrite goes to the file a symlink points to, atomically (a temporary file beside it, then
os.replace), with the mode it had.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cloud.errors import ConfigError, ConfigProblem


def read_text(path: Path) -> str:
    """The file's text; ConfigError when it cannot be read or is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = ConfigProblem(str(path), f"cannot read ({exc.strerror})", "check the path")
        raise ConfigError([problem]) from exc
    return decode(data, str(path))


def decode(data: bytes, source: str) -> str:
    """`data` as text. A byte order mark is dropped: Windows editors (Notepad) write one, and
    TOML would read it as a stray character before the first table. Line endings stay as
    written: tomllib reads CRLF as it reads LF, and an edit writes back what it found."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = ConfigProblem(
            "(file)",
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})",
            "save the file as UTF-8",
        )
        raise ConfigError([problem], source) from exc


def write_text(path: Path, text: str) -> None:
    """Replaces the file's content with `text`, through a symlink to the file it names (a config
    folder under version control, /etc managed by a config tool): replacing the link itself
    would leave the real file without the edit."""
    target = Path(os.path.realpath(path))
    if "\r\n" in text:
        # tomlkit keeps the endings of the lines it read but writes new ones with LF alone.
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, target.stat().st_mode & 0o777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
