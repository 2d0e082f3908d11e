"""``SYNO.API.Auth`` login and logout for the DSM client (reference §3, §7; cases 3-11, 16).

One request per login attempt and no retry on refusal, with one deliberate exception: when an
OTP login with Auth v7 succeeds but DSM hands out no device id (DSM 7.4.1-90080's bug,
atom2ueki/mcp-server-synology#75), that session is logged out and the same login is made once
more with Auth v6, which answers with ``did``. This happens only after DSM accepted the code,
only once, and only when discovery says v6 is offered. DSM 7.0.1's empty ``device_id`` is
avoided instead: an OTP login goes without ``format=sid``, the parameter that triggers it.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from nas_agent.dsm.errors import (
    AUTH_API,
    DsmAccountDisabled,
    DsmAccountLocked,
    DsmAuthError,
    DsmDeviceIdNotIssued,
    DsmDeviceRevoked,
    DsmIpBlocked,
    DsmOtpNotEnrolled,
    DsmOtpRequired,
    DsmOtpWrong,
    DsmPasswordExpired,
    DsmProtocolError,
    DsmWrongPassword,
)
from nas_agent.dsm.transport import Transport
from nas_agent.dsm.types import ApiInfo, Session

_log = logging.getLogger(__name__)

OTP_REQUIRED = 403
TOKEN_PLACEHOLDER = "--------"
_BY_CODE = {
    400: DsmWrongPassword,
    401: DsmAccountDisabled,
    404: DsmOtpWrong,
    406: DsmOtpNotEnrolled,
    407: DsmIpBlocked,
    408: DsmPasswordExpired,
    409: DsmPasswordExpired,
    410: DsmPasswordExpired,
    411: DsmAccountLocked,
}


def auth_error(
    code: int, account: str, sent_device_id: bool, errors: Mapping[str, Any]
) -> DsmAuthError:
    if code == OTP_REQUIRED:
        # With a device id, 403 means DSM no longer knows that device (acme.sh's reading).
        return (DsmDeviceRevoked if sent_device_id else DsmOtpRequired)(code, account, errors)
    return _BY_CODE.get(code, DsmAuthError)(code, account, errors)


def _login_once(
    transport: Transport,
    info: ApiInfo,
    version: int,
    account: str,
    password: str,
    device_id: str | None,
    device_name: str,
    otp_code: str | None,
) -> Session:
    form = {
        "api": AUTH_API,
        "method": "login",
        "version": str(version),
        "account": account,
        "passwd": password,
        "enable_syno_token": "yes",
    }
    if device_id:
        form.update(device_name=device_name, device_id=device_id)
    if otp_code:
        form.update(otp_code=otp_code, enable_device_token="yes", device_name=device_name)
    else:
        # Not on an OTP login: DSM 7.0.1-42218 U2 answers one sent with format=sid with an
        # empty device_id, and dropping format fixed it (§3.4; home-assistant/core#64867). The
        # sid is in the JSON answer either way (format=sid or DSM's default, the cookie).
        form["format"] = "sid"

    def refuse(code: int, api: str, method: str, errors: Mapping[str, Any]) -> Exception:
        return auth_error(code, account, bool(device_id), errors)

    # Everything in the body, the token flag in both places: DSM's POST quirk (case 11).
    response = transport.send(info.auth_path, query={"enable_syno_token": "yes"}, form=form)
    data = transport.envelope(response, AUTH_API, "login", refuse)
    sid = data.get("sid")
    token = data.get("synotoken")
    if not isinstance(sid, str) or not sid or not (token is None or isinstance(token, str)):
        raise DsmProtocolError(transport.base_url, "SYNO.API.Auth login: no sid in the answer")
    issued = data.get("device_id" if version > 6 else "did")
    session = Session(
        account=account,
        auth_version=version,
        sid=sid,
        synotoken=token or None,
        device_id=issued if isinstance(issued, str) and issued else None,
    )
    if token == TOKEN_PLACEHOLDER:
        logout(transport, info, session)
        raise DsmProtocolError(
            transport.base_url, "SYNO.API.Auth login: DSM answered its placeholder SynoToken"
        )
    return session


def login(
    transport: Transport,
    info: ApiInfo,
    account: str,
    password: str,
    *,
    device_id: str | None,
    device_name: str,
    otp_code: str | None,
    auth_version: int | None = None,
) -> Session:
    version = auth_version or info.auth_max_version
    if not info.auth_min_version <= version <= info.auth_max_version:
        raise ValueError(
            f"Auth v{version} is outside what DSM offers"
            f" (v{info.auth_min_version}-v{info.auth_max_version})"
        )
    args = (account, password, device_id, device_name, otp_code)
    session = _login_once(transport, info, version, *args)
    if otp_code and session.device_id is None and version > 6 and info.auth_min_version <= 6:
        _log.info(
            "DSM accepted the one-time code for %s but issued no device id with Auth v%d;"
            " logging out and asking once more with Auth v6",
            account,
            version,
        )
        logout(transport, info, session)
        try:
            session = _login_once(transport, info, 6, *args)
        except DsmOtpWrong as exc:
            # A DSM that refuses to accept the same code twice: a fresh code is needed.
            raise DsmDeviceIdNotIssued((version, 6)) from exc
    if otp_code and session.device_id is None:
        tried = (version, 6) if session.auth_version != version else (version,)
        logout(transport, info, session)
        raise DsmDeviceIdNotIssued(tried)
    return session


def logout(transport: Transport, info: ApiInfo, session: Session) -> None:
    transport.call(
        info.auth_path,
        AUTH_API,
        "logout",
        session.auth_version,
        {"_sid": session.sid},
        token=session.synotoken,
    )
