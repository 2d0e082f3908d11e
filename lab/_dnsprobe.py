"""A hand-built SOA query over UDP, so readiness checks work without dnspython (Python 3.8)."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_RD = 0x0100
_TYPE_SOA = 6
_CLASS_IN = 1


@dataclass(frozen=True)
class ProbeAnswer:
    rcode: int
    authoritative: bool
    answer_count: int

    @property
    def has_answer(self) -> bool:
        return self.rcode == 0 and self.answer_count > 0


def query_soa(
    host: str, port: int, zone: str, *, recursion_desired: bool, timeout: float
) -> ProbeAnswer | None:
    """Ask host:port for the SOA of `zone`; None when no matching reply came in time."""
    query_id = struct.unpack("!H", os.urandom(2))[0]
    flags = _FLAG_RD if recursion_desired else 0
    packet = struct.pack("!HHHHHH", query_id, flags, 1, 0, 0, 0) + _encode_name(zone)
    packet += struct.pack("!HH", _TYPE_SOA, _CLASS_IN)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (host, port))
        try:
            reply = sock.recv(4096)
        # socket.timeout only became an alias of TimeoutError in 3.10; this also runs on 3.8.
        except (socket.timeout, ConnectionRefusedError):
            # Refused: the port is not listening yet (ICMP port unreachable on loopback).
            return None
    if len(reply) < 12:
        return None
    reply_id, reply_flags, _qd, ancount = struct.unpack("!HHHH", reply[:8])
    if reply_id != query_id or not reply_flags & _FLAG_QR:
        return None
    return ProbeAnswer(
        rcode=reply_flags & 0x000F,
        authoritative=bool(reply_flags & _FLAG_AA),
        answer_count=ancount,
    )


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"
