"""The emulator answers discovery and login as DSM does (reference §2-§3; cases 1-11)."""

from __future__ import annotations

import pytest

from tests.agent.dsm_fixtures import (
    ALL_PROFILES,
    DSM7_PROFILES,
    PASSWORD,
    USER,
    DsmLab,
    otp_code,
    wrong_otp_code,
)

CRT = "SYNO.Core.Certificate.CRT"
EXPECTED_AUTH = {"dsm6": ("auth.cgi", 6), "dsm7": ("entry.cgi", 7), "dsm7.4": ("entry.cgi", 7)}


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_discovery_of_auth_returns_only_that_entry_with_the_profiles_path(lab, profile):
    raw = lab.raw(lab.start(profile))
    response = raw.get(
        "query.cgi", api="SYNO.API.Info", version=1, method="query", query="SYNO.API.Auth"
    )
    path, max_version = EXPECTED_AUTH[profile]
    assert response.status_code == 200
    assert response.headers["Content-Type"] == 'application/json; charset="UTF-8"'
    assert response.json() == {
        "data": {"SYNO.API.Auth": {"maxVersion": max_version, "minVersion": 1, "path": path}},
        "success": True,
    }


def test_discovery_lists_certificate_apis_and_leaves_unknown_names_out(lab):
    raw = lab.raw(lab.start("dsm7"))
    names = "SYNO.Core.Certificate,SYNO.Core.Certificate.CRT,SYNO.No.Such"
    data = raw.get("query.cgi", api="SYNO.API.Info", version=1, method="query", query=names)
    entries = data.json()["data"]
    assert sorted(entries) == ["SYNO.Core.Certificate", "SYNO.Core.Certificate.CRT"]
    assert entries["SYNO.Core.Certificate"]["requestFormat"] == "JSON"


@pytest.mark.parametrize("profile", ["dsm6", "dsm7"])
def test_info_query_without_query_parameter_lists_every_api(lab, profile):
    """Home Assistant's DSM library discovers APIs with no ``query`` parameter at all.

    [MIB] 2.11.0 ``SynologyDSM.discover_apis`` (synology_dsm.py l.169-177) calls
    ``self.get(API_INFO, "query")`` with no params, i.e.
    ``GET /webapi/query.cgi?api=SYNO.API.Info&version=1&method=query``, stores ``data`` as its
    API table, and raises ``SynologyDSMAPINotExistsException("SYNO.API.Auth")`` when Auth is not
    in it. Real DSM answers that request with every API (the library logs in to DSM 6 and 7 in
    Home Assistant; its test mock returns the full DSM_6/DSM_7_API_INFO for any SYNO.API.Info
    URL, tests/__init__.py). The emulator answered ``{"data":{},"success":true}``, so the
    library could not even attempt a login (verified by running the library against the
    emulator). Fix: lab/dsm_emulator/app.py ``_discovery`` — an absent ``query`` means ``all``.
    """
    raw = lab.raw(lab.start(profile))
    answer = raw.get("query.cgi", api="SYNO.API.Info", version="1", method="query").json()
    assert answer["success"] is True
    assert {"SYNO.API.Auth", "SYNO.Core.Certificate", CRT} <= set(answer["data"]), answer


def test_login_at_entry_cgi_on_dsm6_is_error_102(lab):
    raw = lab.raw(lab.start("dsm6"))
    assert raw.login(cgi="entry.cgi") == {"error": {"code": 102}, "success": False}


@pytest.mark.parametrize("profile", DSM7_PROFILES)
def test_login_at_auth_cgi_on_dsm7_works_although_discovery_lists_entry_cgi(lab, profile):
    """The lenient reading of a single-sourced fact: N4S4's client logs in at auth.cgi and works
    against DSM 6 and 7 (reference §3.5, [N4S4]); only the opposite direction, Auth at
    entry.cgi on DSM 6, is sourced as 102 (§10 case 2)."""
    raw = lab.raw(lab.start(profile))
    assert raw.login(cgi="auth.cgi")["success"] is True
    found = raw.get(
        "query.cgi", api="SYNO.API.Info", version=1, method="query", query="SYNO.API.Auth"
    )
    assert found.json()["data"]["SYNO.API.Auth"]["path"] == "entry.cgi"


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_login_above_the_max_version_is_error_104(lab, profile):
    raw = lab.raw(lab.start(profile))
    body = raw.login(version=EXPECTED_AUTH[profile][1] + 1)
    assert body == {"error": {"code": 104}, "success": False}


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_plain_login_returns_sid_token_and_portal_flag_plus_account_on_v7(lab, profile):
    raw = lab.raw(lab.start(profile))
    data = raw.login()["data"]
    expected = {"is_portal_port", "sid", "synotoken"} | (
        {"account"} if profile != "dsm6" else set()
    )
    assert set(data) == expected
    assert data["sid"] and data["synotoken"] and data["is_portal_port"] is False
    if profile != "dsm6":
        assert data["account"] == USER


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_wrong_password_is_400_with_http_200(lab, profile):
    raw = lab.raw(lab.start(profile))
    assert raw.login(passwd=PASSWORD + "x") == {"error": {"code": 400}, "success": False}
    assert raw.login(passwd="") == {"error": {"code": 400}, "success": False}


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize(
    ("state", "code"),
    [
        ({"disabled": True}, 401),
        ({"password": "expired_cannot_change"}, 408),
        ({"password": "expired"}, 409),
        ({"password": "must_change"}, 410),
        ({"otp_enforced": True}, 406),
        ({"ip_blocked": True}, 407),
    ],
)
def test_account_states_give_their_auth_codes(lab, profile, state, code):
    handle = lab.start(profile)
    handle.emulator.controls.update_account(**state)
    assert lab.raw(handle).login() == {"error": {"code": code}, "success": False}


