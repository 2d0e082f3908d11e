"""Client variants the reference records, served by the emulator as real DSM serves them.

- [CERTTOOL] Logiraptor/dsm-certtool logs in without ``format`` and then relies on the ``id``
  cookie alone (reference §1, §3.2).
- [YCHIU] ychiu1211/dsmctl (live-verified on DSM 7.3) sends the whole import as one multipart
  body whose text fields carry api, method, _sid and SynoToken, with an empty query (§5.1).
- [N4S4] N4S4/synology-api logs in and out at ``auth.cgi`` and works against DSM 6 and 7 (§3.5).
- [N4S4]/[YCHIU] ``SYNO.Core.Certificate.CRT`` ``delete`` takes ``ids``, a JSON array (§6.2).

The last three are single-sourced; the emulator takes the lenient reading that keeps these real
clients working, and its answers to a delete DSM's sources do not show are emulator choices.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.agent.dsm_fixtures import (
    ALL_PROFILES,
    DSM7_PROFILES,
    FILE_TYPE,
    PASSWORD,
    USER,
    DsmLab,
    issue,
    reencoded_key,
    upload_parts,
)

CRT = "SYNO.Core.Certificate.CRT"
SERVICE = "SYNO.Core.Certificate.Service"


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


@pytest.fixture(scope="module")
def leaf():
    return issue(names=("variant.example.test",))


def _error(code):
    return {"error": {"code": code}, "success": False}


@pytest.mark.parametrize("profile", DSM7_PROFILES)
def test_a_login_without_format_sets_the_id_cookie_that_alone_lists(lab, profile):
    """dsm-certtool's GET login: no format, no _sid afterwards, only its cookie jar."""
    handle = lab.start(profile)
    http = requests.Session()
    http.trust_env = False
    base = f"{handle.http_url}/webapi/entry.cgi"
    login = {"api": "SYNO.API.Auth", "version": "7", "method": "login"}
    answer = http.get(base, params={**login, "account": USER, "passwd": PASSWORD}, timeout=10)
    assert answer.json()["success"] is True, answer.json()
    assert answer.cookies.get("id") == answer.json()["data"]["sid"]
    listed = http.get(base, params={"api": CRT, "method": "list", "version": "1"}, timeout=10)
    assert listed.json()["success"] is True, listed.json()


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_an_import_with_api_method_sid_and_token_as_multipart_fields_works(lab, profile, leaf):
    """dsmctl's import: every parameter a text part (no filename), nothing in the query."""
    raw = lab.raw(lab.start(profile))
    sid, token = raw.session()
    fields = [
        ("api", (None, "SYNO.Core.Certificate")),
        ("version", (None, "1")),
        ("method", (None, "import")),
        ("id", (None, "")),
        ("desc", (None, "dsmctl")),
        ("_sid", (None, sid)),
        ("SynoToken", (None, token)),
    ]
    files = [
        ("key", ("server.key", reencoded_key(leaf.key_pem, "traditional"), FILE_TYPE)),
        ("cert", ("server.crt", leaf.leaf_pem, FILE_TYPE)),
        ("inter_cert", ("chain.crt", leaf.chain_pem, FILE_TYPE)),
    ]
    body = raw.post("entry.cgi", files=fields + files).json()
    assert body["success"] is True, body
    created = next(c for c in raw.certificates(sid, token) if c["id"] == body["data"]["id"])
    assert created["desc"] == "dsmctl"


@pytest.mark.parametrize("profile", DSM7_PROFILES)
def test_an_n4s4_post_login_and_logout_at_auth_cgi_work_on_dsm7(lab, profile):
    """N4S4 posts every field in the body to auth.cgi, so gets the placeholder token (§3.1)."""
    raw = lab.raw(lab.start(profile))
    login = {
        "api": "SYNO.API.Auth",
        "version": "6",
        "method": "login",
        "enable_syno_token": "yes",
        "client": "browser",
        "account": USER,
        "enable_device_token": "no",
        "logintype": "local",
        "otp_code": "",
        "rememberme": "0",
        "passwd": PASSWORD,
        "session": "webui",
        "format": "cookie",
    }
    data = raw.post("auth.cgi", data=login).json()["data"]
    assert data["synotoken"] == "--------"
    assert raw.api(CRT, "list", data["sid"], "--------").json()["success"] is True
    logout = {"api": "SYNO.API.Auth", "version": "6", "method": "logout", "_sid": data["sid"]}
    assert raw.post("auth.cgi", data=logout).json() == {"success": True}


class _Nas:
    """One emulator with a logged-in raw session and a second, deletable certificate."""

    def __init__(self, lab, profile, leaf):
        self.raw = lab.raw(lab.start(profile))
        self.sid, self.token = self.raw.session()
        parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, desc="spare")
        self.spare = self.raw.import_(self.sid, self.token, parts)["data"]["id"]

    def listed(self):
        return self.raw.certificates(self.sid, self.token)

    def default(self):
        return next(c for c in self.listed() if c["is_default"])

    def delete(self, **params):
        return self.raw.api(CRT, "delete", self.sid, self.token, **params).json()


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_crt_delete_removes_the_listed_ids_and_returns_their_services_to_the_default(
    lab, profile, leaf
):
    nas = _Nas(lab, profile, leaf)
    factory = nas.default()
    ftpd = next(s for s in factory["services"] if s["service"] == "ftpd")
    moved = [{"service": ftpd, "old_id": factory["id"], "id": nas.spare}]
    bound = nas.raw.api(SERVICE, "set", nas.sid, nas.token, settings=json.dumps(moved))
    assert bound.json() == {"success": True}
    assert nas.delete(ids=json.dumps([nas.spare])) == {"success": True}
    assert [c["id"] for c in nas.listed()] == [factory["id"]]
    assert "ftpd" in {s["service"] for s in nas.default()["services"]}


@pytest.mark.parametrize(
    ("ids", "code"),
    [
        (None, 114),  # no ids at all
        ("SPARE", 5503),  # not JSON
        ('{"id":"SPARE"}', 5503),  # JSON, not an array
        ("[1]", 5503),  # an array of non-strings
        ('["SPARE","n0such"]', 5510),  # one unknown id: nothing is deleted
        ('["SPARE","DEFAULT"]', 105),  # the default certificate is not deletable
    ],
)
def test_crt_delete_refusals_answer_their_code_and_leave_the_store_unchanged(lab, leaf, ids, code):
    nas = _Nas(lab, "dsm7", leaf)
    params = {}
    if ids is not None:
        params["ids"] = ids.replace("SPARE", nas.spare).replace("DEFAULT", nas.default()["id"])
    before = nas.raw.list_text(nas.sid, nas.token)
    assert nas.delete(**params) == _error(code)
    assert nas.raw.list_text(nas.sid, nas.token) == before
