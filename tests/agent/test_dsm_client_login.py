"""The DSM client's discovery, login, 2FA and transport against the emulator (cases 1-11, 34-35)."""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import stat
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from lab.dsm_emulator.app import make_app
from nas_agent.dsm.client import DsmClient
from nas_agent.dsm.device import DeviceIdFile
from nas_agent.dsm.errors import (
    DsmAccountDisabled,
    DsmDeviceIdNotIssued,
    DsmDeviceRevoked,
    DsmIpBlocked,
    DsmOtpNotEnrolled,
    DsmOtpRequired,
    DsmOtpWrong,
    DsmPasswordExpired,
    DsmProtocolError,
    DsmTlsError,
    DsmTransportError,
    DsmWrongPassword,
)
from tests.agent.dsm_fixtures import (
    ALL_PROFILES,
    NOW_TS,
    OTP_SECRET,
    PASSWORD,
    USER,
    DsmLab,
    issue,
    otp_code,
    wrong_otp_code,
)

EXPECTED_AUTH = {
    "dsm6": ("auth.cgi", "6"),
    "dsm7": ("entry.cgi", "7"),
    "dsm7.4": ("entry.cgi", "7"),
}


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


def _logins(handle):
    return [r for r in handle.requests if r.api == "SYNO.API.Auth" and r.api_method == "login"]


def _logouts(handle):
    return [r for r in handle.requests if r.api == "SYNO.API.Auth" and r.api_method == "logout"]


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_client_logs_in_where_discovery_says_with_the_token_flag_in_body_and_query(lab, profile):
    handle = lab.start(profile)
    client = lab.client(handle)
    with client.logged_in(USER, PASSWORD) as session:
        assert (
            session.synotoken
            and session.sid
            and session.auth_version == int(EXPECTED_AUTH[profile][1])
        )
    discovery, login, logout = handle.requests
    assert discovery.method == "GET" and discovery.path == "/webapi/query.cgi"
    path, version = EXPECTED_AUTH[profile]
    assert login.path == logout.path == f"/webapi/{path}"
    assert login.form["version"] == version
    assert login.form["enable_syno_token"] == login.query["enable_syno_token"] == "yes"
    assert login.form["format"] == "sid"
    assert set(login.query) == {"enable_syno_token"}  # no credential in the URL


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_client_never_logs_password_sid_token_or_device_id(lab, profile, caplog, tmp_path):
    handle = lab.start(profile, otp=True)
    client = lab.client(handle)
    leaf = issue()
    device_file = DeviceIdFile(str(tmp_path / "device"))
    caplog.set_level(logging.DEBUG)
    with client.logged_in(USER, PASSWORD, otp_code=otp_code(), device_file=device_file) as s:
        client.list_certificates(s)
        client.import_certificate(
            s, key_pem=leaf.key_pem.encode(), cert_pem=leaf.leaf_pem.encode(), desc="x"
        )
        secrets = (PASSWORD, s.sid, s.synotoken, s.device_id, otp_code())
        assert s.sid not in repr(s) and s.synotoken not in repr(s)
    assert "webapi" in caplog.text  # urllib3's DEBUG lines were captured and masked
    for secret in secrets:
        assert secret and secret not in caplog.text


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_wrong_password_fails_once_without_retry(lab, profile):
    handle = lab.start(profile)
    client = lab.client(handle)
    with pytest.raises(DsmWrongPassword) as caught:
        client.login(USER, "Tr0ub4dor&3")
    assert caught.value.dsm_code == 400 and USER in str(caught.value)
    assert "Tr0ub4dor&3" not in str(caught.value)
    assert len(_logins(handle)) == 1 and _logouts(handle) == []


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize(
    ("state", "error", "code"),
    [
        ({"disabled": True}, DsmAccountDisabled, 401),
        ({"password": "expired_cannot_change"}, DsmPasswordExpired, 408),
        ({"password": "expired"}, DsmPasswordExpired, 409),
        ({"password": "must_change"}, DsmPasswordExpired, 410),
        ({"otp_enforced": True}, DsmOtpNotEnrolled, 406),
        ({"ip_blocked": True}, DsmIpBlocked, 407),
    ],
)
def test_each_refused_account_state_is_its_own_error(lab, profile, state, error, code):
    handle = lab.start(profile)
    handle.emulator.controls.update_account(**state)
    with pytest.raises(error) as caught:
        lab.client(handle).login(USER, PASSWORD)
    assert type(caught.value) is error and caught.value.dsm_code == code
    assert len(_logins(handle)) == 1


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_otp_account_without_code_asks_the_user_to_run_dsm_login(lab, profile):
    handle = lab.start(profile, otp=True)
    with pytest.raises(DsmOtpRequired) as caught:
        lab.client(handle).login(USER, PASSWORD)
    assert "certdrop-agent dsm-login" in str(caught.value)
    assert len(_logins(handle)) == 1


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_otp_login_stores_the_device_id_for_the_agent_only_and_later_runs_use_it(
    lab, profile, tmp_path
):
    handle = lab.start(profile, otp=True)
    client = lab.client(handle)
    device_file = DeviceIdFile(str(tmp_path / "dsm-device"))
    with client.logged_in(USER, PASSWORD, otp_code=otp_code(), device_file=device_file) as s:
        assert s.device_id == device_file.load()
    assert stat.S_IMODE(os.stat(device_file.path).st_mode) == 0o600
    assert handle.emulator.devices.is_valid(USER, device_file.load())
    handle.clear_requests()

    with client.logged_in(USER, PASSWORD, device_file=device_file):
        pass
    (login,) = _logins(handle)
    assert login.form["device_id"] == "<redacted>" and "otp_code" not in login.form
    assert login.form["device_name"] == "certdrop"
    assert len(_logouts(handle)) == 1


