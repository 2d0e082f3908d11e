"""The HTTPS listener serves the default certificate, fault knobs, persistence, request records."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest
import requests

from lab.dsm_emulator import serve
from tests.agent.dsm_fixtures import (
    OTP_SECRET,
    PASSWORD,
    DsmLab,
    fingerprint_of_pem,
    issue,
    otp_code,
    served_fingerprint,
    upload_parts,
)


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


@pytest.fixture(scope="module")
def leaf():
    return issue(names=("served.example.test",))


def _replace_default(raw, sid, token, issued):
    default = next(c for c in raw.certificates(sid, token) if c["is_default"])
    parts = upload_parts(
        issued.key_pem, issued.leaf_pem, issued.chain_pem, cert_id=default["id"], as_default="true"
    )
    return raw.import_(sid, token, parts)


def test_https_serves_the_factory_certificate_at_first_start(lab):
    handle = lab.start("dsm7")
    factory = handle.emulator.store.served()
    assert factory.builtin and factory.is_default
    assert served_fingerprint(handle) == fingerprint_of_pem(factory.material.cert_pem)
    assert handle.served_fingerprint() == served_fingerprint(handle)


@pytest.mark.parametrize("profile", ["dsm6", "dsm7", "dsm7.4"])
def test_https_serves_the_new_default_after_an_import(lab, profile, leaf):
    handle = lab.start(profile)
    raw = lab.raw(handle)
    sid, token = raw.session()
    old = served_fingerprint(handle)
    assert _replace_default(raw, sid, token, leaf)["data"]["restart_httpd"] is True
    assert served_fingerprint(handle) == fingerprint_of_pem(leaf.leaf_pem) != old


def test_importing_a_non_default_certificate_does_not_change_what_is_served(lab, leaf):
    handle = lab.start("dsm7")
    raw = lab.raw(handle)
    sid, token = raw.session()
    old = served_fingerprint(handle)
    raw.import_(sid, token, upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem))
    assert served_fingerprint(handle) == old


def test_keep_serving_old_fault_serves_the_old_certificate_until_a_restart(lab, leaf):
    handle = lab.start("dsm7")
    raw = lab.raw(handle)
    sid, token = raw.session()
    old = served_fingerprint(handle)
    handle.emulator.controls.update_faults(keep_serving_old=True)
    assert _replace_default(raw, sid, token, leaf)["success"] is True
    assert served_fingerprint(handle) == old
    restarted = requests.post(f"{handle.http_url}/_emulator/restart_httpd", timeout=10)
    assert restarted.status_code == 200
    assert served_fingerprint(handle) == fingerprint_of_pem(leaf.leaf_pem)


def test_https_listener_answers_the_same_api_and_verifies_with_the_factory_ca(lab, tmp_path):
    handle = lab.start("dsm7")
    ca_file = tmp_path / "synology-ca.pem"
    ca_file.write_text(handle.emulator.store.served().material.chain_pem)
    response = requests.get(
        f"{handle.https_url}/webapi/query.cgi",
        params={"api": "SYNO.API.Info", "version": 1, "method": "query", "query": "SYNO.API.Auth"},
        verify=str(ca_file),
        timeout=10,
    )
    assert response.json()["data"]["SYNO.API.Auth"]["path"] == "entry.cgi"


def test_fail_next_import_answers_the_code_once_and_changes_nothing(lab, leaf):
    handle = lab.start("dsm7")
    raw = lab.raw(handle)
    sid, token = raw.session()
    set_fault = requests.post(
        f"{handle.http_url}/_emulator/faults", json={"fail_next_import": 5517}, timeout=10
    )
    assert set_fault.json()["fail_next_import"] == 5517
    before = raw.list_text(sid, token)
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem)
    assert raw.import_(sid, token, parts) == {"error": {"code": 5517}, "success": False}
    assert raw.list_text(sid, token) == before
    assert raw.import_(sid, token, parts)["success"] is True


@pytest.mark.parametrize(("mode", "applied"), [("before_apply", False), ("after_apply", True)])
def test_dropped_import_closes_the_connection_without_an_answer(lab, leaf, mode, applied):
    handle = lab.start("dsm7")
    raw = lab.raw(handle)
    sid, token = raw.session()
    handle.emulator.controls.update_faults(drop_next_import=mode)
    count = len(raw.certificates(sid, token))
    with pytest.raises(requests.ConnectionError):
        raw.import_(sid, token, upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem))
    assert len(raw.certificates(sid, token)) == count + applied
    assert handle.emulator.controls.faults.drop_next_import is None


def test_bad_knobs_are_refused_with_400(lab):
    handle = lab.start("dsm7")
    for body in ({"no_such_knob": 1}, {"keep_serving_old": "yes"}, {"drop_next_import": "x"}):
        response = requests.post(f"{handle.http_url}/_emulator/faults", json=body, timeout=10)
        assert response.status_code == 400
    response = requests.post(
        f"{handle.http_url}/_emulator/account", json={"password": "rotten"}, timeout=10
    )
    assert response.status_code == 400


def test_account_knob_over_http_changes_the_login_answer(lab):
    handle = lab.start("dsm7")
    requests.post(f"{handle.http_url}/_emulator/account", json={"disabled": True}, timeout=10)
    assert lab.raw(handle).login()["error"]["code"] == 401


def test_state_persists_across_a_restart_on_the_same_data_dir(lab, leaf, tmp_path):
    data_dir = tmp_path / "persist"
    handle = lab.start("dsm7", otp=True, data_dir=data_dir)
    raw = lab.raw(handle)
    remember = {"otp_code": otp_code(), "enable_device_token": "yes", "device_name": "n"}
    login = raw.login(**remember)["data"]
    sid, token, device_id = login["sid"], login["synotoken"], login["device_id"]
    _replace_default(raw, sid, token, leaf)
    listed = raw.list_text(sid, token)
    lab.stop(handle)

    again = lab.start("dsm7", otp=True, data_dir=data_dir)
    raw = lab.raw(again)
    sid, token = raw.session(device_id=device_id, device_name="n")
    assert raw.list_text(sid, token) == listed
    assert served_fingerprint(again) == fingerprint_of_pem(leaf.leaf_pem)
    for name in ("certificates.json", "devices.json"):
        assert stat.S_IMODE(os.stat(data_dir / name).st_mode) == 0o600


def test_recorded_requests_keep_wire_details_but_no_secrets(lab, leaf):
    handle = lab.start("dsm7", otp=True)
    raw = lab.raw(handle)
    login = raw.login(otp_code=otp_code(), enable_device_token="yes", device_name="n")["data"]
    sid, token = login["sid"], login["synotoken"]
    raw.import_(sid, token, upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, desc="d"))
    recorded = requests.get(f"{handle.http_url}/_emulator/requests", timeout=10).json()
    text = json.dumps(recorded)
    for secret in (PASSWORD, sid, token, login["device_id"], otp_code(), OTP_SECRET):
        assert secret not in text
    assert "PRIVATE KEY" not in text
    upload = handle.requests[-1]
    assert upload.api == "SYNO.Core.Certificate" and upload.api_method == "import"
    assert [p.name for p in upload.parts] == ["key", "cert", "inter_cert", "id", "desc"]
    assert upload.parts[1].text == leaf.leaf_pem and upload.parts[0].text is None
    assert upload.header("X-SYNO-TOKEN") == "<redacted>"
    requests.delete(f"{handle.http_url}/_emulator/requests", timeout=10)
    assert handle.requests == ()


def test_a_taken_port_is_an_os_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="could not listen"):
            serve(str(tmp_path / "dsm"), 0, taken.getsockname()[1], "user", "password")
