"""Time-based one-time passwords (RFC 6238 over RFC 4226), as DSM's 2-step verification uses them.

SHA-1, 30-second steps, 6 digits: the parameters of every authenticator app DSM enrols.
The DSM emulator verifies codes with it and tests compute the code a user would type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from nas_agent import redaction

STEP_SECONDS = 30
DIGITS = 6


def decode_secret(secret_b32: str) -> bytes:
    """Decode a base32 secret as authenticator apps show it (spaces, lower case, no padding)."""
    cleaned = "".join(secret_b32.split()).upper()
    cleaned += "=" * (-len(cleaned) % 8)
    try:
        key = base64.b32decode(cleaned)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the OTP secret is not valid base32") from exc
    if not key:
        raise ValueError("the OTP secret is empty")
    # As given and as normalised: both spellings are masked in the logs from now on.
    redaction.register(secret_b32)
    redaction.register(cleaned.rstrip("="))
    return key


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 code for one counter value."""
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret_b32: str, at: float) -> str:
    """The code an authenticator shows at Unix time ``at``."""
    return hotp(decode_secret(secret_b32), int(at // STEP_SECONDS))


def verify(secret_b32: str, code: str, at: float, window: int = 1) -> bool:
    """True when ``code`` is the code of the step holding ``at`` or of ``window`` steps around it.

    One step either side tolerates a clock skew and a code typed just before it rolled over.
    """
    if len(code) != DIGITS or not code.isdigit():
        return False
    key = decode_secret(secret_b32)
    step = int(at // STEP_SECONDS)
    return any(
        hmac.compare_digest(hotp(key, step + delta), code) for delta in range(-window, window + 1)
    )
