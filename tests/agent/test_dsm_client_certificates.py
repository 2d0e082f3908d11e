"""The DSM client's certificate calls against the emulator (cases 12-33)."""

from __future__ import annotations

import datetime

import pytest

from nas_agent.dsm.client import strip_blank_lines
from nas_agent.dsm.errors import (
    DsmApiError,
    DsmCertificateNotFound,
    DsmDuplicateDescription,
    DsmNotAdmin,
    DsmSessionError,
    DsmTransportError,
)
from nas_agent.dsm.types import read_export_archive
from tests.agent.dsm_fixtures import (
    ALL_PROFILES,
    PASSWORD,
    USER,
    DsmLab,
    fingerprint_of_pem,
    issue,
    reencoded_key,
    served_fingerprint,
)


@pytest.fixture
def lab(tmp_path):
    with DsmLab(tmp_path) as lab:
        yield lab


@pytest.fixture(scope="module")
def leaf():
    return issue(names=("first.example.test", "*.first.example.test"))


@pytest.fixture(scope="module")
def other_leaf():
    return issue(names=("second.example.test",))


def _material(issued, chain=None):
    return {
        "key_pem": issued.key_pem.encode(),
        "cert_pem": issued.leaf_pem.encode(),
        "chain_pem": (issued.chain_pem if chain is None else chain).encode(),
    }


def _imports(handle):
    return [r for r in handle.requests if r.api_method == "import"]


def _logouts(handle):
    return [r for r in handle.requests if r.api_method == "logout"]


class Nas:
    """One emulator and the client logged in to it."""

    def __init__(self, lab, profile="dsm7", **options):
        self.handle = lab.start(profile, **options)
        self.client = lab.client(self.handle)
        self.session = self.client.login(USER, PASSWORD)

    def default(self):
        return next(c for c in self.client.list_certificates(self.session) if c.is_default)

    def create(self, issued, desc="certdrop", chain=None, **kwargs):
        material = _material(issued, chain)
        return self.client.import_certificate(self.session, desc=desc, **material, **kwargs)

    def listed(self):
        return self.client.list_certificates(self.session)


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_every_core_call_carries_the_sid_and_the_token_header(lab, profile, leaf):
    nas = Nas(lab, profile)
    created = nas.create(leaf)
    nas.client.export(nas.session, created.id)
    cert = nas.client.certificate(nas.session, created.id)
    factory = next(c for c in nas.listed() if c.desc == "")
    nas.client.bind_service(nas.session, factory.services[1], factory.id, cert.id)
    core = [r for r in nas.handle.requests if (r.api or "").startswith("SYNO.Core.")]
    assert {r.api_method for r in core} == {"import", "export", "list", "set"}
    for request in core:
        assert "_sid" in request.form or "_sid" in request.query
        assert request.header("X-SYNO-TOKEN") == "<redacted>"


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_a_logged_out_session_is_rejected_as_a_session_error(lab, profile):
    nas = Nas(lab, profile)
    nas.client.logout(nas.session)
    with pytest.raises(DsmSessionError) as caught:
        nas.listed()
    assert caught.value.dsm_code == 119


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_non_admin_account_is_reported_and_still_logged_out_once(lab, profile):
    handle = lab.start(profile, admin=False)
    client = lab.client(handle)
    with pytest.raises(DsmNotAdmin) as caught, client.logged_in(USER, PASSWORD) as session:
        client.list_certificates(session)
    assert caught.value.dsm_code == 105 and "administrators" in str(caught.value)
    assert len(_logouts(handle)) == 1


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_listing_gives_typed_certificates_with_one_default(lab, profile, leaf):
    nas = Nas(lab, profile)
    nas.create(leaf, desc="mine")
    certificates = nas.listed()
    assert [c.is_default for c in certificates].count(True) == 1
    factory = next(c for c in certificates if c.is_default)
    assert factory.desc == "" and factory.self_signed
    assert [s.service for s in factory.services] == ["default", "ftpd", "ReverseProxy_1"]
    assert factory.services[0].display_name == "DSM Desktop Service"
    mine = next(c for c in certificates if c.desc == "mine")
    assert mine.subject.common_name == "first.example.test"
    assert mine.subject.sub_alt_name == ("first.example.test", "*.first.example.test")
    assert mine.valid_till.tzinfo is datetime.timezone.utc
    assert mine.valid_from < mine.valid_till and mine.key_types == "RSA"


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_create_sends_acme_sh_parts_with_bare_names_and_no_as_default(lab, profile, leaf):
    nas = Nas(lab, profile)
    desc = 'ünïcode *.example.test "quoted"'
    result = nas.create(leaf, desc=desc)
    assert result.restart_httpd is False
    created = nas.client.certificate(nas.session, result.id)
    assert created.desc == desc and not created.is_default and created.services == ()
    (upload,) = _imports(nas.handle)
    assert [(p.name, p.filename) for p in upload.parts] == [
        ("key", "privkey.pem"),
        ("cert", "cert.pem"),
        ("inter_cert", "chain.pem"),
        ("id", None),
        ("desc", None),
    ]
    assert upload.parts[3].text == "" and upload.parts[4].text == desc


