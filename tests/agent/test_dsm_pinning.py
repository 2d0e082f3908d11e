"""DSM's TLS certificate is pinned on first use, follows the certificates the agent installs, and
a DSM presenting any other certificate is refused before a byte of a request is sent."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lab.agent_lab import PASSWORD, USER, AgentLab, fingerprint
from nas_agent import cycle
from nas_agent.dsm.client import DsmClient
from nas_agent.dsm.errors import DsmPinFileUnusable, DsmPinMismatch
from nas_agent.dsm.pinning import PIN_FILE, PinnedCertificates
from tests.agent.dsm_fixtures import PASSWORD as PASSWORD_DSM
from tests.agent.dsm_fixtures import USER as USER_DSM
from tests.agent.dsm_fixtures import DsmLab, fingerprint_of_pem, issue, served_fingerprint


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)  # configured as the README says: neither ca_file nor insecure
    yield lab
    lab.close()


def nothing_published(lab: AgentLab) -> None:
    lab.write_index([])


def pin_file(lab: AgentLab) -> Path:
    return lab.root / "agent" / PIN_FILE


def pinned(lab: AgentLab) -> list:
    return pin_file(lab).read_text().split()


def test_the_first_connection_pins_dsms_certificate_in_a_private_file(lab):
    nothing_published(lab)  # the daily credential check logs in all the same
    served = lab.served()

    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert pinned(lab) == [served]
    assert stat.S_IMODE(pin_file(lab).stat().st_mode) == 0o600


def test_the_pin_follows_each_certificate_the_agent_installs(lab):
    dsms_own = lab.served()
    first = lab.plaintext(version=1)
    lab.publish(first)
    result = lab.run()
    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert lab.served() == fingerprint(first)
    # Pinned before its import, so that even a run killed right after it reaches DSM again.
    assert pinned(lab) == [dsms_own, fingerprint(first)]

    second = lab.plaintext(version=2)
    lab.publish(second)
    result = lab.run()

    assert result.exit_code == cycle.EXIT_OK, result.failures
    assert lab.served() == fingerprint(second)
    # Narrowed to what DSM served at this run's first connection, then the new one added.
    assert pinned(lab) == [fingerprint(first), fingerprint(second)]


def test_a_certificate_someone_else_put_on_dsm_is_refused_and_nothing_is_sent(lab):
    nothing_published(lab)
    assert lab.run().exit_code == cycle.EXIT_OK
    before = pinned(lab)
    # Someone else (or something between the agent and DSM) now presents another certificate.
    other = issue(names=("intruder.test",))
    client = DsmClient(lab.dsm.http_url, timeout=10)
    with client.logged_in(USER, PASSWORD) as session:
        client.import_certificate(
            session,
            key_pem=other.key_pem.encode(),
            cert_pem=other.leaf_pem.encode(),
            chain_pem=other.chain_pem.encode(),
            desc="not the agent's",
            as_default=True,
        )
    client.close()
    assert lab.served() == fingerprint_of_pem(other.leaf_pem)
    lab.publish(lab.plaintext(version=1))
    lab.dsm.clear_requests()

    result = lab.run()

    assert result.exit_code == cycle.EXIT_DSM
    assert lab.dsm.requests == ()  # refused after the handshake, before any request
    assert lab.served() == fingerprint_of_pem(other.leaf_pem)
    assert lab.state.dsm_check.error.code == "dsm.tls_pin_mismatch"
    assert "pinned" in result.failures[0]
    assert pinned(lab) == before


# --- the client alone, against emulators --------------------------------------------------------


@pytest.fixture
def dsm(tmp_path):
    with DsmLab(tmp_path / "dsm") as dsm:
        yield dsm


def test_a_client_pins_on_first_use_and_refuses_an_impostor_before_sending_anything(dsm, tmp_path):
    real, impostor = dsm.start("dsm7"), dsm.start("dsm7")
    path = str(tmp_path / PIN_FILE)
    client = DsmClient(real.https_url, verify=PinnedCertificates(path), timeout=10)
    with client.logged_in(USER_DSM, PASSWORD_DSM) as session:
        assert client.list_certificates(session)
    client.close()
    assert PinnedCertificates(path).load() == (served_fingerprint(real),)

    fooled = DsmClient(impostor.https_url, verify=PinnedCertificates(path), timeout=10)
    with pytest.raises(DsmPinMismatch) as caught:
        fooled.login(USER_DSM, PASSWORD_DSM)
    fooled.close()

    assert impostor.requests == ()
    assert caught.value.code == "dsm.tls_pin_mismatch" and not caught.value.transient
    assert caught.value.served == served_fingerprint(impostor)
    assert caught.value.pinned == (served_fingerprint(real),)
    assert path in str(caught.value)
    assert PinnedCertificates(path).load() == (served_fingerprint(real),)


def test_a_pin_file_that_does_not_parse_is_refused_naming_it(dsm, tmp_path):
    handle = dsm.start("dsm7")
    path = tmp_path / PIN_FILE
    path.write_text("not a digest\n")
    client = DsmClient(handle.https_url, verify=PinnedCertificates(str(path)), timeout=10)

    with pytest.raises(DsmPinFileUnusable) as caught:
        client.discover()
    client.close()

    assert str(path) in str(caught.value)
    assert handle.requests == ()
