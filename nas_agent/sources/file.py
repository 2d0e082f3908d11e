"""`file:///mnt/share/certdrop`: the object store as a directory, usually a mounted share.

Objects are files at their keys below the root (`<root>/agents/<id>/index.json`), as the cloud's
directory store writes them. The ETag is the quoted SHA-256 hex of the content, the same as that
store's, so a NotModified answer costs a local read and no copy. `put_status` replaces
`status.json` atomically (temporary file, fsync, rename) with mode 0644, and `put_csr`
`csr/<site>.json` the same way.

An unmounted share is usually an empty directory: an absent object whose `agents/<id>/` folder is
also absent says so in its message, and `put_status` creates `agents/<id>/` only when `agents/`
exists, so it never writes into a bare mount point.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat

from nas_agent import store_layout
from nas_agent._atomic import write_atomic
from nas_agent.sources._base import BaseSource, Fetched, NotModified, check_name
from nas_agent.sources.errors import (
    SourceDenied,
    SourceError,
    SourceNotFound,
    SourceUnavailable,
)

_log = logging.getLogger(__name__)

_STATUS_MODE = 0o644
_DENIED = {errno.EACCES, errno.EPERM}
_READ_ONLY = _DENIED | {errno.EROFS}


class FileSource(BaseSource):
    def __init__(self, url: str, agent_id: str, *, root: str, max_bytes: int):
        super().__init__(url, agent_id, max_bytes)
        self.root = root
        self._agent_dir = os.path.join(root, "agents", agent_id)

    def fetch(
        self, name: str, etag: str | None = None, *, max_bytes: int | None = None
    ) -> Fetched | NotModified:
        path = os.path.join(self._agent_dir, *check_name(name).split("/"))
        limit = self._limit(max_bytes)
        self._count(requests=1)
        try:
            # O_NONBLOCK: a FIFO planted at the path must not hang the agent; no effect on files.
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise SourceError(
                        "not a regular file", url=self.location, name=name, backend_code="NotAFile"
                    )
                self._check_size(name, info.st_size, limit)
                body = handle.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise self._not_found(name) from exc
        except IsADirectoryError as exc:
            raise SourceError("a directory, not a file", url=self.location, name=name) from exc
        except OSError as exc:
            raise self._os_error(name, exc) from exc
        self._check_size(name, len(body), limit)  # the file may have grown since fstat
        tag = f'"{hashlib.sha256(body).hexdigest()}"'
        if etag == tag:
            return NotModified(name, tag)
        self._count(body_bytes=len(body))
        return Fetched(name, body, tag)

    def put_status(self, body: bytes) -> bool:
        """Replace `agents/<id>/status.json`; False (with a warning) if the share is read-only to
        this user or holds no `agents/` folder."""
        return self._put(store_layout.STATUS, body, os.path.join(self.root, "agents"))

    def put_enrollment(self, body: bytes) -> bool:
        """Write `agents/<id>/enrollment.json` (`certdrop-agent join`): before anything is
        published for any agent, the store may have no `agents/` folder yet, so only the
        store's own folder must be there."""
        return self._put(store_layout.ENROLLMENT, body, self.root)

    def put_csr(self, site: str, body: bytes) -> bool:
        """Replace `agents/<id>/csr/<site>.json`, as `put_status` replaces status.json."""
        return self._put(store_layout.csr_name(site), body, os.path.join(self.root, "agents"))

    def _put(self, name: str, body: bytes, must_exist: str) -> bool:
        self._count(requests=1)
        if not os.path.isdir(must_exist):
            _log.warning("%s not written: %s is not there (share not mounted?)", name, must_exist)
            return False
        try:
            path = os.path.join(self._agent_dir, *check_name(name).split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_atomic(path, body, mode=_STATUS_MODE)
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                _log.warning(
                    "%s not written: %s is read-only here (%s)", name, self.location, exc.strerror
                )
                return False
            raise SourceUnavailable(
                f"cannot write ({exc.strerror})", url=self.location, name=name
            ) from exc
        return True

    def _not_found(self, name: str) -> SourceError:
        if os.path.isdir(self._agent_dir):
            return SourceNotFound(
                "no such object", url=self.location, name=name, backend_code="NoSuchKey"
            )
        if not os.path.isdir(self.root):
            # The root itself is gone: a share that is not mounted, not an unpublished agent.
            return SourceUnavailable(
                f"the directory {self.root} does not exist (is the share mounted?)",
                url=self.location,
                name=name,
                backend_code="NoRoot",
            )
        return SourceNotFound(
            f"nothing published for agent {self.agent_id} yet"
            f" (no agents/{self.agent_id}/ folder; or is the share not mounted?)",
            url=self.location,
            name=name,
            backend_code="NoSuchKey",
        )

    def _os_error(self, name: str, exc: OSError) -> SourceError:
        if exc.errno in _DENIED:
            return SourceDenied(
                f"permission denied; let the agent's user read {self._agent_dir}",
                url=self.location,
                name=name,
                backend_code=errno.errorcode.get(exc.errno or 0),
            )
        # EIO, ESTALE, ENOTCONN...: a network share that hiccupped may answer next time.
        return SourceUnavailable(
            f"cannot read ({exc.strerror})",
            url=self.location,
            name=name,
            backend_code=errno.errorcode.get(exc.errno or 0),
        )
