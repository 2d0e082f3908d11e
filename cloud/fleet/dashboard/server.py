"""Serving the dashboard on this machine (`certdrop dashboard`, the screenshot tool, tests).

The page has no login of its own: by default it listens on loopback only, and listening
anywhere else must be asked for by name. It answers only requests addressed to it by a name it
is served under (`hosts.served_on`), so a DNS-rebinding page cannot read it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from cloud.errors import ConfigError, ConfigProblem
from cloud.fleet.dashboard.hosts import only_hosts, served_on

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def local_server(app: Flask, host: str = LOOPBACK, port: int = 0) -> BaseWSGIServer:
    """A threaded WSGI server bound to host:port (0: a free port; see `.port`), not yet
    serving. Raises ConfigError when the address cannot be bound."""
    if not 0 <= port <= 65535:
        raise ConfigError([ConfigProblem("--port", f"{port} is not a port", "give 1 to 65535")])
    listening = _listen(host, port)
    try:
        guarded = only_hosts(app, served_on(host, listening.getsockname()[1]))
        # Werkzeug binds by itself only with sys.exit on failure: hand it a bound socket.
        server = make_server(host, port, guarded, threaded=True, fd=listening.fileno())
    finally:
        listening.close()  # the server holds its own duplicate
    if not _is_loopback(host):
        log.warning("the dashboard listens on %s and has no login of its own", host)
    return server


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, proto)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from exc
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(64)
    except OSError as exc:
        listening.close()
        raise _cannot_listen(host, port, exc) from exc
    return listening


def _cannot_listen(host: str, port: int, exc: OSError) -> ConfigError:
    reason = exc.strerror or str(exc)
    where = f"cannot listen on {host}:{port}: {reason}"
    return ConfigError(
        [ConfigProblem("--host/--port", where, "choose another port or an address of this machine")]
    )


def url_of(server: BaseWSGIServer) -> str:
    host = server.host if ":" not in server.host else f"[{server.host}]"
    return f"http://{host}:{server.port}/"


@contextmanager
def serving(app: Flask, host: str = LOOPBACK, port: int = 0) -> Iterator[str]:
    """Serves `app` in a background thread for the duration of the block; yields its URL."""
    server = local_server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to
