"""Errors of the DSM web-API client (the DsmError subtree of ``nas_agent.errors``).

    AgentError
    └── DsmError
        ├── DsmTransportError        .url, .status: no usable answer (connection, timeout, non-200)
        │   ├── DsmTlsError          DSM's certificate is untrusted: configure a CA file or insecure
        │   └── DsmProtocolError     HTTP 200 but not DSM's JSON envelope (or not its fields)
        ├── DsmApiError              .code, .api, .method, .errors: DSM answered success:false
        │   ├── DsmSessionError      119/106/107: sid unknown, expired, or the SynoToken is missing
        │   ├── DsmNotAdmin          105: the account is not in the administrators group
        │   └── DsmAuthError         login refused; never retried (tries count towards auto-block)
        │       ├── DsmWrongPassword      400
        │       ├── DsmAccountDisabled    401
        │       ├── DsmOtpRequired        403 without a device id: run `certdrop-agent dsm-login`
        │       ├── DsmDeviceRevoked      403 with a device id: the stored id was cleared; re-enrol
        │       ├── DsmOtpWrong           404
        │       ├── DsmOtpNotEnrolled     406: policy enforces 2-step but the account has none
        │       ├── DsmIpBlocked          407
        │       ├── DsmPasswordExpired    408/409/410 (.code tells which)
        │       └── DsmAccountLocked      411
        ├── DsmDeviceIdNotIssued     DSM accepted the OTP code but handed out no device id
        ├── DsmDuplicateDescription  .desc, .ids: several certificates share the description
        └── DsmCertificateNotFound   .wanted: no certificate with that id or description

Only transport errors are transient. Messages never contain a password, sid, token or device id.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from nas_agent.errors import AgentError

AUTH_API = "SYNO.API.Auth"
_DSM_LOGIN = "run `certdrop-agent dsm-login` to enter a one-time code and remember this device"


class DsmError(AgentError):
    """Base of the DSM client's errors."""


class DsmTransportError(DsmError):
    transient = True

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"DSM at {url}: {reason}")


class DsmTlsError(DsmTransportError):
    # A certificate DSM presents today it presents tomorrow: the configuration must change.
    transient = False


class DsmProtocolError(DsmTransportError):
    pass


class DsmApiError(DsmError):
    def __init__(
        self,
        code: int,
        api: str,
        method: str,
        errors: Mapping[str, Any] | None = None,
        message: str = "",
    ) -> None:
        self.code = code
        self.api = api
        self.method = method
        self.errors = dict(errors or {})
        super().__init__(message or f"DSM refused {api} {method} with error {code}")


class DsmSessionError(DsmApiError):
    def __init__(self, code: int, api: str, method: str, errors: Mapping[str, Any] | None = None):
        super().__init__(
            code,
            api,
            method,
            errors,
            f"DSM rejected the session for {api} {method} (error {code}: unknown or expired sid,"
            " or missing SynoToken)",
        )


class DsmNotAdmin(DsmApiError):
    def __init__(self, code: int, api: str, method: str, errors: Mapping[str, Any] | None = None):
        super().__init__(
            code,
            api,
            method,
            errors,
            f"DSM refused {api} {method} (error {code}): the account must be a member of the"
            " administrators group to manage certificates",
        )


class DsmAuthError(DsmApiError):
    """DSM refused the login. ``.account`` names the account (never the password)."""

    _explanation = "DSM refused the login"

    def __init__(self, code: int, account: str, errors: Mapping[str, Any] | None = None) -> None:
        self.account = account
        super().__init__(
            code,
            AUTH_API,
            "login",
            errors,
            f"{self._explanation} (account {account!r}, DSM error {code})",
        )


class DsmWrongPassword(DsmAuthError):
    _explanation = "DSM knows no such account or the password is wrong"


class DsmAccountDisabled(DsmAuthError):
    _explanation = "the DSM account is disabled"


class DsmOtpRequired(DsmAuthError):
    _explanation = (
        "the DSM account uses 2-step verification: an OTP or remembered device is needed;"
        f" {_DSM_LOGIN}"
    )


class DsmDeviceRevoked(DsmAuthError):
    _explanation = (
        "DSM no longer accepts the remembered device id (expired or revoked); it was cleared,"
        f" {_DSM_LOGIN}"
    )


class DsmOtpWrong(DsmAuthError):
    _explanation = "DSM rejected the one-time code (wrong, or the clocks disagree)"


class DsmOtpNotEnrolled(DsmAuthError):
    _explanation = (
        "DSM policy enforces 2-step verification but the account has none set up; sign in to"
        " DSM as that account once and enrol an authenticator"
    )


class DsmIpBlocked(DsmAuthError):
    _explanation = (
        "DSM blocks this source address (auto-block after failed logins, or the deny list);"
        " unblock it under Control Panel > Security"
    )


class DsmPasswordExpired(DsmAuthError):
    _explanation = (
        "the DSM account's password has expired or must be changed; sign in to DSM and change it"
    )


class DsmAccountLocked(DsmAuthError):
    _explanation = "DSM locked the account after too many failed logins"


class DsmDeviceIdNotIssued(DsmError):
    def __init__(self, auth_versions: Sequence[int]) -> None:
        self.auth_versions = tuple(auth_versions)
        tried = ", ".join(f"v{v}" for v in self.auth_versions)
        super().__init__(
            f"DSM accepted the one-time code but issued no device id (Auth {tried}), so the"
            f" next run would need a code again; {_DSM_LOGIN} with a fresh code"
        )


class DsmDuplicateDescription(DsmError):
    def __init__(self, desc: str, ids: Sequence[str]) -> None:
        self.desc = desc
        self.ids = tuple(ids)
        super().__init__(
            f"{len(self.ids)} DSM certificates have the description {desc!r} (ids"
            f" {', '.join(self.ids)}); refusing to guess: configure the certificate id or make"
            " the descriptions unique"
        )


class DsmCertificateNotFound(DsmError):
    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        super().__init__(f"DSM has no certificate {wanted}")
