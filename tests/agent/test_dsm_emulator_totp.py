"""RFC 6238 codes as the emulator checks them (SHA-1, 30 s, 6 digits, one step either side)."""

from __future__ import annotations

import base64

import pytest

from nas_agent import totp

# RFC 6238 appendix B's SHA-1 secret, "12345678901234567890", as an authenticator shows it.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode("ascii")


@pytest.mark.parametrize(
    ("at", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_codes_match_the_rfc_6238_vectors_truncated_to_six_digits(at, eight_digits):
    assert totp.totp(RFC_SECRET, at) == eight_digits[-6:]


def test_secret_may_be_lower_case_spaced_and_unpadded():
    spaced = " ".join(RFC_SECRET.lower().rstrip("=")[i : i + 4] for i in range(0, 32, 4))
    assert totp.totp(spaced, 59) == totp.totp(RFC_SECRET, 59)


def test_a_code_is_accepted_one_step_early_or_late_but_not_two():
    code = totp.totp(RFC_SECRET, 1111111109)
    assert totp.verify(RFC_SECRET, code, 1111111109)
    assert totp.verify(RFC_SECRET, code, 1111111109 + 30)
    assert totp.verify(RFC_SECRET, code, 1111111109 - 30)
    assert not totp.verify(RFC_SECRET, code, 1111111109 + 60)


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef"])
def test_malformed_codes_are_refused(code):
    assert not totp.verify(RFC_SECRET, code, 59)


@pytest.mark.parametrize("secret", ["not base32!", ""])
def test_a_bad_secret_is_a_clear_error(secret):
    with pytest.raises(ValueError, match="OTP secret"):
        totp.totp(secret, 59)
