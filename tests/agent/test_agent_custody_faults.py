"""Agent custody when a run stops half-way or the store loses a file (review of the CSR mode):
the key DSM serves with is never lost or left as the pending one, the next renewal's CSR is
always made, and a CSR statement deleted from the store is posted again."""

from __future__ import annotations

import pytest
from cryptography import x509

from lab.agent_lab import SITE, AgentLab, fingerprint
from nas_agent import store_layout
from nas_agent.custody import key_store as key_store_module
from nas_agent.custody.key_store import KeyStore
from nas_agent.cycle import EXIT_OK, EXIT_REFUSED, EXIT_ROLLED_BACK
from nas_agent.errors import KeyFileError
from tests.agent.custody_issuer import (
    CustodyIssuer,
    key_store,
    public_der,
    served_key_der,
    site_keys,
)


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


@pytest.fixture
def issuer(lab):
    return CustodyIssuer(lab)


class _Died(BaseException):
    """The agent killed (power loss, OOM, DSM task timeout) mid-run."""


def _installed_but_recorded_pending(lab, issuer):
    """The first certificate installed, then the site's keys file put back as it was before
    (its key pending), as an agent killed between writing state.json and that file left it.
    Returns (the statement it answered, the leaf)."""
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    first = issuer.statement()
    path = key_store(lab).path(SITE)
    with open(path, "rb") as handle:
        before = handle.read()
    leaf = issuer.issue(first, version=1)
    issuer.publish(leaf)
    assert lab.run().installed == (SITE,)
    with open(path, "wb") as handle:
        handle.write(before)
    assert site_keys(lab).pending.sequence == first.sequence
    assert lab.state.installed(SITE).fingerprint == fingerprint(leaf)
    return first, leaf


def _csr(statement):
    return x509.load_der_x509_csr(statement.csr_der)


def _csr_path(issuer):
    return issuer.prefix / store_layout.csr_name(SITE)


def test_killed_between_state_and_key_store_writes_never_prepares_the_next_csr(
    lab, issuer, monkeypatch
):
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    first = issuer.statement()
    leaf = issuer.issue(first, version=1)
    issuer.publish(leaf)

    original = key_store_module.SiteKeys.installed

    def dies(self, *args, **kwargs):
        raise _Died  # the site's keys file not updated yet

    monkeypatch.setattr(key_store_module.SiteKeys, "installed", dies)
    with pytest.raises(_Died):
        lab.run()
    monkeypatch.setattr(key_store_module.SiteKeys, "installed", original)
    assert lab.served() == fingerprint(leaf)  # DSM serves v1 (with the pending key)

    assert lab.run().exit_code == EXIT_OK
    assert lab.run().exit_code == EXIT_OK

    posted = issuer.statement()
    assert posted.sequence > first.sequence, "no new CSR after the install: renewal is stuck"
    assert posted.current_cert_sha256 == fingerprint(leaf)
    keys = site_keys(lab)
    assert public_der(keys.current) == served_key_der(lab)
    assert public_der(keys.pending.key_pem) != served_key_der(lab)


def test_a_served_key_left_pending_becomes_current_and_the_next_csr_is_made(lab, issuer):
    first, leaf = _installed_but_recorded_pending(lab, issuer)

    idle = lab.run()
    issuer.resign()  # the issuer's routine re-sign of the index
    result = lab.run()

    assert idle.index_unchanged and idle.requests == 1
    assert result.exit_code == EXIT_OK, result.failures
    posted = issuer.statement()
    assert posted.sequence > first.sequence and posted.rekey is False
    assert posted.current_cert_sha256 == fingerprint(leaf)
    keys = site_keys(lab)
    assert public_der(keys.current) == served_key_der(lab)
    assert public_der(keys.pending.key_pem) == public_der(_csr(posted))
    renewal = issuer.issue(posted, version=2)
    issuer.publish(renewal)
    assert lab.run().installed == (SITE,)
    assert lab.served() == fingerprint(renewal)


def test_rekey_never_deletes_the_served_key_left_pending(lab, issuer):
    first, leaf = _installed_but_recorded_pending(lab, issuer)

    done = lab.run_process("rekey", SITE)

    assert done.returncode == 0, done.stderr
    keys = site_keys(lab)
    assert public_der(keys.current) == served_key_der(lab)
    rekeyed = issuer.statement()
    assert rekeyed.rekey is True and rekeyed.sequence > first.sequence
    assert rekeyed.current_cert_sha256 == fingerprint(leaf)
    assert public_der(keys.pending.key_pem) != served_key_der(lab)


def test_a_keys_file_unwritable_at_install_is_reported_and_mended_by_the_next_run(
    lab, issuer, monkeypatch
):
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    first = issuer.statement()
    leaf = issuer.issue(first, version=1)
    issuer.publish(leaf)

    def unwritable(self, keys):
        raise KeyFileError(self.path(keys.site), "cannot write: Read-only file system")

    monkeypatch.setattr(KeyStore, "save", unwritable)
    failed = lab.run()
    monkeypatch.undo()
    mended = lab.run()

    assert failed.exit_code == EXIT_REFUSED
    assert lab.served() == fingerprint(leaf)
    assert lab.state.installed(SITE).fingerprint == fingerprint(leaf)  # what DSM holds
    assert mended.exit_code == EXIT_OK, mended.failures
    assert SITE not in lab.state.site_errors
    posted = issuer.statement()
    assert posted.sequence > first.sequence
    assert posted.current_cert_sha256 == fingerprint(leaf)
    assert public_der(site_keys(lab).current) == served_key_der(lab)


def test_a_statement_deleted_from_the_store_is_posted_again_when_the_index_changes(lab, issuer):
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    path = _csr_path(issuer)
    posted = path.read_bytes()
    path.unlink()

    idle = lab.run()
    assert idle.index_unchanged and idle.requests == 1  # an idle poll stays one request
    assert not path.exists()
    issuer.resign()  # a routine re-sign
    for _ in range(3):
        assert lab.run().exit_code == EXIT_OK

    assert path.read_bytes() == posted  # the same statement: same sequence, same key


def test_no_statement_is_posted_again_while_the_index_holds_a_certificate_for_it(lab, issuer):
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    issuer.publish(issuer.issue(issuer.statement(), version=1))
    assert lab.run().installed == (SITE,)
    renewal = issuer.statement()
    _csr_path(issuer).unlink()
    issuer.publish(issuer.issue(renewal, version=2))
    lab.faults(keep_serving_old=True)  # the install is rolled back, and retried next run

    assert lab.run().exit_code == EXIT_ROLLED_BACK

    assert not _csr_path(issuer).exists()  # answered already: the issuer has no use for it
    lab.faults(keep_serving_old=False)
    assert lab.run().installed == (SITE,)
    assert issuer.statement().sequence > renewal.sequence