def test_dsm74_v7_login_without_device_id_is_logged_out_and_repeated_with_v6(lab, tmp_path):
    handle = lab.start("dsm7.4", otp=True)
    device_file = DeviceIdFile(str(tmp_path / "dsm-device"))
    client = lab.client(handle)
    with client.logged_in(USER, PASSWORD, otp_code=otp_code(), device_file=device_file) as s:
        assert s.auth_version == 6 and s.device_id
    calls = [(r.api_method, r.form.get("version")) for r in handle.requests[1:]]
    assert calls == [("login", "7"), ("logout", "7"), ("login", "6"), ("logout", "6")]
    assert handle.emulator.devices.is_valid(USER, device_file.load())
    assert handle.emulator.sessions.count() == 0


def test_dsm74_refusing_to_reuse_the_code_for_v6_is_reported_as_no_device_id(lab, tmp_path):
    handle = lab.start("dsm7.4", otp=True)
    handle.emulator.controls.update_faults(otp_single_use=True)
    device_file = DeviceIdFile(str(tmp_path / "dsm-device"))
    client = lab.client(handle)
    enrol = client.logged_in(USER, PASSWORD, otp_code=otp_code(), device_file=device_file)
    with pytest.raises(DsmDeviceIdNotIssued) as caught, enrol:
        pytest.fail("logged in without a device id")
    assert caught.value.auth_versions == (7, 6)
    assert "certdrop-agent dsm-login" in str(caught.value)
    assert device_file.load() is None
    assert handle.emulator.sessions.count() == 0
    assert len(_logouts(handle)) == 1