def test_chain_blank_lines_are_stripped_and_an_empty_chain_is_omitted(lab, leaf):
    nas = Nas(lab, "dsm7")
    nas.create(leaf, chain="\n\n" + leaf.chain_pem.replace("\n", "\n\n"))
    nas.create(leaf, chain="")
    with_chain, without_chain = _imports(nas.handle)
    assert with_chain.parts[2].text == leaf.chain_pem
    assert "inter_cert" not in [p.name for p in without_chain.parts]
    assert strip_blank_lines(b"\n \n") == b""


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_replacing_keeps_the_id_and_the_bindings(lab, profile, leaf, other_leaf):
    nas = Nas(lab, profile)
    created = nas.create(leaf, desc="old")
    factory = nas.default()
    proxy = next(s for s in factory.services if s.service == "ReverseProxy_1")
    nas.client.bind_service(nas.session, proxy, factory.id, created.id)
    target = nas.client.certificate(nas.session, created.id)
    result = nas.create(other_leaf, desc="new", replace=target)
    assert result.id == created.id and result.restart_httpd is False
    after = nas.client.certificate(nas.session, created.id)
    assert after.subject.common_name == "second.example.test" and after.desc == "new"
    assert after.services == target.services and not after.is_default
    assert "as_default" not in [p.name for p in _imports(nas.handle)[-1].parts]


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_replacing_the_default_resends_as_default_true_and_dsm_serves_it(lab, profile, leaf):
    nas = Nas(lab, profile)
    default = nas.default()
    result = nas.create(leaf, desc="", replace=default)
    assert result.id == default.id and result.restart_httpd is True
    assert nas.default().id == default.id
    as_default = [p for p in _imports(nas.handle)[-1].parts if p.name == "as_default"]
    assert [p.text for p in as_default] == ["true"]
    assert served_fingerprint(nas.handle) == fingerprint_of_pem(leaf.leaf_pem)


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_as_default_makes_a_new_certificate_the_default(lab, profile, leaf):
    nas = Nas(lab, profile)
    previous = nas.default()
    result = nas.create(leaf, as_default=True)
    assert result.restart_httpd is True and nas.default().id == result.id
    assert not nas.client.certificate(nas.session, previous.id).is_default
    assert [p.text for p in _imports(nas.handle)[-1].parts if p.name == "as_default"] == ["true"]


@pytest.mark.parametrize(
    ("spoil", "code"),
    [("cert", 5510), ("key", 5511), ("chain", 5512), ("mismatch", 5511), ("encrypted", 5511)],
)
def test_refused_import_raises_the_dsm_code_and_leaves_the_store_as_it_was(
    lab, leaf, other_leaf, spoil, code
):
    nas = Nas(lab, "dsm7")
    target = nas.client.certificate(nas.session, nas.create(leaf).id)
    before = nas.listed()
    material = _material(other_leaf)
    bad = {
        "cert": ("cert_pem", b"garbage"),
        "key": ("key_pem", b"garbage"),
        "chain": ("chain_pem", b"-----BEGIN CERTIFICATE-----\nbad\n-----END CERTIFICATE-----\n"),
        "mismatch": ("key_pem", leaf.key_pem.encode()),
        "encrypted": ("key_pem", reencoded_key(other_leaf.key_pem, "encrypted").encode()),
    }[spoil]
    material[bad[0]] = bad[1]
    with pytest.raises(DsmApiError) as caught:
        nas.client.import_certificate(nas.session, desc="x", replace=target, **material)
    assert caught.value.dsm_code == code and caught.value.api == "SYNO.Core.Certificate"
    assert nas.listed() == before


