"""The issuer's key requests as the agent reads them: strictly parsed, believed only when signed
by the issuer key it follows, for itself, and not older than the last accepted. A refused
document changes nothing: the agent keeps the requests it had and reports the `keyreq.*` code."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab.agent_lab import SITE, AgentLab, now
from lab.https_store import HttpsStore
from nas_agent import store_layout
from nas_agent.bundle.key_requests import (
    KeyRequest,
    parse_key_requests,
    sign_key_requests,
    verify_key_requests,
)
from nas_agent.custody.errors import (
    KeyRequestError,
    KeyRequestsMalformed,
    KeyRequestsUnsupported,
    SourceReadOnly,
)
from nas_agent.custody.key_store import KeyStore
from nas_agent.custody.preparation import ensure_pending
from nas_agent.cycle import EXIT_OK, EXIT_REFUSED, EXIT_SOURCE
from nas_agent.keys import generate_agent_keys
from nas_agent.sources import open_source
from tests.agent.custody_issuer import NAMES, REQUEST, CustodyIssuer, site_keys


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


@pytest.fixture
def issuer(lab):
    return CustodyIssuer(lab)


def _document(**signed_changes):
    key = ed25519.Ed25519PrivateKey.generate()
    body = sign_key_requests([REQUEST], agent_id="nas-a", signing_key=key, issued_at=now())
    document = json.loads(body)
    document["signed"].update(signed_changes)
    return key, json.dumps(document).encode()


def test_a_signed_document_round_trips_and_verifies():
    key, body = _document()

    requests = verify_key_requests(
        parse_key_requests(body), agent_id="nas-a", issuer_public_key=key.public_key()
    )

    assert requests.sites == (REQUEST,)
    assert requests.request(SITE) == REQUEST and requests.request("other.test") is None


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {
            "sites": [
                {"site": SITE, "names": ["example.test", "*.example.test"], "key_type": "ec-p256"}
            ]
        },
        {"sites": [{"site": SITE, "names": ["Example.test"], "key_type": "ec-p256"}]},
        {"sites": [{"site": SITE, "names": ["example.test"], "key_type": "ed25519"}]},
        {
            "sites": [
                {"site": "b.test", "names": ["b.test"], "key_type": "ec-p256"},
                {"site": "a.test", "names": ["a.test"], "key_type": "ec-p256"},
            ]
        },
        {"sites": [{"site": SITE, "names": [], "key_type": "ec-p256"}]},
        {"agent": "Nas A"},
        {"issued_at": "2026-12-05 00:00:00"},
    ],
)
def test_a_document_out_of_shape_is_malformed(change):
    _, body = _document(**change)

    with pytest.raises(KeyRequestsMalformed) as caught:
        parse_key_requests(body)

    assert caught.value.code == "keyreq.malformed"


def test_a_later_format_asks_for_an_upgrade():
    document = json.loads(_document()[1])
    document["format"] = "certdrop-key-requests-v2"

    with pytest.raises(KeyRequestsUnsupported):
        parse_key_requests(json.dumps(document).encode())


def test_an_empty_sites_list_is_a_document_too():
    key = ed25519.Ed25519PrivateKey.generate()
    body = sign_key_requests([], agent_id="nas-a", signing_key=key, issued_at=now())

    assert parse_key_requests(body).sites == ()


def _refused(lab, issuer, write) -> None:
    """The agent accepted requests for SITE; `write` puts a bad document in place."""
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    pending = site_keys(lab).pending
    write()

    result = lab.run()

    assert result.exit_code == EXIT_REFUSED
    assert lab.state.key_requests.sites == (REQUEST,)  # kept
    assert site_keys(lab).pending == pending  # nothing made or replaced
    return lab.state.last_error.code


def test_key_requests_signed_by_another_key_are_refused(lab, issuer):
    impostor = ed25519.Ed25519PrivateKey.generate()
    changed = [KeyRequest(SITE, NAMES, "rsa-2048")]

    code = _refused(lab, issuer, lambda: issuer.request(changed, signing_key=impostor))

    assert code == "keyreq.issuer_key_unknown"


def test_key_requests_with_a_forged_signature_are_refused(lab, issuer):
    def forge():
        body = issuer.request([KeyRequest(SITE, NAMES, "rsa-2048")])
        document = json.loads(body)
        document["signed"]["sites"][0]["key_type"] = "ec-p384"  # changed after signing
        (issuer.prefix / store_layout.KEY_REQUESTS).write_text(json.dumps(document))

    assert _refused(lab, issuer, forge) == "keyreq.signature_invalid"


def test_key_requests_for_another_agent_are_refused(lab, issuer):
    write = lambda: issuer.request([KeyRequest(SITE, NAMES, "ec-p384")], agent_id="nas-b")  # noqa: E731

    assert _refused(lab, issuer, write) == "keyreq.wrong_agent"


def test_key_requests_rolled_back_are_refused(lab, issuer):
    older = now() - timedelta(days=1)
    write = lambda: issuer.request([], issued_at=older)  # noqa: E731

    assert _refused(lab, issuer, write) == "keyreq.rolled_back"


def test_key_requests_are_read_only_when_the_index_changed(lab, issuer):
    issuer.request()
    lab.run()
    # Written without signing the index again: the agent does not look.
    body = sign_key_requests(
        [KeyRequest(SITE, NAMES, "ec-p384")],
        agent_id=lab.agent_id,
        signing_key=lab.signing_key,
        issued_at=issuer.next_time(),
    )
    (issuer.prefix / store_layout.KEY_REQUESTS).write_bytes(body)

    idle = lab.run()

    assert idle.index_unchanged and idle.requests == 1
    assert site_keys(lab).pending.key_type == "ec-p256"
    issuer.resign()
    lab.run()
    assert site_keys(lab).pending.key_type == "ec-p384"


def test_an_https_source_cannot_take_a_csr(tmp_path):
    source = open_source("https://127.0.0.1:9/", "nas-a")
    store = KeyStore(str(tmp_path))

    with pytest.raises(SourceReadOnly) as caught:
        ensure_pending(
            store,
            REQUEST,
            agent=generate_agent_keys("nas-a"),
            source=source,
            now=now(),
            installed_sha256="",
            installed_key=None,
        )

    assert caught.value.code == "keyreq.source_read_only"
    assert source.counters.requests == 0
    pending = store.load(SITE).pending
    assert pending is not None and not pending.posted  # made once, posted when it can be


def test_an_agent_on_an_https_source_reports_its_site_waiting(lab, issuer, tmp_path):
    issuer.request()
    with HttpsStore(lab.store, tmp_path / "tls") as served:
        text = lab.config_path.read_text().replace(
            f"url = file://{lab.store}", f"url = {served.url}\nca_file = {served.ca_file}"
        )
        lab.config_path.write_text(text)

        result = lab.run()

    assert result.exit_code == EXIT_SOURCE
    assert lab.state.site_errors[SITE].code == "keyreq.source_read_only"
    assert not (issuer.prefix / store_layout.csr_name(SITE)).exists()


def test_every_keyreq_code_is_distinct():
    codes = [cls.code for cls in _subclasses(KeyRequestError)]

    assert len(codes) == len(set(codes))
    assert all(code.startswith("keyreq.") for code in codes)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