def test_enforced_2fa_is_not_reported_once_the_account_has_otp(lab):
    handle = lab.start("dsm7", otp=True)
    handle.emulator.controls.update_account(otp_enforced=True)
    assert lab.raw(handle).login()["error"]["code"] == 403


@pytest.mark.parametrize("profile", DSM7_PROFILES)
def test_otp_account_without_code_is_403_with_token_and_types_on_dsm7(lab, profile):
    error = lab.raw(lab.start(profile, otp=True)).login()["error"]
    assert error["code"] == 403
    assert error["errors"]["token"]
    assert {"type": "otp"} in error["errors"]["types"]


def test_otp_account_without_code_is_a_bare_403_on_dsm6(lab):
    body = lab.raw(lab.start("dsm6", otp=True)).login()
    assert body == {"error": {"code": 403}, "success": False}


@pytest.mark.parametrize(("profile", "field"), [("dsm6", "did"), ("dsm7", "device_id")])
def test_otp_login_remembering_the_device_returns_its_id_and_a_did_cookie(lab, profile, field):
    raw = lab.raw(lab.start(profile, otp=True))
    response = raw.get(
        raw.profile.auth_path,
        api="SYNO.API.Auth",
        method="login",
        version=raw.profile.auth_max_version,
        account=USER,
        passwd=PASSWORD,
        format="sid",
        enable_syno_token="yes",
        otp_code=otp_code(),
        enable_device_token="yes",
        device_name="certdrop-test",
    )
    data = response.json()["data"]
    assert data[field]
    assert response.cookies.get("did") == data[field]
    assert "HttpOnly" in response.headers["Set-Cookie"]


def test_dsm74_v7_otp_login_issues_no_device_id_but_v6_does(lab):
    raw = lab.raw(lab.start("dsm7.4", otp=True))
    remember = {"otp_code": otp_code(), "enable_device_token": "yes", "device_name": "n"}
    v7 = raw.login(version=7, **remember)["data"]
    v6 = raw.login(version=6, **remember)["data"]
    assert "device_id" not in v7 and "did" not in v7
    assert v6["did"]


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_wrong_otp_is_404(lab, profile):
    raw = lab.raw(lab.start(profile, otp=True))
    body = raw.login(otp_code=wrong_otp_code(), enable_device_token="yes", device_name="n")
    assert body == {"error": {"code": 404}, "success": False}


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_remembered_device_logs_in_without_otp(lab, profile):
    raw = lab.raw(lab.start(profile, otp=True))
    remember = {"otp_code": otp_code(), "enable_device_token": "yes", "device_name": "n"}
    device_id = raw.login(version=6, **remember)["data"]["did"]
    data = raw.login(device_id=device_id, device_name="n")["data"]
    assert data["sid"]


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_revoked_or_unknown_device_id_is_403(lab, profile):
    handle = lab.start(profile, otp=True)
    raw = lab.raw(handle)
    remember = {"otp_code": otp_code(), "enable_device_token": "yes", "device_name": "n"}
    device_id = raw.login(version=6, **remember)["data"]["did"]
    handle.emulator.devices.revoke_all()
    assert raw.login(device_id=device_id, device_name="n")["error"]["code"] == 403
    assert raw.login(device_id="never-issued", device_name="n")["error"]["code"] == 403


def _post_login(raw, *, in_query: bool, in_body: bool):
    form = {
        "api": "SYNO.API.Auth",
        "method": "login",
        "version": str(raw.profile.auth_max_version),
        "account": USER,
        "passwd": PASSWORD,
        "format": "sid",
    }
    if in_body:
        form["enable_syno_token"] = "yes"
    query = {"enable_syno_token": "yes"} if in_query else None
    return raw.post(raw.profile.auth_path, params=query, data=form).json()["data"]


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_post_login_gets_a_real_token_only_with_the_flag_in_both_places(lab, profile):
    raw = lab.raw(lab.start(profile))
    assert _post_login(raw, in_query=False, in_body=True)["synotoken"] == "--------"
    assert "synotoken" not in _post_login(raw, in_query=True, in_body=False)
    token = _post_login(raw, in_query=True, in_body=True)["synotoken"]
    assert token and token != "--------"


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_a_placeholder_token_session_works_like_one_without_a_token(lab, profile):
    # Reference §3.5 "Placeholder sessions": N4S4's client sends the placeholder back and real
    # DSM serves it. test_dsm_emulator_login_variants covers every login variant.
    raw = lab.raw(lab.start(profile))
    data = _post_login(raw, in_query=False, in_body=True)
    assert data["synotoken"] == "--------"
    with_placeholder = raw.api("SYNO.Core.Certificate.CRT", "list", data["sid"], "--------")
    without_token = raw.api("SYNO.Core.Certificate.CRT", "list", data["sid"], None)
    assert with_placeholder.json()["success"] is True
    assert without_token.json()["success"] is True


def test_single_use_otp_knob_refuses_a_code_accepted_before(lab):
    handle = lab.start("dsm7", otp=True)
    raw = lab.raw(handle)
    assert raw.login(otp_code=otp_code())["success"] is True
    assert raw.login(otp_code=otp_code())["success"] is True  # reuse allowed by default
    handle.emulator.controls.update_faults(otp_single_use=True)
    assert raw.login(otp_code=otp_code()) == {"error": {"code": 404}, "success": False}
