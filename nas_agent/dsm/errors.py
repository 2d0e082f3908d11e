"""Errors of the DSM web-API client (the DsmError subtree of ``nas_agent.errors``).

    AgentError
    └── DsmError
        ├── DsmTransportError        .url, .status: no usable answer (connection, timeout, non-200)
        │   ├── DsmTlsError          DSM's certificate is untrusted by the configured CA file
        │   │   └── DsmPinMismatch   .served, .pinned, .pin_file: not a pinned certificate
        │   └── DsmProtocolError     HTTP 200 but not DSM's JSON envelope (or not its fields)
        ├── DsmApiError              .dsm_code, .api, .method, .errors: DSM said success:false
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
        │       ├── DsmPasswordExpired    408/409/410 (.dsm_code tells which)
        │       └── DsmAccountLocked      411
        ├── DsmPinFileUnusable       .path, .reason: the pin file cannot be read or written
        ├── DsmDeviceIdNotIssued     DSM accepted the OTP code but handed out no device id
        ├── DsmDuplicateDescription  .desc, .ids: several certificates share the description
        └── DsmCertificateNotFound   .wanted: no certificate with that id or description

Codes are "dsm.<condition>", those of refused logins "dsm.login_<condition>" (the scheme is in
`nas_agent.errors`); DSM's own numeric error stays in `.dsm_code`. Only transport errors are
transient. Messages never contain a password, sid, token or device id.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from nas_agent.errors import AgentError

AUTH_API = "SYNO.API.Auth"
_DSM_LOGIN = "run `certdrop-agent dsm-login` to enter a one-time code and remember this device"


class DsmError(AgentError):
    """Base of the DSM client's errors."""

    code = "dsm.failed"


class DsmTransportError(DsmError):
    code = "dsm.unreachable"
    transient = True

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"DSM at {url}: {reason}")


class DsmTlsError(DsmTransportError):
    code = "dsm.tls_untrusted"
    # A certificate DSM presents today it presents tomorrow: the configuration must change.
    transient = False


class DsmPinMismatch(DsmTlsError):
    """DSM presented a leaf certificate whose SHA-256 is not pinned (`nas_agent.dsm.pinning`):
    refused after the handshake, before anything was sent. Not transient: whoever answers must
    change, or the operator must drop the pin."""

    code = "dsm.tls_pin_mismatch"

    def __init__(self, url: str, served: str, pinned: Sequence[str], pin_file: str) -> None:
        self.served = served
        self.pinned = tuple(pinned)
        self.pin_file = pin_file
        known = ", ".join(f"{sha[:16]}…" for sha in self.pinned)
        super().__init__(
            url,
            f"DSM presents certificate sha256 {served[:16]}…, which is not pinned ({known} in"
            f" {pin_file}): refused before sending anything. Something else may be answering in"
            " DSM's place. If DSM's certificate was changed on purpose, not by this agent, delete"
            f" {pin_file}: the next connection pins the certificate DSM presents then",
        )


class DsmProtocolError(DsmTransportError):
    code = "dsm.protocol_error"


class DsmApiError(DsmError):
    code = "dsm.api_refused"

    def __init__(
        self,
        dsm_code: int,
        api: str,
        method: str,
        errors: Mapping[str, Any] | None = None,
        message: str = "",
    ) -> None:
        self.dsm_code = dsm_code
        self.api = api
        self.method = method
        self.errors = dict(errors or {})
        super().__init__(message or f"DSM refused {api} {method} with error {dsm_code}")


class DsmSessionError(DsmApiError):
    code = "dsm.session_rejected"

    def __init__(
        self, dsm_code: int, api: str, method: str, errors: Mapping[str, Any] | None = None
    ):
        why = "unknown or expired sid, or missing SynoToken"
        message = f"DSM rejected the session for {api} {method} (error {dsm_code}: {why})"
        super().__init__(dsm_code, api, method, errors, message)


