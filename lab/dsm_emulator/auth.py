"""``SYNO.API.Auth`` login and logout (reference §3, §7; cases 3-11, 16), and what clients read
before a login: ``SYNO.API.Encryption`` ``getinfo`` and DSM 7's ``SYNO.API.Auth.UIConfig``."""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Response
from nas_agent import totp

from .encryption import CIPHER_KEY, Unreadable
from .envelope import ApiFailure, success
from .faults import PASSWORD_STATES
from .recording import Incoming
from .state import NO_SESSION, Emulator

WRONG_PASSWORD = 400
DISABLED = 401
OTP_REQUIRED = 403
OTP_WRONG = 404
OTP_NOT_ENROLLED = 406
IP_BLOCKED = 407
TOKEN_PLACEHOLDER = "--------"
_DEVICE_COOKIE_SECONDS = 30 * 24 * 3600

# How the login asked for a SynoToken: "real", "placeholder" (DSM's "--------") or "none".
_TokenMode = str


def _yes(value: object) -> bool:
    return value == "yes"


def _decrypted(emu: Emulator, form: dict[str, str]) -> dict[str, str]:
    """The body with N4S4's encrypted field (§3.2) replaced by the fields it carries.

    A field sent in clear as well wins: N4S4 encrypts ``otp_code=""`` and then sends the real
    code (and ``device_id``) in clear beside it.
    """
    if CIPHER_KEY not in form:
        return form
    try:
        hidden = emu.encryption.decrypt(form[CIPHER_KEY])
    except Unreadable:
        # Emulator choice (DSM's answer is unknown): credentials it cannot read are wrong ones.
        raise ApiFailure(WRONG_PASSWORD) from None
    return {**hidden, **{k: v for k, v in form.items() if k != CIPHER_KEY}}


def _login_fields(emu: Emulator, incoming: Incoming) -> tuple[dict[str, str], _TokenMode]:
    """The login parameters DSM reads, with its POST quirk (reference §3.1, case 11).

    A POST whose body carries fields asks for a SynoToken only with ``enable_syno_token=yes``
    in both body and query: body only gives the placeholder token, query only gives none.
    """
    form = _decrypted(emu, incoming.form)
    # The other fields are read from query and body together, the body winning. §3.1 ([one],
    # acme.sh 7d7789ae) says a POST must not mix them but shows no answer to one that does:
    # emulator choice, the lenient reading.
    fields = {**incoming.query, **form}
    if incoming.method != "POST" or not form:
        # A GET, or a POST with everything in the query (the quirk is about a body that carries
        # the fields; a bodiless POST is read like a GET: emulator choice, the lenient reading).
        return fields, "real" if _yes(fields.get("enable_syno_token")) else "none"
    in_body = _yes(form.get("enable_syno_token"))
    in_query = _yes(incoming.query.get("enable_syno_token"))
    mode = "real" if in_body and in_query else ("placeholder" if in_body else "none")
    return fields, mode


def _otp_required(emu: Emulator) -> ApiFailure:
    if not emu.profile.otp_403_details:
        return ApiFailure(OTP_REQUIRED)
    types = [{"type": "authenticator"}, {"type": "fido"}, {"type": "otp"}]
    return ApiFailure(OTP_REQUIRED, {"token": secrets.token_urlsafe(24), "types": types})


