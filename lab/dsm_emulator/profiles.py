"""What differs between the DSM releases the emulator imitates (reference §2, §3, §5, §10).

Everything else — envelope, codes, certificate store semantics — is shared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # Where SYNO.API.Auth lives and which versions it answers (discovery reports these).
    auth_path: str
    auth_max_version: int
    # Further CGIs that answer SYNO.API.Auth although discovery lists only auth_path.
    auth_also_at: frozenset[str]
    # SYNO.API.Info is listed at this path; clients still call query.cgi, which always answers.
    info_path: str
    encryption_path: str
    # DSM 6.2.3 rejects ECC keys with 5529.
    accepts_ec_keys: bool
    # DSM 7 adds errors.token/errors.types to the "OTP required" 403.
    otp_403_details: bool
    # DSM 7 service objects carry multiple_cert/user_setable.
    service_extra_fields: bool
    # DSM 6 drops a binding whose old_id equals its id (N4S4 comment); later releases ignore it.
    same_id_binding_removes: bool
    # DSM 7.4.1: multipart file names holding a path are refused with 108/upload_err -8.
    rejects_path_filenames: bool
    # DSM 7.4.1: an Auth v7 OTP login with enable_device_token issues no device id (v6 does).
    v7_issues_no_device_id: bool
    # DSM 7 lists SYNO.API.Auth.UIConfig (§2 [MIB]); N4S4's DSM 7 login starts there.
    auth_ui_config: bool
    # What SYNO.DSM.Info reports; the build number ([MIB] reads it as an int) follows the "-".
    dsm_version: str


DSM6 = Profile(
    name="dsm6",
    auth_path="auth.cgi",
    auth_max_version=6,
    # Auth at entry.cgi on DSM 6 is 102 (§2, §10 case 2; acme.sh#4721, #5184).
    auth_also_at=frozenset(),
    info_path="query.cgi",
    encryption_path="encryption.cgi",
    accepts_ec_keys=False,
    otp_403_details=False,
    service_extra_fields=False,
    same_id_binding_removes=True,
    rejects_path_filenames=False,
    v7_issues_no_device_id=False,
    auth_ui_config=False,
    dsm_version="DSM 6.2.3-25426",
)
DSM7 = Profile(
    name="dsm7",
    auth_path="entry.cgi",
    auth_max_version=7,
    # N4S4's client logs in and out at auth.cgi and works against DSM 6 and 7 (§3.5, [one]):
    # emulator choice, the lenient reading, so DSM 7 keeps answering Auth there.
    auth_also_at=frozenset({"auth.cgi"}),
    info_path="entry.cgi",
    encryption_path="entry.cgi",
    accepts_ec_keys=True,
    otp_403_details=True,
    service_extra_fields=True,
    same_id_binding_removes=False,
    rejects_path_filenames=False,
    v7_issues_no_device_id=False,
    auth_ui_config=True,
    dsm_version="DSM 7.2.1-69057",
)
# DSM 7.4.1 is DSM 7 with two more refusals.
DSM74 = dataclasses.replace(
    DSM7,
    name="dsm7.4",
    rejects_path_filenames=True,
    v7_issues_no_device_id=True,
    dsm_version="DSM 7.4.1-90080",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (DSM6, DSM7, DSM74)}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown DSM profile {name!r}; choose one of {known}") from None