class DsmNotAdmin(DsmApiError):
    code = "dsm.not_admin"

    def __init__(
        self, dsm_code: int, api: str, method: str, errors: Mapping[str, Any] | None = None
    ):
        why = "the account must be a member of the administrators group to manage certificates"
        message = f"DSM refused {api} {method} (error {dsm_code}): {why}"
        super().__init__(dsm_code, api, method, errors, message)


class DsmAuthError(DsmApiError):
    """DSM refused the login. ``.account`` names the account (never the password)."""

    code = "dsm.login_failed"
    _explanation = "DSM refused the login"

    def __init__(
        self, dsm_code: int, account: str, errors: Mapping[str, Any] | None = None
    ) -> None:
        self.account = account
        super().__init__(
            dsm_code,
            AUTH_API,
            "login",
            errors,
            f"{self._explanation} (account {account!r}, DSM error {dsm_code})",
        )


class DsmWrongPassword(DsmAuthError):
    code = "dsm.login_wrong_password"
    _explanation = "DSM knows no such account or the password is wrong"


class DsmAccountDisabled(DsmAuthError):
    code = "dsm.login_account_disabled"
    _explanation = "the DSM account is disabled"


class DsmOtpRequired(DsmAuthError):
    code = "dsm.login_otp_required"
    _explanation = (
        "the DSM account uses 2-step verification: an OTP or remembered device is needed;"
        f" {_DSM_LOGIN}"
    )


class DsmDeviceRevoked(DsmAuthError):
    code = "dsm.login_device_revoked"
    _explanation = (
        "DSM no longer accepts the remembered device id (expired or revoked); it was cleared,"
        f" {_DSM_LOGIN}"
    )


class DsmOtpWrong(DsmAuthError):
    code = "dsm.login_otp_wrong"
    _explanation = "DSM rejected the one-time code (wrong, or the clocks disagree)"


class DsmOtpNotEnrolled(DsmAuthError):
    code = "dsm.login_otp_not_enrolled"
    _explanation = (
        "DSM policy enforces 2-step verification but the account has none set up; sign in to"
        " DSM as that account once and enrol an authenticator"
    )


class DsmIpBlocked(DsmAuthError):
    code = "dsm.login_ip_blocked"
    _explanation = (
        "DSM blocks this source address (auto-block after failed logins, or the deny list);"
        " unblock it under Control Panel > Security"
    )


class DsmPasswordExpired(DsmAuthError):
    code = "dsm.login_password_expired"
    _explanation = (
        "the DSM account's password has expired or must be changed; sign in to DSM and change it"
    )


class DsmAccountLocked(DsmAuthError):
    code = "dsm.login_account_locked"
    _explanation = "DSM locked the account after too many failed logins"


class DsmPinFileUnusable(DsmError):
    """The file holding DSM's pinned certificates cannot be read, parsed or written."""

    code = "dsm.tls_pin_file_unusable"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"DSM's certificate pin file {path}: {reason}. Fix it, or delete it to pin the"
            " certificate DSM presents at the next connection"
        )


class DsmDeviceIdNotIssued(DsmError):
    code = "dsm.device_id_not_issued"

    def __init__(self, auth_versions: Sequence[int]) -> None:
        self.auth_versions = tuple(auth_versions)
        tried = ", ".join(f"v{v}" for v in self.auth_versions)
        super().__init__(
            f"DSM accepted the one-time code but issued no device id (Auth {tried}), so the"
            f" next run would need a code again; {_DSM_LOGIN} with a fresh code"
        )


class DsmDuplicateDescription(DsmError):
    code = "dsm.certificate_ambiguous"

    def __init__(self, desc: str, ids: Sequence[str]) -> None:
        self.desc = desc
        self.ids = tuple(ids)
        super().__init__(
            f"{len(self.ids)} DSM certificates have the description {desc!r} (ids"
            f" {', '.join(self.ids)}); refusing to guess which to replace: give the site its own"
            " description in agent.conf, or rename or delete the other certificates in DSM"
        )


class DsmCertificateNotFound(DsmError):
    code = "dsm.certificate_not_found"

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        super().__init__(f"DSM has no certificate {wanted}")
