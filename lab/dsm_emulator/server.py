"""The emulator's two listeners — plain HTTP (DSM's 5000) and HTTPS (5001) — on one application.

The HTTPS listener presents the certificate DSM's web server would: the one bound to the
``default`` service. Each accepted connection is wrapped with the current SSL context, so a
reload after an import takes effect on the next connection, exactly like a DSM web-server
restart; the ``keep_serving_old`` fault suppresses the reload (acme.sh#3456).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import tempfile
import threading
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .app import emulator_of, make_app
from .pki import Material
from .recording import RecordedRequest
from .state import Emulator

_log = logging.getLogger(__name__)
# How often the serving loops look for a stop request; bounds how long stop() takes.
_POLL_SECONDS = 0.05


class _QuietHandler(WSGIRequestHandler):
    # werkzeug's access log prints query strings, and a GET login carries the password there.
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        _log.debug("%s %s -> %s", self.command, self.path.split("?", 1)[0], code)

    def log_error(self, format: str, *args: Any) -> None:
        # Refused TLS handshakes are expected: clients that do not trust DSM's certificate.
        _log.debug(format, *args)


class _ServedCertificate:
    """The SSL context of the HTTPS listener and the certificate it presents."""

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self._lock = threading.Lock()
        self._material: Material | None = None
        self._context: ssl.SSLContext | None = None
        self.reload(force=True)

    def context(self) -> ssl.SSLContext:
        with self._lock:
            assert self._context is not None
            return self._context

    def fingerprint(self) -> str:
        with self._lock:
            assert self._material is not None
            pem = self._material.cert_pem
        der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(
            serialization.Encoding.DER
        )
        return hashlib.sha256(der).hexdigest()

    def reload(self, force: bool) -> None:
        if not force and self._emu.controls.faults.keep_serving_old:
            return
        material = self._emu.store.served().material
        with self._lock:
            if material == self._material:
                return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # load_cert_chain reads files only; they live just long enough to be loaded.
        with tempfile.TemporaryDirectory(prefix="dsm-emulator-tls-") as tmp:
            chain_path = os.path.join(tmp, "fullchain.pem")
            key_path = os.path.join(tmp, "privkey.pem")
            for path, text in (
                (chain_path, material.cert_pem + material.chain_pem),
                (key_path, material.key_pem),
            ):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as fh:
                    fh.write(text)
            context.load_cert_chain(chain_path, key_path)
        with self._lock:
            self._material = material
            self._context = context


class _TlsServer(ThreadedWSGIServer):
    def __init__(self, host: str, port: int, app: Any, served: _ServedCertificate) -> None:
        super().__init__(host, port, app, handler=_QuietHandler)
        self._served = served
        # Marks the server as https for werkzeug (URL scheme, quiet TLS error handling).
        self.ssl_context = served.context()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # The handshake runs in the request thread, on the context current at accept time.
        wrapped = self._served.context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address


class EmulatorHandle:
    """A running emulator: its URLs, its state for assertions, and ``stop()``."""

    def __init__(
        self,
        emulator: Emulator,
        host: str,
        servers: list[ThreadedWSGIServer],
        served: _ServedCertificate,
    ) -> None:
        self.emulator = emulator
        self.host = host
        self.http_port = servers[0].port
        self.https_port = servers[1].port
        self._servers = servers
        self._served = served
        self._threads = [
            threading.Thread(
                target=s.serve_forever,
                kwargs={"poll_interval": _POLL_SECONDS},
                name=f"dsm-emulator-{s.port}",
                daemon=True,
            )
            for s in servers
        ]
        for thread in self._threads:
            thread.start()

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        return self.emulator.log.snapshot()

    def clear_requests(self) -> None:
        self.emulator.log.clear()

    def served_fingerprint(self) -> str:
        """SHA-256 (hex) of the leaf the HTTPS listener presents to new connections."""
        return self._served.fingerprint()

    def wait(self) -> None:
        """Block until ``stop()`` is called (for the CLI)."""
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        # shutdown() waits for the serving loop's next poll: ask both listeners at once.
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(make: Callable[[], ThreadedWSGIServer]) -> ThreadedWSGIServer:
    try:
        return make()
    except SystemExit:
        # werkzeug prints why it could not bind (e.g. the port is taken) and exits; a library
        # caller needs an exception instead.
        raise OSError("the DSM emulator could not listen (see the message above)") from None


def serve(
    data_dir: str,
    http_port: int,
    https_port: int,
    user: str,
    password: str,
    otp_secret: str | None = None,
    profile: str = "dsm7",
    host: str = "127.0.0.1",
    **app_options: Any,
) -> EmulatorHandle:
    """Start both listeners (port 0 picks a free one); ``app_options`` go to ``make_app``."""
    app = make_app(data_dir, user, password, otp_secret, profile, **app_options)
    emu = emulator_of(app)
    served = _ServedCertificate(emu)
    emu.add_served_listener(lambda force: served.reload(force))
    plain = _listening(lambda: ThreadedWSGIServer(host, http_port, app, handler=_QuietHandler))
    try:
        tls = _listening(lambda: _TlsServer(host, https_port, app, served))
    except BaseException:
        plain.server_close()
        raise
    handle = EmulatorHandle(emu, host, [plain, tls], served)
    _log.info(
        "DSM emulator (%s) for user %s on %s and %s, data in %s",
        emu.profile.name,
        user,
        handle.http_url,
        handle.https_url,
        data_dir,
    )
    return handle
