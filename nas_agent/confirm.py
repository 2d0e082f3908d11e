"""Confirming what DSM really serves: a TLS handshake to its HTTPS port, leaf fingerprint compared.

DSM may list a new certificate while its web server still serves the old one until a reload, so
an import counts only once the handshake shows the new leaf. Trust is not the question here (the
fingerprint is compared exactly), so the handshake does not verify the chain.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
from typing import Callable

from nas_agent.errors import ConfirmFailed


def served_fingerprint(host: str, port: int, server_name: str, timeout: float) -> str:
    """SHA-256 (hex) of the leaf certificate the server presents for `server_name`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(
        raw, server_hostname=server_name
    ) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError("the server presented no certificate")
    return hashlib.sha256(der).hexdigest()


def wait_until_served(
    host: str,
    port: int,
    server_name: str,
    expected_sha256: str,
    *,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 5.0,
) -> None:
    """Handshakes until the served leaf is `expected_sha256`; raises ConfirmFailed at the
    deadline, naming what was served instead."""
    interval = 0.1
    served: str | None = None
    cause = "no handshake yet"
    while True:
        try:
            served = served_fingerprint(host, port, server_name, timeout)
            if served == expected_sha256:
                return
            cause = f"it serves sha256 {served[:16]}…"
        except (OSError, ssl.SSLError) as exc:
            cause = f"handshake failed: {exc}"
        now = clock()
        if now >= deadline:
            raise ConfirmFailed(host, port, expected_sha256, served, cause)
        sleep(min(interval, deadline - now))
        interval = min(interval * 2, 2.0)
