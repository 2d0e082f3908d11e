"""The package's icon, drawn at build time as a PNG of any size (stdlib only: zlib and struct).

    package_icon(64) -> b"\\x89PNG..."   # PACKAGE_ICON.PNG; 256 for PACKAGE_ICON_256.PNG

A white padlock on a blue rounded square, transparent outside it. Each pixel is sampled 4x4
times, so the edges are smooth at 64 pixels too. The same size always gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib

_BLUE = (30, 111, 217)
_WHITE = (255, 255, 255)
_SAMPLES = 4


def _inside_square(x: float, y: float) -> bool:
    """The background: a square with rounded corners, in a 0..1 frame."""
    margin, radius = 0.04, 0.2
    low, high = margin + radius, 1 - margin - radius
    dx = max(low - x, 0.0, x - high)
    dy = max(low - y, 0.0, y - high)
    return (
        margin <= x <= 1 - margin and margin <= y <= 1 - margin and dx * dx + dy * dy <= radius**2
    )


def _inside_lock(x: float, y: float) -> bool:
    """The padlock: its body, less a keyhole, and the shackle (a half ring) above it."""
    if 0.27 <= x <= 0.73 and 0.46 <= y <= 0.82:
        keyhole = (x - 0.5) ** 2 + (y - 0.6) ** 2 <= 0.055**2 or (
            abs(x - 0.5) <= 0.025 and 0.6 <= y <= 0.72
        )
        return not keyhole
    distance = ((x - 0.5) ** 2 + (y - 0.46) ** 2) ** 0.5
    return y <= 0.46 and 0.11 <= distance <= 0.17


def _pixel(column: int, row: int, size: int) -> bytes:
    square = lock = 0
    for i in range(_SAMPLES):
        for j in range(_SAMPLES):
            x = (column + (i + 0.5) / _SAMPLES) / size
            y = (row + (j + 0.5) / _SAMPLES) / size
            if _inside_square(x, y):
                square += 1
                lock += _inside_lock(x, y)
    if not square:
        return b"\0\0\0\0"
    share = lock / square
    rgb = bytes(round(w * share + b * (1 - share)) for w, b in zip(_WHITE, _BLUE, strict=True))
    return rgb + bytes([round(255 * square / _SAMPLES**2)])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def package_icon(size: int) -> bytes:
    """A `size` x `size` RGBA PNG."""
    rows = b"".join(
        b"\0" + b"".join(_pixel(column, row, size) for column in range(size)) for row in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )
