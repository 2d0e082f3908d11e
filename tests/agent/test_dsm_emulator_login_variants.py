"""Every way a client logs in, then lists certificates: the emulator serves each as real DSM
does (reference §3.1 POST quirk, §3.5 SynoToken and placeholder sessions; cases 3, 11-15).

A login puts its fields in the query, the body or both, asks for ``format=sid`` or ``cookie``,
and gets a real SynoToken, DSM's placeholder ``--------`` or none. The list call that follows
carries the session as ``_sid`` (format=sid) or as the ``id`` cookie alone (format=cookie), and
the token it got in the ``X-SYNO-TOKEN`` header, as the ``SynoToken`` query parameter, or not
at all. Only a real token is demanded (119 without it); a placeholder session works like one
that asked for no token (N4S4's client, widely used against real DSM 6 and 7).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests

from tests.agent.dsm_fixtures import ALL_PROFILES, PASSWORD, USER, DsmLab

CRT = "SYNO.Core.Certificate.CRT"
PLACEHOLDER = "--------"
NO_SESSION = {"error": {"code": 119}, "success": False}

# Where a login puts its fields, and which SynoToken DSM then answers (§3.1): "real",
# "placeholder" or "none".
PLACEMENTS = {
    "get_query": "real",  # acme.sh: one GET
    "post_query_only": "real",  # a POST with an empty body reads like a GET (emulator choice)
    "post_body": "placeholder",  # N4S4: every field in the body, the flag too
    "post_body_flag_in_both": "real",  # the agent: the body, and the flag in the query too
    "post_every_field_in_both": "real",
    "post_body_flag_in_query_only": "none",
}
FORMATS = ("sid", "cookie")
CARRIERS = ("header", "parameter", "none")


def _cases() -> Iterator[Any]:
    for placement, token in PLACEMENTS.items():
        for fmt in FORMATS:
            # With no token answered a client has nothing to carry.
            for carrier in CARRIERS if token != "none" else ("none",):
                yield pytest.param(placement, fmt, carrier, id=f"{placement}-{fmt}-{carrier}")


@pytest.fixture(scope="module")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One emulator per profile for the whole module: each case logs in with its own session."""
    with DsmLab(tmp_path_factory.mktemp("dsm-login-variants")) as lab:
        yield {profile: lab.start(profile) for profile in ALL_PROFILES}


class Client:
    """A bare HTTP client with its own cookie jar, like any DSM library."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.profile = handle.emulator.profile
        self.http = requests.Session()
        self.http.trust_env = False

    def url(self, cgi: str) -> str:
        return f"{self.handle.http_url}/webapi/{cgi}"

    def login(self, placement: str, fmt: str) -> requests.Response:
        fields = {
            "api": "SYNO.API.Auth",
            "method": "login",
            "version": str(self.profile.auth_max_version),
            "account": USER,
            "passwd": PASSWORD,
            "format": fmt,
            "enable_syno_token": "yes",
        }
        url = self.url(self.profile.auth_path)
        flag = {"enable_syno_token": "yes"}
        unflagged = {k: v for k, v in fields.items() if k != "enable_syno_token"}
        sent = {
            "get_query": lambda: self.http.get(url, params=fields, timeout=10),
            "post_query_only": lambda: self.http.post(url, params=fields, timeout=10),
            "post_body": lambda: self.http.post(url, data=fields, timeout=10),
            "post_body_flag_in_both": lambda: self.http.post(
                url, params=flag, data=fields, timeout=10
            ),
            "post_every_field_in_both": lambda: self.http.post(
                url, params=fields, data=fields, timeout=10
            ),
            "post_body_flag_in_query_only": lambda: self.http.post(
                url, params=flag, data=unflagged, timeout=10
            ),
        }[placement]()
        assert sent.status_code == 200
        return sent

    def list_certificates(
        self, *, sid: str | None, token: str | None, carrier: str
    ) -> dict[str, Any]:
        form: dict[str, Any] = {"api": CRT, "method": "list", "version": 1}
        if sid is not None:
            form["_sid"] = sid
        headers = {"X-SYNO-TOKEN": token} if carrier == "header" and token else {}
        query = {"SynoToken": token} if carrier == "parameter" and token else {}
        response = self.http.post(
            self.url("entry.cgi"), params=query, data=form, headers=headers, timeout=10
        )
        assert response.status_code == 200
        return response.json()


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize(("placement", "fmt", "carrier"), list(_cases()))
def test_each_login_variant_then_lists_certificates_as_real_dsm_answers(
    emulators, profile, placement, fmt, carrier
):
    client = Client(emulators[profile])
    login = client.login(placement, fmt)
    data = login.json()["data"]
    token = data.get("synotoken")
    kind = PLACEMENTS[placement]
    if kind == "real":
        assert token and token != PLACEHOLDER
    elif kind == "placeholder":
        assert token == PLACEHOLDER
    else:
        assert "synotoken" not in data
    # format=cookie: the sid comes as the id cookie too, and the list call carries only that.
    assert login.cookies.get("id") == (data["sid"] if fmt == "cookie" else None)
    sid = data["sid"] if fmt == "sid" else None

    listed = client.list_certificates(sid=sid, token=token, carrier=carrier)

    if kind == "real" and carrier == "none":
        assert listed == NO_SESSION  # a real token is demanded on every call (§3.5, case 13)
    else:
        assert listed["success"] is True, listed
        assert listed["data"]["certificates"]


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_n4s4s_login_and_calls_work_with_the_placeholder_token(emulators, profile):
    client = Client(emulators[profile])
    data = client.login("post_body", "cookie").json()["data"]
    assert data["synotoken"] == PLACEHOLDER

    # What N4S4 sends on every later call: _sid, the id cookie and X-SYNO-TOKEN: --------.
    listed = client.list_certificates(sid=data["sid"], token=PLACEHOLDER, carrier="header")

    assert listed["success"] is True, listed


@pytest.mark.parametrize("carrier", ["header", "parameter"])
def test_a_placeholder_session_ignores_any_token_value(emulators, carrier):
    client = Client(emulators["dsm7"])
    sid = client.login("post_body", "sid").json()["data"]["sid"]

    listed = client.list_certificates(sid=sid, token="not-the-token", carrier=carrier)

    assert listed["success"] is True, listed


def test_a_real_token_session_refuses_a_wrong_token_by_either_carrier(emulators):
    client = Client(emulators["dsm7"])
    sid = client.login("post_body_flag_in_both", "sid").json()["data"]["sid"]

    for carrier in ("header", "parameter"):
        listed = client.list_certificates(sid=sid, token=PLACEHOLDER, carrier=carrier)
        assert listed == NO_SESSION, carrier


def test_a_mixed_post_login_is_read_from_query_and_body_together(emulators):
    # §3.1 says a POST must not mix the two but shows no answer: the emulator is lenient.
    client = Client(emulators["dsm7"])
    url = client.url(client.profile.auth_path)
    query = {"api": "SYNO.API.Auth", "method": "login", "version": "7", "account": USER}
    body = {"passwd": PASSWORD, "format": "sid"}

    answer = client.http.post(url, params=query, data=body, timeout=10).json()

    assert answer["success"] is True, answer
    assert "synotoken" not in answer["data"]