def login(emu: Emulator, incoming: Incoming, version: int) -> Response:
    fields, token_mode = _login_fields(emu, incoming)
    state = emu.controls.account
    if state.ip_blocked:
        raise ApiFailure(IP_BLOCKED)
    account = fields.get("account", "")
    if account != emu.user or not fields.get("passwd") or fields["passwd"] != emu.password:
        raise ApiFailure(WRONG_PASSWORD)
    if state.disabled:
        raise ApiFailure(DISABLED)
    expired = PASSWORD_STATES[state.password]
    if expired is not None:
        raise ApiFailure(expired)

    used_otp = False
    issued_device = ""
    if emu.otp_secret is None:
        if state.otp_enforced:
            raise ApiFailure(OTP_NOT_ENROLLED)
    elif not emu.devices.is_valid(account, fields.get("device_id", "")):
        # A stale or unknown device id is answered like a missing code (acme.sh's flow).
        code = fields.get("otp_code", "")
        if not code:
            raise _otp_required(emu)
        if not totp.verify(emu.otp_secret, code, emu.clock()):
            raise ApiFailure(OTP_WRONG)
        first_use = emu.sessions.first_use_of(code, emu.clock())
        if not first_use and emu.controls.faults.otp_single_use:
            raise ApiFailure(OTP_WRONG)
        used_otp = True
        wants_device = _yes(fields.get("enable_device_token"))
        if wants_device and not (version >= 7 and emu.profile.v7_issues_no_device_id):
            issued_device = emu.devices.issue(account, fields.get("device_name", ""))

    # A placeholder session demands no token (§3.5 "Placeholder sessions", N4S4's client on real
    # DSM): the client never learnt a secret, so _sid or the id cookie suffices.
    session = emu.sessions.create(account, with_token=token_mode == "real")
    data: dict[str, object] = {"is_portal_port": False, "sid": session.sid}
    if token_mode == "real":
        data["synotoken"] = session.token
    elif token_mode == "placeholder":
        data["synotoken"] = TOKEN_PLACEHOLDER
    if version >= 7:
        data["account"] = account
        # Real DSM 7 answers the Noise IK message N4S4 sends as ``ik_message`` (begun from the
        # UIConfig _SSID key) with its reply in data.ik_message, which N4S4 decodes whenever it
        # finds a string there ([N4S4] auth.py _finish_noise_handshake); captures of OTP logins
        # that sent none show "" (§3.3). The emulator runs no Noise handshake: it leaves the
        # field out when the client sent one — N4S4 then skips the handshake and its optional
        # X-SYNO-HASH header, and logs in — and keeps the captured "" otherwise.
        if used_otp and "ik_message" not in fields:
            data["ik_message"] = ""
    if issued_device:
        data["device_id" if version >= 7 else "did"] = issued_device
    response = success(data)
    if issued_device:
        response.set_cookie(
            "did", issued_device, max_age=_DEVICE_COOKIE_SECONDS, path="/", httponly=True
        )
    # dsm-certtool sends no format and works on real DSM with its cookie jar alone ([CERTTOOL],
    # §1), so DSM's default must be cookie. Only an explicit format=sid goes without the cookie.
    if fields.get("format") != "sid":
        response.set_cookie("id", session.sid, path="/", httponly=True)
    return response


def logout(emu: Emulator, incoming: Incoming, version: int) -> Response:
    sid = incoming.param("_sid") or incoming.cookies.get("id")
    if not sid:
        # [N4S4] logs out with neither _sid nor cookie and raises unless DSM answers success; it
        # has done so for years against DSM 6 and 7, and zzarbi/synology#7 saw DSM answer such
        # a logout with success. Single-sourced: the lenient reading, success (ending nothing).
        return success()
    if not emu.sessions.end(sid):
        raise ApiFailure(NO_SESSION)  # emulator choice: a second logout is visible as 119
    return success()


def encryption_info(emu: Emulator, incoming: Incoming, version: int) -> Response:
    """``SYNO.API.Encryption`` ``getinfo`` (any ``format``): no session, it comes before login."""
    return success(emu.encryption.info(int(emu.clock())))


def ui_config(emu: Emulator, incoming: Incoming, version: int) -> Response:
    """``SYNO.API.Auth.UIConfig`` ``get``: DSM 7's login page settings and the ``_SSID`` cookie.

    [N4S4]'s DSM 7 login needs HTTP 200 and ``_SSID``: DSM's X25519 public key, base64 with
    ``-_`` and no padding, the static key of its Noise IK handshake. The emulator never answers
    that handshake (see ``login``), so a fresh key per request serves; the settings themselves
    are left out (no client reads them).
    """
    public = X25519PrivateKey.generate().public_key().public_bytes_raw()
    response = success()
    cookie = base64.urlsafe_b64encode(public).decode("ascii").rstrip("=")
    response.set_cookie("_SSID", cookie, path="/", httponly=True)
    return response
