"""Which `Host` the dashboard answers: its defence against DNS rebinding.

The page has no login of its own. A web page elsewhere could point a DNS name of its own at
127.0.0.1 and have the operator's browser fetch `/status.json` from there: the browser then
sends that name as `Host`. So the dashboard answers only the names it is served under, and
anything else gets 400 before the app sees the request:

- served on this machine: the loopback names and addresses (`localhost`, `127.0.0.1`, `[::1]`)
  with the port it listens on, and the address it was told to listen on with that port; when
  told to listen on every address (`0.0.0.0`, `::`), any IP address with that port too (a
  rebinding page can only send a name, never an address);
- behind a Lambda function URL: the URL's own host name (`requestContext.domainName`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

# Whether a request carrying this (lower-cased) Host header is for the dashboard.
HostCheck = Callable[[str, "WSGIEnvironment"], bool]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_EVERY_ADDRESS = ("0.0.0.0", "::", "")
_REFUSED = b"unknown Host: the dashboard answers only the names it is served under\n"


def served_on(host: str, port: int) -> HostCheck:
    """The check for a dashboard listening on `host`:`port` of this machine."""
    names = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    every_address = host in _EVERY_ADDRESS
    if not every_address:
        names.add(_with_port(host, port))

    def allowed(header: str, environ: WSGIEnvironment) -> bool:
        return header in names or (every_address and _is_address_with_port(header, port))

    return allowed


def function_url(header: str, environ: WSGIEnvironment) -> bool:
    """The check behind a Lambda function URL: its own host name, as AWS delivered it."""
    context: Any = environ.get("apig_wsgi.request_context") or {}
    domain = str(context.get("domainName") or "").lower()
    return bool(domain) and header in (domain, f"{domain}:443")


def only_hosts(app: WSGIApplication, allowed: HostCheck) -> WSGIApplication:
    """`app`, answering 400 to a request whose Host `allowed` does not accept."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        header = str(environ.get("HTTP_HOST", "")).strip().lower()
        if allowed(header, environ):
            return app(environ, start_response)
        log.warning("dashboard: refused a request for Host %r", header[:100])
        start_response(
            "400 Bad Request",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(_REFUSED))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [_REFUSED]

    return guarded


def _with_port(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown.lower()}:{port}"


def _is_address_with_port(header: str, port: int) -> bool:
    address, sep, given = header.rpartition(":")
    if not sep or given != str(port):
        return False
    try:
        ipaddress.ip_address(address.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True