def test_an_injected_import_failure_leaves_the_store_as_it_was(lab, leaf):
    nas = Nas(lab, "dsm7")
    before = nas.listed()
    nas.handle.emulator.controls.update_faults(fail_next_import=5517)
    with pytest.raises(DsmApiError) as caught:
        nas.create(leaf, replace=nas.default())
    assert caught.value.dsm_code == 5517 and nas.listed() == before


def test_dsm74_accepts_the_clients_uploads(lab, leaf):
    nas = Nas(lab, "dsm7.4")
    assert nas.create(leaf).id
    assert all("/" not in (p.filename or "") for p in _imports(nas.handle)[0].parts)


def test_dsm6_refuses_ec_keys_with_5529(lab):
    nas = Nas(lab, "dsm6")
    with pytest.raises(DsmApiError) as caught:
        nas.create(issue("ec"))
    assert caught.value.dsm_code == 5529


def test_duplicate_descriptions_are_refused_naming_every_id(lab, leaf):
    nas = Nas(lab, "dsm7")
    first, second = nas.create(leaf, desc="twin"), nas.create(leaf, desc="twin")
    with pytest.raises(DsmDuplicateDescription) as caught:
        nas.client.find_by_description(nas.session, "twin")
    assert caught.value.ids == (first.id, second.id)
    assert first.id in str(caught.value) and second.id in str(caught.value)
    assert nas.client.find_by_description(nas.session, "single") is None
    unique = nas.create(leaf, desc="single")
    assert nas.client.find_by_description(nas.session, "single").id == unique.id


def test_an_unknown_id_is_not_found(lab):
    nas = Nas(lab, "dsm7")
    with pytest.raises(DsmCertificateNotFound):
        nas.client.certificate(nas.session, "NoSuch")


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_bind_service_moves_the_service_and_refuses_old_equal_new(lab, profile, leaf):
    nas = Nas(lab, profile)
    factory = nas.default()
    target = nas.create(leaf)
    ftpd = next(s for s in factory.services if s.service == "ftpd")
    nas.client.bind_service(nas.session, ftpd, factory.id, target.id)
    assert [s.service for s in nas.client.certificate(nas.session, target.id).services] == ["ftpd"]
    sent = len(nas.handle.requests)
    with pytest.raises(ValueError, match="already bound"):
        nas.client.bind_service(nas.session, ftpd, target.id, target.id)
    assert len(nas.handle.requests) == sent


def test_export_returns_what_was_imported(lab, leaf):
    nas = Nas(lab, "dsm7")
    result = nas.create(leaf)
    exported = read_export_archive(nas.client.export(nas.session, result.id))
    assert exported.cert_pem.decode() == leaf.leaf_pem
    assert exported.chain_pem.decode() == leaf.chain_pem
    assert exported.key_pem.decode() == leaf.key_pem
    with pytest.raises(DsmApiError):
        nas.client.export(nas.session, "NoSuch")


class _Boom(Exception):
    pass


@pytest.mark.parametrize("failure", ["none", "exception", "api_error", "dropped", "tls_check"])
def test_every_run_that_logged_in_logs_out_exactly_once(lab, leaf, failure):
    handle = lab.start("dsm7")
    client = lab.client(handle)
    if failure == "dropped":
        handle.emulator.controls.update_faults(drop_next_import="after_apply")
    expected = {
        "none": None,
        "exception": _Boom,
        "api_error": DsmApiError,
        "dropped": DsmTransportError,
        "tls_check": _Boom,
    }[failure]

    def run():
        with client.logged_in(USER, PASSWORD) as session:
            material = _material(leaf)
            if failure == "api_error":
                material["cert_pem"] = b"garbage"
            if failure != "exception":
                client.import_certificate(session, desc="run", **material)
            if failure in ("exception", "tls_check"):
                raise _Boom()

    if expected is None:
        run()
    else:
        with pytest.raises(expected):
            run()
    assert len(_logouts(handle)) == 1
    assert handle.emulator.sessions.count() == 0
