"""The emulator's import and service binding (reference §5-§6; cases 20-29, 31, 32)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.agent.dsm_fixtures import (
    ALL_PROFILES,
    DSM7_PROFILES,
    DsmLab,
    issue,
    reencoded_key,
    upload_parts,
)

SERVICE = "SYNO.Core.Certificate.Service"


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


@pytest.fixture(scope="module")
def leaf():
    return issue(names=("first.example.test",))


@pytest.fixture(scope="module")
def other_leaf():
    return issue(names=("second.example.test",))


class Nas:
    """One emulator with a logged-in raw session."""

    def __init__(self, lab, profile, **options):
        self.handle = lab.start(profile, **options)
        self.raw = lab.raw(self.handle)
        self.sid, self.token = self.raw.session()

    def import_(self, parts, **query):
        return self.raw.import_(self.sid, self.token, parts, **query)

    def listed(self):
        return self.raw.certificates(self.sid, self.token)

    def listed_text(self):
        return self.raw.list_text(self.sid, self.token)

    def by_id(self, cert_id):
        return next(c for c in self.listed() if c["id"] == cert_id)

    def default(self):
        return next(c for c in self.listed() if c["is_default"])

    def create(self, issued, desc="mine", **kwargs):
        parts = upload_parts(issued.key_pem, issued.leaf_pem, issued.chain_pem, desc=desc, **kwargs)
        body = self.import_(parts)
        assert body["success"] is True, body
        return body["data"]

    def bind(self, settings):
        return self.raw.api(SERVICE, "set", self.sid, self.token, settings=settings).json()


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize("cert_id", ["", None])
def test_empty_or_absent_id_creates_an_unbound_non_default_certificate(lab, profile, cert_id, leaf):
    nas = Nas(lab, profile)
    before = {c["id"] for c in nas.listed()}
    desc = 'ünïcode *.example.test "quoted"'
    data = nas.create(leaf, desc=desc, cert_id=cert_id)
    assert data["id"] not in before and data["restart_httpd"] is False
    created = nas.by_id(data["id"])
    assert created["desc"] == desc
    assert created["is_default"] is False and created["services"] == []
    assert created["subject"]["common_name"] == "first.example.test"


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize("as_default", [None, ""])
def test_replace_by_id_keeps_id_services_and_default_flag(
    lab, profile, as_default, leaf, other_leaf
):
    nas = Nas(lab, profile)
    cert_id = nas.create(leaf, desc="old")["id"]
    proxy = next(s for s in nas.default()["services"] if s["service"] == "ReverseProxy_1")
    moved = nas.bind(json.dumps([{"id": cert_id, "old_id": nas.default()["id"], "service": proxy}]))
    assert moved == {"success": True}
    before = nas.by_id(cert_id)
    parts = upload_parts(
        other_leaf.key_pem,
        other_leaf.leaf_pem,
        other_leaf.chain_pem,
        cert_id=cert_id,
        desc="new",
        as_default=as_default,
    )
    assert nas.import_(parts) == {"data": {"id": cert_id, "restart_httpd": False}, "success": True}
    after = nas.by_id(cert_id)
    assert after["subject"]["common_name"] == "second.example.test"
    assert after["desc"] == "new"
    assert after["services"] == before["services"] != []
    assert after["is_default"] is False
    assert len(nas.listed()) == 2


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_replacing_the_default_with_as_default_true_keeps_it_default_and_restarts(
    lab, profile, leaf
):
    nas = Nas(lab, profile)
    default = nas.default()
    parts = upload_parts(
        leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, cert_id=default["id"], as_default="true"
    )
    assert nas.import_(parts)["data"] == {"id": default["id"], "restart_httpd": True}
    after = nas.by_id(default["id"])
    assert after["is_default"] is True and after["services"] == default["services"]


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize("value", ["true", "false", "0"])
def test_any_non_empty_as_default_makes_a_certificate_default(lab, profile, value, leaf):
    nas = Nas(lab, profile)
    previous = nas.default()
    data = nas.create(leaf, as_default=value)
    assert data["restart_httpd"] is True
    listed = {c["id"]: c for c in nas.listed()}
    assert listed[data["id"]]["is_default"] is True
    assert listed[previous["id"]]["is_default"] is False
    # Emulator choice: the DSM web UI binding moves with the flag, the others stay.
    assert [s["service"] for s in listed[data["id"]]["services"]] == ["default"]
    assert {s["service"] for s in listed[previous["id"]]["services"]} == {"ftpd", "ReverseProxy_1"}


def test_as_default_false_is_false_when_the_bug_is_switched_off(lab, leaf):
    nas = Nas(lab, "dsm7")
    nas.handle.emulator.controls.update_faults(as_default_any_value_true=False)
    data = nas.create(leaf, as_default="false")
    assert nas.by_id(data["id"])["is_default"] is False


BAD_UPLOADS = [
    ("garbage cert", {"cert": "not a certificate"}, 5510),
    ("empty cert", {"cert": ""}, 5510),
    (
        "garbage key",
        {"key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        5511,
    ),
    ("empty key", {"key": ""}, 5511),
    ("encrypted key", {"key": "encrypted"}, 5511),
    (
        "garbage chain",
        {"chain": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"},
        5512,
    ),
    ("key of another cert", {"key": "other"}, 5511),
    ("unknown id", {"cert_id": "NoSuch"}, 5510),
]


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize(("label", "change", "code"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_refused_uploads_answer_their_code_and_leave_the_store_unchanged(
    lab, profile, label, change, code, leaf, other_leaf
):
    nas = Nas(lab, profile)
    target = nas.create(leaf, desc="target")["id"]
    before = nas.listed_text()
    # A valid replacement of "target", then one thing spoiled.
    material = {
        "key": other_leaf.key_pem,
        "cert": other_leaf.leaf_pem,
        "chain": other_leaf.chain_pem,
    }
    fields = {"cert_id": target, "desc": "changed", "as_default": "true"}
    for key, value in change.items():
        if value == "encrypted":
            value = reencoded_key(other_leaf.key_pem, "encrypted")
        elif value == "other":
            value = leaf.key_pem
        (fields if key == "cert_id" else material)[key] = value
    parts = upload_parts(material["key"], material["cert"], material["chain"], **fields)
    assert nas.import_(parts) == {"error": {"code": code}, "success": False}
    assert nas.listed_text() == before


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_chain_may_be_omitted(lab, profile, leaf):
    nas = Nas(lab, profile)
    data = nas.import_(upload_parts(leaf.key_pem, leaf.leaf_pem, None, desc="no chain"))
    assert data["success"] is True


@pytest.mark.parametrize("filename", ["/home/agent/chain.pem", "C:\\certs\\chain.pem", "d/c.pem"])
def test_dsm74_refuses_file_names_with_a_path_with_108(lab, filename, leaf):
    nas = Nas(lab, "dsm7.4")
    before = nas.listed_text()
    names = ("privkey.pem", "cert.pem", filename)
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, names=names)
    body = nas.import_(parts)
    assert body == {"error": {"code": 108, "errors": {"upload_err": -8}}, "success": False}
    assert nas.listed_text() == before


@pytest.mark.parametrize("profile", ["dsm6", "dsm7"])
def test_older_profiles_accept_file_names_with_a_path(lab, profile, leaf):
    nas = Nas(lab, profile)
    names = ("/tmp/privkey.pem", "/tmp/cert.pem", "/tmp/chain.pem")
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem, names=names)
    assert nas.import_(parts)["success"] is True


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_import_on_the_crt_api_is_103(lab, profile, leaf):
    nas = Nas(lab, profile)
    parts = upload_parts(leaf.key_pem, leaf.leaf_pem, leaf.chain_pem)
    body = nas.import_(parts, api="SYNO.Core.Certificate.CRT")
    assert body == {"error": {"code": 103}, "success": False}


KEY_FORMS = [
    ("rsa2048", "traditional"),
    ("rsa2048", "pkcs8"),
    ("ec", "traditional"),
    ("ec", "pkcs8"),
]


@pytest.mark.parametrize("profile", DSM7_PROFILES)
@pytest.mark.parametrize(("key_type", "encoding"), KEY_FORMS)
def test_dsm7_accepts_rsa_and_ec_keys_in_every_encoding(lab, profile, key_type, encoding):
    nas = Nas(lab, profile)
    issued = issue(key_type)
    key = reencoded_key(issued.key_pem, encoding)
    assert nas.import_(upload_parts(key, issued.leaf_pem, issued.chain_pem))["success"] is True


@pytest.mark.parametrize(
    ("key_type", "encoding", "code"),
    [
        ("rsa2048", "traditional", None),
        ("rsa2048", "pkcs8", None),
        ("ec", "traditional", 5529),
        ("ec", "pkcs8", 5529),
    ],
)
def test_dsm6_accepts_rsa_keys_and_refuses_ec_keys_with_5529(lab, key_type, encoding, code):
    nas = Nas(lab, "dsm6")
    issued = issue(key_type)
    key = reencoded_key(issued.key_pem, encoding)
    body = nas.import_(upload_parts(key, issued.leaf_pem, issued.chain_pem))
    if code is None:
        assert body["success"] is True
    else:
        assert body == {"error": {"code": code}, "success": False}


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_service_set_moves_a_service_between_certificates(lab, profile, leaf):
    nas = Nas(lab, profile)
    factory = nas.default()
    target = nas.create(leaf)["id"]
    ftpd = next(s for s in factory["services"] if s["service"] == "ftpd")
    settings = json.dumps([{"service": ftpd, "old_id": factory["id"], "id": target}])
    assert nas.bind(settings) == {"success": True}
    assert [s["service"] for s in nas.by_id(target)["services"]] == ["ftpd"]
    assert "ftpd" not in {s["service"] for s in nas.by_id(factory["id"])["services"]}


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize("settings", ["service=ftpd&id=x", "[{}]", '{"id":"x"}'])
def test_service_set_with_malformed_settings_is_5503(lab, profile, settings):
    nas = Nas(lab, profile)
    before = nas.listed_text()
    assert nas.bind(settings) == {"error": {"code": 5503}, "success": False}
    assert nas.listed_text() == before


@pytest.mark.parametrize(("profile", "kept"), [("dsm6", False), ("dsm7", True)])
def test_service_set_with_old_id_equal_to_id_drops_the_binding_on_dsm6(lab, profile, kept):
    nas = Nas(lab, profile)
    factory = nas.default()
    ftpd = next(s for s in factory["services"] if s["service"] == "ftpd")
    settings = json.dumps([{"service": ftpd, "old_id": factory["id"], "id": factory["id"]}])
    assert nas.bind(settings) == {"success": True}
    services = {s["service"] for s in nas.by_id(factory["id"])["services"]}
    assert ("ftpd" in services) is kept


def test_export_returns_a_zip_of_the_certificate_key_and_chain(lab, leaf):
    nas = Nas(lab, "dsm7")
    cert_id = nas.create(leaf)["id"]
    response = nas.raw.api("SYNO.Core.Certificate", "export", nas.sid, nas.token, id=cert_id)
    assert response.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.read("cert.pem").decode() == leaf.leaf_pem
        assert archive.read("chain.pem").decode() == leaf.chain_pem
        assert archive.read("privkey.pem").decode() == leaf.key_pem
