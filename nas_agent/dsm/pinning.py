"""DSM's TLS certificate, pinned on first use, and the ``requests`` adapter that enforces the pin.

DSM serves its own self-signed certificate until the agent installs one, and over loopback no
certificate names the address the agent dials, so neither system CAs nor a CA file can vouch for
it. Instead the SHA-256 of the leaf DSM presents at the agent's first connection is kept in
`PIN_FILE`, 0600, in the agent's state directory, and every later connection must present a
pinned leaf (trust on first use). The agent itself changes what DSM serves: before each import
the DSM client adds the certificate it imports (`expect`), so the pin follows the agent's own
installs, also when a run is killed in the middle of one. At a client's first connection the
pin is narrowed to the certificate DSM presents then, if it is pinned: certificates the agent
imported but DSM does not serve drop out again.

The check runs on every new connection right after the TLS handshake and before the request is
written, so whoever answers in DSM's place receives no password, sid or certificate: a mismatch
raises `DsmPinMismatch` out of ``requests`` untouched. Why an adapter: ``verify=False`` with a
look at the certificate afterwards would check it only once the login was sent, and urllib3's
own ``assert_fingerprint`` takes one fixed fingerprint per pool, not a set that changes during
a run and is learnt at the first connection. Overriding ``connect`` of urllib3's
``HTTPSConnection`` works alike in urllib3 1.26 (the agent's Python 3.8) and 2.x.

The file: one lower-case hex SHA-256 of a leaf's DER per line, written atomically.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from nas_agent._atomic import write_atomic
from nas_agent.dsm import PIN_FILE as PIN_FILE  # its owner; named here for callers too
from nas_agent.dsm.errors import DsmPinFileUnusable, DsmPinMismatch, DsmTlsError

_log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def leaf_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


class PinnedCertificates:
    """The pinned leaves of one DSM client (make one per client: it narrows the pin once)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._narrowed = False

    def check(self, der: bytes | None, url: str) -> None:
        """Accept the leaf `der` DSM presented at `url`, pinning it if nothing is pinned yet;
        raise DsmPinMismatch if it is not pinned."""
        if not der:
            raise DsmTlsError(url, "DSM presented no certificate")
        served = leaf_sha256(der)
        pins = self.load()
        if not pins:
            self._save((served,))
            self._narrowed = True
            _log.warning(
                "DSM at %s: its certificate (sha256 %s) pinned on first use in %s",
                url,
                served,
                self.path,
            )
            return
        if served not in pins:
            raise DsmPinMismatch(url, served, pins, self.path)
        if not self._narrowed:
            self._narrowed = True
            if pins != (served,):
                self._save((served,))
                _log.debug("DSM serves pinned certificate %s…: the pin is now that alone", served)

    def expect(self, sha256: str) -> None:
        """Pin `sha256` beside what is pinned: a certificate the agent is about to import."""
        pins = self.load()
        if sha256 not in pins:
            self._save((*pins, sha256))
            _log.debug("certificate %s… pinned before its import", sha256[:16])

    def load(self) -> tuple[str, ...]:
        try:
            with open(self.path, encoding="ascii") as handle:
                lines = handle.read().split()
        except FileNotFoundError:
            return ()
        except (OSError, UnicodeDecodeError) as exc:
            cause = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
            raise DsmPinFileUnusable(self.path, f"cannot be read ({cause})") from exc
        if not all(_SHA256.match(line) for line in lines):
            raise DsmPinFileUnusable(self.path, "holds lines that are not SHA-256 hex digests")
        return tuple(dict.fromkeys(lines))

    def _save(self, pins: tuple[str, ...]) -> None:
        try:
            write_atomic(self.path, "".join(f"{sha}\n" for sha in pins).encode(), mode=0o600)
        except OSError as exc:
            raise DsmPinFileUnusable(self.path, f"cannot be written ({exc.strerror})") from exc


class PinningAdapter(HTTPAdapter):
    """Mount on ``https://`` of a session with ``verify=False``: the pin replaces CA checks."""

    def __init__(self, pins: PinnedCertificates) -> None:
        self._pool_class = _pinned_pool_class(pins)  # before super(): it makes the pool manager
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": HTTPConnectionPool,
            "https": self._pool_class,
        }


def _pinned_pool_class(pins: PinnedCertificates) -> type[HTTPSConnectionPool]:
    class PinnedConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            sock = self.sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            try:
                pins.check(der, f"https://{self.host}:{self.port}")
            except BaseException:
                self.close()  # nothing is sent on a refused connection
                raise
            self.is_verified = True  # by the pin, so urllib3 does not warn it is unverified

    class PinnedPool(HTTPSConnectionPool):
        ConnectionCls = PinnedConnection

    return PinnedPool
