"""The emulator's sessions, tokens, permissions and listing (reference §3.5, §4; cases 12-19)."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.agent.dsm_fixtures import ALL_PROFILES, DsmLab, compact, issue, upload_parts

CRT = "SYNO.Core.Certificate.CRT"
NO_SESSION = {"error": {"code": 119}, "success": False}
DATE = re.compile(
    r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4} GMT$"
)
SERVICE_FIELDS = {"display_name", "isPkg", "owner", "service", "subscriber"}


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


@pytest.fixture
def leaf():
    return issue()


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_core_calls_without_sid_or_id_cookie_are_119(lab, profile, leaf):
    raw = lab.raw(lab.start(profile))
    _, token = raw.session()
    assert raw.api(CRT, "list", None, token).json() == NO_SESSION
    assert raw.api("SYNO.Core.Certificate", "export", None, token, id="x").json() == NO_SESSION
    settings = json.dumps([{"id": "a", "old_id": "b", "service": {"service": "ftpd"}}])
    assert (
        raw.api("SYNO.Core.Certificate.Service", "set", None, token, settings=settings).json()
        == NO_SESSION
    )
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem)
    assert raw.import_(None, token, parts) == NO_SESSION


def test_the_id_cookie_of_a_cookie_login_is_a_session(lab):
    raw = lab.raw(lab.start("dsm7"))
    token = raw.login(format="cookie")["data"]["synotoken"]
    assert raw.http.cookies.get("id")
    assert raw.api(CRT, "list", None, token).json()["success"] is True


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_token_session_without_token_is_119_for_list_and_import(lab, profile, leaf):
    raw = lab.raw(lab.start(profile))
    sid, token = raw.session()
    assert token
    assert raw.api(CRT, "list", sid, None).json() == NO_SESSION
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem)
    assert raw.import_(sid, None, parts) == NO_SESSION


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_token_is_accepted_from_header_or_query_and_a_wrong_one_is_119(lab, profile):
    raw = lab.raw(lab.start(profile))
    sid, token = raw.session()
    assert raw.api(CRT, "list", sid, token).json()["success"] is True
    by_query = raw.post(
        "entry.cgi",
        params={"SynoToken": token},
        data={"api": CRT, "method": "list", "version": 1, "_sid": sid},
    )
    assert by_query.json()["success"] is True
    assert raw.api(CRT, "list", sid, token + "x").json() == NO_SESSION


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_session_without_syno_token_works_with_sid_alone(lab, profile):
    raw = lab.raw(lab.start(profile))
    data = raw.login(enable_syno_token="no")["data"]
    assert "synotoken" not in data
    assert raw.api(CRT, "list", data["sid"], None).json()["success"] is True


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_logout_answers_bare_success_and_the_sid_is_then_119(lab, profile):
    raw = lab.raw(lab.start(profile))
    sid, token = raw.session()
    response = raw.get(
        raw.profile.auth_path,
        api="SYNO.API.Auth",
        version=raw.profile.auth_max_version,
        method="logout",
        _sid=sid,
    )
    assert response.text == '{"success":true}'
    assert raw.api(CRT, "list", sid, token).json() == NO_SESSION


def test_n4s4_logout_without_sid_is_answered_success(lab):
    """synology-api logs out with neither ``_sid`` nor a cookie; DSM answers success.

    [N4S4] 0.9.4 auth.py ``logout()``: module-level ``requests.get`` (no cookie jar) of
    ``/webapi/auth.cgi?api=SYNO.API.Auth&version=<v>&method=logout&session=webui`` — no
    ``_sid`` — and raises ``LogoutError`` unless ``success`` is true; the library has shipped this
    for years against DSM 6 and 7 without such reports, and zzarbi/synology#7 observed that DSM
    answers a logout without sid with success ("upstream error for returning 200 on logout
    requests without sid"). The reference's emulator choice (§7: 119 on *reuse* of a
    logged-out sid) concerns API calls, not a sid-less logout. The emulator answered 119, so
    every N4S4 script ended in ``LogoutError`` (seen running the library). Fix:
    lab/dsm_emulator/auth.py ``logout`` — a logout naming no session succeeds (lenient reading).
    """
    handle = lab.start("dsm7")
    raw = lab.raw(handle)
    raw.session()
    fresh = requests.Session()  # no cookie jar shared with the login, like N4S4's requests.get
    fresh.trust_env = False
    answer = fresh.get(
        f"{handle.http_url}/webapi/auth.cgi?api=SYNO.API.Auth",
        params={"version": 6, "method": "logout", "session": "webui"},
        timeout=10,
    ).json()
    assert answer == {"success": True}
    assert handle.emulator.sessions.count() == 1  # it ended no session


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_non_admin_gets_105_on_list_and_import(lab, profile, leaf):
    raw = lab.raw(lab.start(profile, admin=False))
    sid, token = raw.session()
    assert raw.api(CRT, "list", sid, token).json() == {"error": {"code": 105}, "success": False}
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem)
    assert raw.import_(sid, token, parts) == {"error": {"code": 105}, "success": False}


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_list_is_compact_sorted_json_that_acme_sh_regexes_can_read(lab, profile, leaf):
    raw = lab.raw(lab.start(profile))
    sid, token = raw.session()
    desc = '*.exämple.test "prod"'
    created = raw.import_(
        sid, token, upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, desc=desc)
    )
    text = raw.list_text(sid, token)
    assert text == compact(json.loads(text))
    escaped = json.dumps(desc, ensure_ascii=False)[1:-1]
    found = re.search('"desc":"' + re.escape(escaped) + '","id":"([^"]+)"', text)
    assert found and found.group(1) == created["data"]["id"]
    entry = text[found.start() :]
    assert entry.index('"is_default"') < entry.index('"issuer"')


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_list_has_one_default_openssl_dates_and_full_service_objects(lab, profile, leaf):
    raw = lab.raw(lab.start(profile))
    sid, token = raw.session()
    raw.import_(
        sid, token, upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, desc="second")
    )
    certificates = raw.certificates(sid, token)
    assert len(certificates) == 2
    assert [c["is_default"] for c in certificates].count(True) == 1
    for cert in certificates:
        assert DATE.match(cert["valid_from"]) and DATE.match(cert["valid_till"])
        for key in ("is_broken", "renewable", "user_deletable", "key_types", "issuer", "subject"):
            assert key in cert
        assert set(cert["issuer"]) >= {"common_name", "country", "organization"}
        assert isinstance(cert["subject"]["sub_alt_name"], list)
    factory = next(c for c in certificates if c["is_default"])
    assert factory["desc"] == "" and "self_signed_cacrt_info" in factory
    assert {s["service"] for s in factory["services"]} == {"default", "ftpd", "ReverseProxy_1"}
    dsm7_fields = {"multiple_cert", "user_setable"} if profile != "dsm6" else set()
    for service in factory["services"]:
        assert set(service) >= SERVICE_FIELDS
        assert set(service) & {"multiple_cert", "user_setable"} == dsm7_fields
