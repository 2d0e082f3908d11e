"""Free loopback ports and deadline-bounded polling for the test services."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"

# Ports already handed out by this process: the kernel may offer a just-closed port again, and two
# services given the same port would both start (BIND binds with SO_REUSEPORT) and split queries.
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that is free for both TCP and UDP and that nothing answers on."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = tcp.getsockname()[1]
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1 after 50 tries")


def port_is_free(port: int) -> bool:
    """True if TCP and UDP on 127.0.0.1:port can be bound and no TCP listener answers there.

    A plain bind already fails next to a SO_REUSEPORT listener; the connect probe also catches
    a listener on a wildcard address.
    """
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return False
                raise
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((LOOPBACK, port)) != 0


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    first_delay: float = 0.01,
    max_delay: float = 0.5,
) -> T:
    """Call `predicate` until it returns something truthy and return that.

    Polls with exponential backoff, never past the deadline. An exception raised by the predicate
    propagates at once (use that to give up early, e.g. when the process has died). On timeout
    raises TimeoutError naming `what`.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{what}: not reached within {timeout:.1f} s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)