class _FormatSidBlanksDeviceId:
    """WSGI middleware: DSM 7.0.1-42218 U2's bug — an OTP login sent with ``format=sid`` answers
    an empty device id (reference §3.4, home-assistant/core#64867, mib1185/py-synologydsm-api#120);
    the same login without ``format=sid`` gets one."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        body_bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body_bytes)
        request = Request(dict(environ, **{"wsgi.input": io.BytesIO(body_bytes)}))
        params = {**request.args.to_dict(), **request.form.to_dict()}
        response = Response.from_app(self.app, environ)
        if (
            params.get("method") == "login"
            and params.get("format") == "sid"
            and params.get("otp_code")
        ):
            body = json.loads(response.get_data())
            for name in ("device_id", "did"):
                if name in body.get("data", {}):
                    body["data"][name] = ""
            response.set_data(json.dumps(body, separators=(",", ":"), sort_keys=True))
            response.headers.pop("Set-Cookie", None)
        return response(environ, start_response)


def test_agent_otp_enrolment_survives_dsm_701_format_sid_bug(tmp_path):
    """The agent always logged in with ``format=sid``; DSM 7.0.1-42218 U2 then hands out no
    device id.

    Reference §3.4 ("Known DSM bugs"): on DSM 7.0.1-42218 Update 2 an OTP login with
    ``format=sid`` returned ``device_id: ""``, and *dropping ``format=sid`` fixed it*
    (home-assistant/core#64867, mib1185/py-synologydsm-api#120 — [MIB] 2.11.0 sends no
    ``format`` at all, synology_dsm.py l.190-201). The sid is in the JSON answer either way
    (N4S4 and Porkbun read ``data.sid`` after ``format=cookie``). nas_agent/dsm/login.py
    ``_login_once`` hard-coded ``"format": "sid"``; its only recovery is a v6 retry that sent
    ``format=sid`` again, so against this documented DSM behaviour enrolment ended in
    ``DsmDeviceIdNotIssued`` and a 2FA NAS could never run unattended. Fix: login.py
    ``_login_once`` — omit ``format`` on OTP logins.
    """
    app = make_app(str(tmp_path / "dsm"), USER, PASSWORD, OTP_SECRET, "dsm7", clock=lambda: NOW_TS)
    server = make_server("127.0.0.1", 0, _FormatSidBlanksDeviceId(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        device_file = DeviceIdFile(str(tmp_path / "device_id"))
        client = DsmClient(f"http://127.0.0.1:{server.server_port}", timeout=10)
        try:
            with client.logged_in(
                USER, PASSWORD, device_file=device_file, otp_code=otp_code()
            ) as session:
                assert session.device_id
        finally:
            client.close()
        assert device_file.load()
    finally:
        server.shutdown()
        thread.join()


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_wrong_otp_is_reported_as_such(lab, profile):
    handle = lab.start(profile, otp=True)
    with pytest.raises(DsmOtpWrong):
        lab.client(handle).login(USER, PASSWORD, otp_code=wrong_otp_code())
    assert len(_logins(handle)) == 1


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_revoked_device_id_is_cleared_and_re_enrolment_is_requested(lab, profile, tmp_path):
    handle = lab.start(profile, otp=True)
    client = lab.client(handle)
    device_file = DeviceIdFile(str(tmp_path / "dsm-device"))
    with client.logged_in(USER, PASSWORD, otp_code=otp_code(), device_file=device_file):
        pass
    handle.emulator.devices.revoke_all()
    with pytest.raises(DsmDeviceRevoked) as caught:
        client.login(USER, PASSWORD, device_id=device_file.load())
    assert device_file.load() is not None  # login() alone does not touch the file
    with pytest.raises(DsmDeviceRevoked) as caught, client.logged_in(
        USER, PASSWORD, device_file=device_file
    ):
        pytest.fail("logged in with a revoked device id")
    assert "certdrop-agent dsm-login" in str(caught.value)
    assert device_file.load() is None


def test_https_with_dsms_self_signed_certificate_is_a_clear_tls_error(lab):
    handle = lab.start("dsm7")
    client = DsmClient(handle.https_url, verify=True, timeout=10)
    with pytest.raises(DsmTlsError) as caught:
        client.login(USER, PASSWORD)
    assert "CA file" in str(caught.value) and "pins" in str(caught.value)
    assert caught.value.transient is False
    client.close()


@pytest.mark.parametrize("trust", ["ca_file", "insecure"])
def test_https_works_with_a_ca_file_or_explicit_insecure_mode(lab, tmp_path, trust, caplog):
    handle = lab.start("dsm7")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(handle.emulator.store.served().material.chain_pem)
    verify = str(ca_file) if trust == "ca_file" else False
    caplog.set_level(logging.WARNING)
    client = DsmClient(handle.https_url, verify=verify, timeout=10)
    with client.logged_in(USER, PASSWORD) as session:
        assert client.list_certificates(session)
    client.close()
    assert ("insecure" in caplog.text) is (trust == "insecure")


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    status = 200
    content_type = "application/json"
    body = b""

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("status", "content_type", "body", "error"),
    [
        (500, "text/html", b"<h1>Internal Server Error</h1>", DsmTransportError),
        (404, "application/json", b'{"error":{"code":102},"success":false}', DsmTransportError),
        (200, "text/html", b"<html>login page</html>", DsmProtocolError),
        (200, "application/json", b'{"data":{}}', DsmProtocolError),
    ],
)
def test_non_200_or_non_json_answers_are_transport_errors(status, content_type, body, error):
    handler = type(
        "Handler", (_Misbehaving,), {"status": status, "content_type": content_type, "body": body}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        client = DsmClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=10)
        with pytest.raises(error) as caught:
            client.login(USER, PASSWORD)
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert isinstance(caught.value, DsmTransportError)
    assert not hasattr(caught.value, "dsm_code")
    if status != 200:
        assert caught.value.status == status


def test_an_unreachable_dsm_is_a_transient_transport_error(lab):
    handle = lab.start("dsm7")
    url = handle.http_url
    lab.stop(handle)
    with pytest.raises(DsmTransportError) as caught:
        DsmClient(url, timeout=10).login(USER, PASSWORD)
    assert caught.value.transient is True


@pytest.mark.parametrize("url", ["ftp://nas:21", "https://nas:5001/webapi", "nas:5001"])
def test_a_malformed_base_url_is_refused(url):
    with pytest.raises(ValueError, match="expected http"):
        DsmClient(url)
