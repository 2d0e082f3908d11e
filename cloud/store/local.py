"""The object store as a directory: the embedded default, and what `file://` agent sources read.

Each key is a file at the same relative path under the root, holding exactly the object's body,
so the tree can be served or synced as it is. Writes go to a temporary file in the target's
directory, are fsynced and renamed into place (then the directory is fsynced): a reader sees the
old object or the new one, never part of one, and a crash leaves at most a stray temporary file,
which is never listed or read. The ETag is the quoted SHA-256 hex of the body.

Conditional writes (`if_absent`, `if_match`) and every other write or delete of a key run under
an exclusive `flock` on one of 256 lock files (chosen by the key's hash) in `<root>/.certdrop/`,
so they are atomic across threads and processes on one host (or on NFS with working locks).
Creation additionally uses `link()`, which cannot replace an existing file.

Objects are written 0644; directories the store creates get `dir_mode` (default 0755; pass 0o700
to keep the whole store private to its user). Unlike S3, a key cannot be both an object and the
parent of others ("a" and "a/b"); such a write raises `StoreRefused` with backend code
"PathConflict". Directories emptied by deletes are left in place.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from cloud.errors import ObjectTooLarge, PreconditionFailed, StoreError, StoreRefused
from cloud.store import ObjectInfo, StoredObject, Unchanged
from cloud.store._keys import RESERVED, check_key, check_prefix, key_problem

_FILE_MODE = 0o644
_LOCK_STRIPES_HEX = 2  # 256 lock files: enough to keep unrelated keys from waiting on each other
# Retrying cannot help with these; the others (ENOSPC, EIO, ...) may pass.
_TERMINAL_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR}


class LocalStore:
    def __init__(self, root: str | os.PathLike[str], *, create: bool = True, dir_mode: int = 0o755):
        self.root = os.path.abspath(os.fspath(root))
        self._dir_mode = dir_mode
        if not os.path.isdir(self.root):
            if not create or os.path.lexists(self.root):
                raise StoreRefused(
                    self.root, "the store root is not a directory", backend_code="NoRoot"
                )
            try:
                os.makedirs(self.root, mode=dir_mode, exist_ok=True)
                os.chmod(self.root, dir_mode)  # makedirs' mode is filtered by the umask
            except OSError as exc:
                raise _os_error(self.root, "create the store root", exc) from exc

    def __repr__(self) -> str:
        return f"LocalStore({self.root!r})"

    @property
    def location(self) -> str:
        return Path(self.root).as_uri()

    def get(
        self, key: str, *, if_none_match: str | None = None, max_bytes: int | None = None
    ) -> StoredObject | Unchanged | None:
        found = self._read_with_time(check_key(key), max_bytes)
        if found is None:
            return None
        body, modified = found
        etag = _etag(body)
        if if_none_match == etag:
            return Unchanged(key, etag)
        return StoredObject(key, etag, body, modified)

    def put(
        self, key: str, body: bytes, *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        if if_absent and if_match is not None:
            raise ValueError("put: if_absent and if_match exclude each other")
        path = self._path(check_key(key))
        directory = os.path.dirname(path)
        self._make_dirs(key, directory)
        temp = self._write_temp(key, directory, body)
        try:
            with self._locked(key):
                if if_absent:
                    self._link_new(key, temp, path)
                else:
                    if if_match is not None:
                        self._require_etag(key, if_match)
                    _rename(key, temp, path)
                _fsync_dir(key, directory)
        finally:
            _remove_quietly(temp)
        return _etag(body)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        path = self._path(check_key(key))
        with self._locked(key):
            if if_match is not None:
                body = self._read(key)
                if body is None:
                    return
                if _etag(body) != if_match:
                    raise PreconditionFailed(key, f"delete if-match {if_match}: object changed")
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return  # absent, or only a directory of other objects: no object by that key
            except OSError as exc:
                raise _os_error(key, "delete", exc) from exc
            _fsync_dir(key, os.path.dirname(path))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        check_prefix(prefix)  # here, not in the generator, so a bad prefix fails at the call
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        parent = prefix.rpartition("/")[0]
        start = self._path(parent) if parent else self.root
        keys = sorted(self._walk(start, parent, prefix))
        for key in keys:
            info = self._info(key)
            if info is not None:  # deleted since the walk
                yield info

    def _walk(self, directory: str, parent_key: str, prefix: str) -> Iterator[str]:
        """The keys below `directory` that start with `prefix`; names outside the prefix are
        passed over unchecked (a site's few schedule markers among every other site's)."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _os_error(parent_key or "/", "list", exc) from exc
        for entry in entries:
            key = f"{parent_key}/{entry.name}" if parent_key else entry.name
            if entry.name.startswith(RESERVED):
                continue  # temporary and lock files
            if entry.is_dir(follow_symlinks=False):
                below = key + "/"
                if (below.startswith(prefix) or prefix.startswith(below)) and not key_problem(key):
                    yield from self._walk(entry.path, key, prefix)
            elif (
                entry.is_file(follow_symlinks=False)
                and key.startswith(prefix)
                and not key_problem(key)  # a name no key could have
            ):
                yield key

    def _info(self, key: str) -> ObjectInfo | None:
        try:
            with open(self._path(key), "rb") as file:
                stat = os.fstat(file.fileno())
                body = file.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise _os_error(key, "read", exc) from exc
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        return ObjectInfo(key=key, etag=_etag(body), size=len(body), last_modified=modified)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def _read(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise _os_error(key, "read", exc) from exc

    def _read_with_time(self, key: str, max_bytes: int | None) -> tuple[bytes, datetime] | None:
        """The body and the file's mtime; with `max_bytes`, refuses a larger file from its size
        and never reads more than `max_bytes` + 1 bytes of it."""
        try:
            with open(self._path(key), "rb") as file:
                stat = os.fstat(file.fileno())
                if max_bytes is not None and stat.st_size > max_bytes:
                    raise ObjectTooLarge(key, max_bytes, stat.st_size)
                body = file.read() if max_bytes is None else file.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise _os_error(key, "read", exc) from exc
        if max_bytes is not None and len(body) > max_bytes:
            raise ObjectTooLarge(key, max_bytes)
        return body, datetime.fromtimestamp(stat.st_mtime, UTC)

    def _require_etag(self, key: str, if_match: str) -> None:
        body = self._read(key)
        if body is None:
            raise PreconditionFailed(key, f"put if-match {if_match}: no object")
        if _etag(body) != if_match:
            raise PreconditionFailed(key, f"put if-match {if_match}: object changed")

    def _link_new(self, key: str, temp: str, path: str) -> None:
        try:
            os.link(temp, path)  # fails rather than replace, even for a writer not taking our lock
        except FileExistsError as exc:
            if os.path.isdir(path):
                raise _path_conflict(key) from exc
            raise PreconditionFailed(key, "put if-absent: the object exists") from exc
        except OSError as exc:
            raise _os_error(key, "create", exc) from exc

    def _make_dirs(self, key: str, directory: str) -> None:
        """Creates the missing directories down to `directory`, each made durable in its parent."""
        missing = []
        while directory != self.root and not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for path in reversed(missing):
            try:
                os.mkdir(path, self._dir_mode)
                os.chmod(path, self._dir_mode)
            except FileExistsError as exc:
                if not os.path.isdir(path):  # a file: an object named like this directory
                    raise _path_conflict(key) from exc
                continue  # created by a concurrent writer
            except NotADirectoryError as exc:
                raise _path_conflict(key) from exc
            except OSError as exc:
                raise _os_error(key, "create a directory for", exc) from exc
            _fsync_dir(key, os.path.dirname(path))

    def _write_temp(self, key: str, directory: str, body: bytes) -> str:
        temp = os.path.join(directory, f"{RESERVED}-tmp-{secrets.token_hex(8)}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
            with open(fd, "wb") as file:
                os.fchmod(fd, _FILE_MODE)  # os.open's mode is filtered by the umask
                file.write(body)
                file.flush()
                os.fsync(fd)
        except OSError as exc:
            _remove_quietly(temp)
            raise _os_error(key, "write", exc) from exc
        return temp

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock_dir = os.path.join(self.root, RESERVED, "locks")
        stripe = hashlib.sha256(key.encode()).hexdigest()[:_LOCK_STRIPES_HEX]
        try:
            os.makedirs(lock_dir, mode=self._dir_mode, exist_ok=True)
            fd = os.open(os.path.join(lock_dir, stripe), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(key, "lock", exc) from exc
        try:
            # A separate open file per acquisition: flock then excludes other threads of this
            # process as well as other processes.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()}"'


def _rename(key: str, temp: str, path: str) -> None:
    try:
        os.replace(temp, path)
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise _path_conflict(key) from exc
        raise _os_error(key, "write", exc) from exc


def _fsync_dir(key: str, directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _os_error(key, "sync the directory of", exc) from exc


def _remove_quietly(path: str) -> None:
    # Usually gone already (renamed into place, or never created); a temporary file that cannot
    # be removed is harmless, as nothing lists or reads it.
    with suppress(OSError):
        os.unlink(path)


def _path_conflict(key: str) -> StoreRefused:
    return StoreRefused(
        key,
        "a local store cannot hold both an object and objects below it ('a' and 'a/b')",
        backend_code="PathConflict",
    )


def _os_error(key: str, action: str, exc: OSError) -> StoreError:
    name = errno.errorcode.get(exc.errno or 0, "OSError")
    cause = f"cannot {action} it: {exc.strerror or exc}"
    if exc.errno in _TERMINAL_ERRNOS:
        return StoreRefused(key, cause, backend_code=name)
    return StoreError(key, cause)
