"""Refuse, loudly, any in-process attempt to reach beyond loopback or to use the system resolver.

`install()` wraps the socket calls that pick a destination (`connect`, `connect_ex`, `sendto`,
`sendmsg`) and the libc name lookups (`getaddrinfo`, `gethostbyname[_ex]`, `gethostbyaddr`), which
would otherwise query the nameservers of /etc/resolv.conf behind Python's back. It also makes
dnspython's default resolver unusable. The check runs before the real call, so nothing is sent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

_MARK = "_certdrop_netguard"
_LOCAL_NAMES = {"localhost", "localhost."}


class SystemResolverUsed(RuntimeError):
    """dnspython's system resolver was touched; tests must pass an explicit loopback resolver."""

    def __init__(self) -> None:
        super().__init__("system resolver used in a test: pass an explicit resolver")


class _RefusingResolver:
    def __getattr__(self, name: str) -> Any:
        raise SystemResolverUsed()


def is_installed() -> bool:
    return getattr(socket.socket.connect, _MARK, False)


def install() -> Callable[[], None]:
    """Install the guard and return a function that removes it again."""
    undo: list[Callable[[], None]] = []
    allowed_names = _LOCAL_NAMES | {socket.gethostname()}

    def patch(owner: Any, name: str, replacement: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, replacement)
        undo.append(lambda: setattr(owner, name, original))

    real = {
        name: getattr(socket.socket, name)
        for name in ("connect", "connect_ex", "sendto", "sendmsg")
    }

    def connect(sock: socket.socket, address: Any) -> Any:
        _check_destination(sock, address)
        return real["connect"](sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> Any:
        _check_destination(sock, address)
        return real["connect_ex"](sock, address)

    def sendto(sock: socket.socket, data: Any, *args: Any) -> Any:
        # sendto(data, address) or sendto(data, flags, address)
        _check_destination(sock, args[-1])
        return real["sendto"](sock, data, *args)

    def sendmsg(sock: socket.socket, buffers: Any, *args: Any, **kwargs: Any) -> Any:
        # sendmsg(buffers, ancdata, flags, address); without an address the socket is connected,
        # and connect() was checked.
        address = args[2] if len(args) > 2 else kwargs.get("address")
        if address is not None:
            _check_destination(sock, address)
        return real["sendmsg"](sock, buffers, *args, **kwargs)

    setattr(connect, _MARK, True)
    for wrapper in (connect, connect_ex, sendto, sendmsg):
        patch(socket.socket, wrapper.__name__, wrapper)

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        patch(socket, name, _guard_lookup(getattr(socket, name), allowed_names))

    _guard_dnspython(patch)

    def uninstall() -> None:
        while undo:
            undo.pop()()

    return uninstall


def _check_destination(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # AF_UNIX, netlink...: local by nature
    host = address[0]
    if not _is_loopback(host) and host not in _LOCAL_NAMES:
        port = address[1] if len(address) > 1 else "?"
        raise RuntimeError(f"test tried to reach {host}:{port} outside loopback")


def _guard_lookup(original: Callable[..., Any], allowed: set[str]) -> Callable[..., Any]:
    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else host
        # An IP literal is parsed, not looked up, except that gethostbyaddr asks for its PTR.
        literal = _is_ip(text) and (original is not socket.gethostbyaddr or _is_loopback(text))
        if text not in (None, "") and not literal and text not in allowed:
            raise RuntimeError(f"test tried to resolve {text!r} through the system resolver")
        return original(host, *args, **kwargs)

    return lookup


def _guard_dnspython(patch: Callable[[Any, str, Any], None]) -> None:
    try:
        import dns.asyncresolver
        import dns.resolver
    except ImportError:  # Python 3.8 test runs of the agent have no dnspython
        return

    def read_resolv_conf(*args: Any, **kwargs: Any) -> Any:
        raise SystemResolverUsed()

    patch(dns.resolver.BaseResolver, "read_resolv_conf", read_resolv_conf)
    for module in (dns.resolver, dns.asyncresolver):
        patch(module, "default_resolver", _RefusingResolver())


def _is_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(str(text).split("%")[0])
    except ValueError:
        return False
    return True


def _is_loopback(host: Any) -> bool:
    if not _is_ip(host):
        return False
    ip = ipaddress.ip_address(str(host).split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)
