"""Agent key custody (CSR mode, docs/key-custody.md) against the DSM emulator: the agent makes
the site's key, posts a signed CSR statement, installs the certificate that comes back as a
`certdrop-leaf-v1` with its own key, and makes the next key right after each install."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography import x509

from lab.agent_lab import SITE, AgentLab, fingerprint, now
from nas_agent.bundle import ESCROW_RECIPIENT, LeafPlaintext, open_sealed_any
from nas_agent.bundle.key_requests import KeyRequest
from nas_agent.bundle.leaf import encode_leaf_plaintext
from nas_agent.custody.key_types import generate_key
from nas_agent.custody.keygen import csr_der
from nas_agent.custody.statement import verify_csr_statement
from nas_agent.cycle import EXIT_OK, EXIT_REFUSED, EXIT_ROLLED_BACK
from tests.agent.custody_issuer import (
    NAMES,
    REQUEST,
    CustodyIssuer,
    key_store,
    public_der,
    report,
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


def _verified(lab, issuer, *, last_sequence=None, delivered=None):
    """The posted statement, checked as the issuer checks it."""
    return verify_csr_statement(
        issuer.statement(),
        agent_id=lab.agent_id,
        site=SITE,
        agent_public_key=lab.world.agents[lab.agent_id].signing_key.public_key(),
        names=NAMES,
        key_type="ec-p256",
        last_sequence=last_sequence,
        delivered_leaf_pem=delivered,
    )


def _first_install(lab, issuer):
    """Requests, the first CSR, its certificate installed; returns (statement, leaf)."""
    issuer.request()
    assert lab.run().exit_code == EXIT_OK
    statement = issuer.statement()
    leaf = issuer.issue(statement, version=1)
    issuer.publish(leaf)
    result = lab.run()
    assert result.exit_code == EXIT_OK, result.failures
    assert result.installed == (SITE,)
    return statement, leaf


def test_a_requested_site_gets_a_key_and_a_csr_statement_the_issuer_accepts(lab, issuer):
    issuer.request()

    result = lab.run()

    assert result.exit_code == EXIT_OK, result.failures
    checked = _verified(lab, issuer)
    assert checked.statement.rekey is False
    assert checked.statement.current_cert_sha256 == ""
    assert checked.key_type == "ec-p256"
    pending = site_keys(lab).pending
    assert pending is not None and pending.posted
    assert pending.sequence == checked.statement.sequence
    assert public_der(pending.key_pem) == public_der(checked.csr)
    assert lab.state.key_requests.sites == (REQUEST,)


def test_a_leaf_entry_installs_with_the_agents_own_key(lab, issuer):
    statement, leaf = _first_install(lab, issuer)

    assert lab.served() == fingerprint(leaf)
    csr_key = public_der(_csr(statement))
    assert served_key_der(lab) == csr_key
    keys = site_keys(lab)
    assert public_der(keys.current) == csr_key
    assert keys.previous is None  # confirmed served: nothing to keep


def test_renewal_rotates_the_key(lab, issuer):
    first, leaf = _first_install(lab, issuer)

    renewal = _verified(lab, issuer, last_sequence=first.sequence, delivered=leaf.leaf_pem)
    issuer.publish(issuer.issue(renewal.statement, version=2))
    result = lab.run()

    assert renewal.statement.rekey is False
    assert renewal.statement.current_cert_sha256 == fingerprint(leaf)
    assert public_der(renewal.csr) != public_der(_csr(first))
    assert result.installed == (SITE,), result.failures
    assert served_key_der(lab) == public_der(renewal.csr)
    third = issuer.statement()
    assert third.sequence > renewal.statement.sequence
    assert public_der(_csr(third)) not in (public_der(renewal.csr), public_der(_csr(first)))


def test_a_leaf_whose_key_matches_no_held_key_is_refused(lab, issuer):
    issuer.request()
    lab.run()
    statement = issuer.statement()
    # A certificate answering the agent's CSR sequence, but for a key the agent never made.
    stranger = csr_der(generate_key("ec-p256"), NAMES)
    issuer.publish(issuer.issue(statement, version=1, csr_der=stranger))

    result = lab.run()

    assert result.exit_code == EXIT_REFUSED
    assert lab.imports() == 0
    error = lab.state.site_errors[SITE]
    assert error.code == "bundle.key_missing"
    assert f"certdrop-agent rekey {SITE}" in error.message
    assert report(lab)["key_custody"][SITE]["problem"]["code"] == "bundle.key_missing"


def test_an_issuer_custody_entry_is_still_installed_for_a_site_in_agent_custody(lab, issuer):
    issuer.request()
    lab.run()
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)  # the issuer switched the site back
    lab.write_index(lab.entries(), issued_at=issuer.next_time())

    result = lab.run()

    assert result.installed == (SITE,), result.failures
    assert lab.served() == fingerprint(plaintext)


def test_rollback_after_a_bad_install_keeps_serving_the_previous_cert_with_its_key(lab, issuer):
    first, leaf = _first_install(lab, issuer)
    renewal = issuer.statement()
    issuer.publish(issuer.issue(renewal, version=2))
    lab.faults(keep_serving_old=True)

    result = lab.run()

    assert result.exit_code == EXIT_ROLLED_BACK
    assert lab.served() == fingerprint(leaf)
    assert served_key_der(lab) == public_der(_csr(first))
    keys = site_keys(lab)
    assert public_der(keys.current) == public_der(_csr(first))
    assert keys.pending.sequence == renewal.sequence  # kept for the retry
    lab.faults(keep_serving_old=False)
    retried = lab.run()
    assert retried.installed == (SITE,), retried.failures
    assert served_key_der(lab) == public_der(_csr(renewal))


def test_rekey_makes_a_new_key_and_sequence_and_deletes_the_pending_one(lab, issuer):
    issuer.request()
    lab.run()
    before = issuer.statement()

    done = lab.run_process("rekey", SITE)

    assert done.returncode == 0, done.stderr
    after = issuer.statement()
    assert after.rekey is True
    assert after.sequence > before.sequence
    assert public_der(_csr(after)) != public_der(_csr(before))
    issuer.publish(issuer.issue(before, version=1))  # answers the deleted key's CSR
    assert lab.run().exit_code == EXIT_REFUSED
    assert lab.state.site_errors[SITE].code == "bundle.key_missing"


def test_an_agent_that_lost_its_pending_key_recovers_by_rekey(lab, issuer):
    issuer.request()
    lab.run()
    lost = issuer.statement()
    os.unlink(key_store(lab).path(SITE))
    issuer.publish(issuer.issue(lost, version=1))
    assert lab.run().exit_code == EXIT_REFUSED
    assert lab.state.site_errors[SITE].code == "bundle.key_missing"

    done = lab.run_process("rekey", SITE)
    rekeyed = issuer.statement()
    issuer.publish(issuer.issue(rekeyed, version=2))
    result = lab.run()

    assert done.returncode == 0, done.stderr
    assert rekeyed.rekey is True and rekeyed.sequence > lost.sequence
    assert result.installed == (SITE,), result.failures
    assert served_key_der(lab) == public_der(_csr(rekeyed))


def test_the_sequence_grows_after_the_agent_lost_its_state(lab, issuer):
    issuer.request()
    lab.run()
    first = issuer.statement()
    (lab.root / "agent" / "state.json").unlink()
    os.unlink(key_store(lab).path(SITE))
    later = now() + timedelta(seconds=30)

    lab.run(now=lambda: later)

    second = issuer.statement()
    assert second.sequence >= int(later.timestamp()) > first.sequence


def test_rekey_twice_within_one_second_still_raises_the_sequence(lab, issuer):
    issuer.request()
    lab.run()
    sequences = []
    for _ in range(2):
        assert lab.run_process("rekey", SITE).returncode == 0
        sequences.append(issuer.statement().sequence)

    assert sequences[1] > sequences[0] > 0


def test_rekey_refuses_an_unknown_site_and_a_site_not_in_agent_custody(lab, issuer):
    unknown = lab.run_process("rekey", "nowhere.test")
    issuer.request([])  # no site in agent custody
    lab.run()
    issuer_custody = lab.run_process("rekey", SITE)

    assert unknown.returncode == 2
    assert (
        "keyreq.site_not_configured" in unknown.stderr or "no [site:nowhere.test]" in unknown.stderr
    )
    assert issuer_custody.returncode == 2
    assert "not in agent custody" in issuer_custody.stderr


def test_a_changed_key_type_replaces_the_pending_key(lab, issuer):
    issuer.request()
    lab.run()
    before = issuer.statement()

    issuer.request([KeyRequest(SITE, NAMES, "ec-p384")])
    lab.run()

    after = issuer.statement()
    assert after.sequence > before.sequence
    assert site_keys(lab).pending.key_type == "ec-p384"


def test_the_status_report_names_custody_and_the_pending_csr(lab, issuer):
    issuer.request()
    lab.run()

    custody = report(lab)["key_custody"]

    assert custody[SITE]["custody"] == "agent"
    assert custody[SITE]["csr_pending"] == issuer.statement().sequence
    assert custody[SITE]["problem"] is None


def test_an_agent_without_key_requests_reports_as_before(lab):
    lab.publish(lab.plaintext(version=1))
    lab.run()

    assert "key_custody" not in report(lab)
    assert lab.run().requests == 1  # the idle run: the index only


def _csr(statement):
    return x509.load_der_x509_csr(statement.csr_der)


def test_neither_the_agents_object_nor_the_escrow_copy_holds_a_key(lab, issuer):
    issuer.request()
    lab.run()
    leaf = issuer.issue(issuer.statement(), version=1)
    entry = issuer.publish(leaf)
    sealed = (issuer.prefix / entry.object_key).read_bytes()
    where = {"site": SITE, "version": 1}

    mine = open_sealed_any(
        sealed,
        recipient_id=lab.agent_id,
        private_key=lab.world.agents[lab.agent_id].box_key,
        **where,
    )
    escrowed = open_sealed_any(
        issuer.escrowed[1],
        recipient_id=ESCROW_RECIPIENT,
        private_key=lab.world.issuer.escrow_key,
        **where,
    )

    assert entry.custody == "agent" and entry.kind == "certdrop-leaf-v1"
    assert isinstance(mine, LeafPlaintext) and isinstance(escrowed, LeafPlaintext)
    assert b"PRIVATE KEY" not in encode_leaf_plaintext(mine)
    assert mine == escrowed
