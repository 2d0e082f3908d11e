"""Escrow copies the issuer did not write are never delivered (cloud.publish.escrow_statements).

Sealing to escrow needs only the escrow key's PUBLIC half (a line `init` prints), and the site
state naming a copy (`state/sites/<site>.json`) is unsigned. The first three tests are from an
independent review and failed before the fix: a store writer sealed a bundle of their own CA,
leaf and key "to escrow", pointed the site state's `pending` (or `current` with `undelivered`)
at it, and the next run signed it into the agent's index; the agent installed it. The others pin
the statement across both key rotations, after a compromise, and on a store from before
statements. The attacker writes to the store; they hold no issuer key.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cloud.cli.exit_codes import EXIT_OK, EXIT_STORE
from cloud.keys.issuer import load_issuer
from cloud.pipeline import parts
from cloud.publish.escrow_statements import EscrowStatement
from lab.sample_pki import make_pki
from nas_agent import cycle, store_layout
from nas_agent.bundle import ESCROW_RECIPIENT, make_plaintext, parse_index, seal
from nas_agent.bundle.plaintext import MAX_VERSION
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys, key_id
from tests.cloud import test_index_trust
from tests.cloud.test_index_trust import Fleet, _config_of

SITE = "example"
fleet = test_index_trust.fleet  # the fixture: nas-1 installed version 1 of SITE


def _served_sha256(fleet: Fleet) -> str:
    pem = ssl.get_server_certificate((fleet.dsm.host, fleet.dsm.https_port))
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _make_due(fleet: Fleet) -> None:
    """A site with no schedule marker is due: the store writer deletes it, and the next tick or
    `certdrop run` runs the site."""
    for info in list(fleet.store.list(store_layout.schedule_prefix(SITE))):
        fleet.store.delete(info.key)


def _state(fleet: Fleet) -> dict:
    return json.loads(fleet.store.get(store_layout.site_state(SITE)).body)


def _save_state(fleet: Fleet, state: dict) -> None:
    fleet.store.put(store_layout.site_state(SITE), json.dumps(state).encode())


def _escrow_public(fleet: Fleet):
    """What the attacker knows: the escrow key line `init` printed (a public key)."""
    return load_issuer(parts.keystore(_config_of(fleet))).escrow_key.public_key()


def _forge_escrow_copy(fleet: Fleet, version: int) -> tuple[str, dict]:
    """The attacker's own CA, leaf and key for the site's names, sealed 'to escrow' with only the
    escrow PUBLIC key, and a matching record for the unsigned site state."""
    now = datetime.now(UTC).replace(microsecond=0)
    issued = make_pki("attacker").issue(
        ("example.test", "*.example.test"),
        not_before=now,  # newer than the one DSM holds: passes the rollback check
        not_after=now + timedelta(days=80),
    )
    plaintext = make_plaintext(
        site=SITE,
        version=version,
        key_pem=issued.key_pem,
        leaf_pem=issued.leaf_pem,
        chain_pem=issued.chain_pem,
        issued_at=now,
    )
    sealed = seal(
        plaintext, recipient_id=ESCROW_RECIPIENT, recipient_public_key=_escrow_public(fleet)
    )
    escrow_object = store_layout.escrow(SITE, version)
    fleet.store.put(escrow_object, sealed)
    leaf = x509.load_pem_x509_certificate(issued.leaf_pem.encode())
    record = {
        "version": version,
        "cert_sha256": plaintext.leaf_sha256(),
        "serial": f"{leaf.serial_number:x}",
        "names": list(plaintext.names),
        "key_type": "ec-p256",
        "profile": None,
        "not_before": plaintext.not_before.isoformat(),
        "not_after": plaintext.not_after.isoformat(),
        "issued_at": now.isoformat(),
        "escrow_object": escrow_object,
        "ari_id": None,
    }
    return plaintext.leaf_sha256(), record


def _signed_shas(fleet: Fleet) -> list[str]:
    return [e.cert_sha256 for e in parse_index(fleet.index_bytes()).entries]


_NEWCOMER = enrollment_of(generate_agent_keys("nas-2")).token()


def _add_newcomer(fleet: Fleet):
    return fleet.certdrop("agent", "add", _NEWCOMER, "--site", SITE)


def _newcomer_bundles(fleet: Fleet) -> list[str]:
    return [i.key for i in fleet.store.list(store_layout.agent_bundles("nas-2", SITE))]


# --- from the review ---------------------------------------------------------------------------


def test_a_store_writer_cannot_get_a_certificate_of_their_choosing_signed_and_installed(fleet):
    state = _state(fleet)
    forged_sha, record = _forge_escrow_copy(fleet, state["current"]["version"] + 1)
    state["pending"] = record  # "a run died after recording its certificate"
    _save_state(fleet, state)
    _make_due(fleet)

    run = fleet.certdrop("run")  # ordinary run
    agent = fleet.agent()

    assert run.returncode == EXIT_OK, run.stderr
    served = _served_sha256(fleet)
    assert served != forged_sha, (
        f"DSM now serves the attacker's certificate (rc={agent.returncode})"
    )
    assert forged_sha not in _signed_shas(fleet), "the issuer signed an index entry for the forgery"
    # The record is none of the issuer's: dropped, and the run went on with the real certificate.
    assert _state(fleet)["pending"] is None
    assert "escrow.unsigned" in run.stderr


def test_a_store_writer_cannot_fast_forward_a_site_through_the_issuer(fleet):
    """Same hole, used for an indefinite freeze the agent does not report as frozen: the issuer
    signs version 2**53-1 for the site, the agent's ratchet moves there, and every later real
    version is refused as stale."""
    state = _state(fleet)
    _, record = _forge_escrow_copy(fleet, MAX_VERSION)
    state["pending"] = record
    _save_state(fleet, state)
    _make_due(fleet)

    assert fleet.certdrop("run").returncode == EXIT_OK

    index = parse_index(fleet.index_bytes())
    assert [e.version for e in index.entries] != [MAX_VERSION], (
        "the issuer signed a version it never reserved"
    )


def test_undelivered_plus_current_redelivers_a_forgery_to_a_chosen_agent(fleet):
    """The other path: `undelivered` names the victim and `current` the forged copy; `_redeliver`
    runs before the renewal decision on every run of the site. Nothing is redelivered; the agent
    stays pending with the refusal's code (status, `delivery_pending` alert) until the next
    issuance reaches it, so the run says EXIT_STORE as for any pending delivery."""
    state = _state(fleet)
    forged_sha, record = _forge_escrow_copy(fleet, state["current"]["version"] + 1)
    state["current"] = record
    state["undelivered"] = {"nas-1": "delivery.failed: x"}
    _save_state(fleet, state)
    _make_due(fleet)

    run = fleet.certdrop("run")

    assert run.returncode == EXIT_STORE, run.stderr
    assert forged_sha not in _signed_shas(fleet)
    assert _state(fleet)["undelivered"]["nas-1"].startswith("escrow.unsigned: ")


# --- what else a store writer may try ----------------------------------------------------------


def test_a_genuine_statement_does_not_vouch_for_a_forged_copy_put_in_its_place(fleet):
    genuine = _state(fleet)
    _, record = _forge_escrow_copy(fleet, genuine["current"]["version"])  # over the genuine copy
    _save_state(fleet, {**genuine, "current": record})

    named = _add_newcomer(fleet)  # the site state names the forged certificate
    _save_state(fleet, genuine)
    unnamed = _add_newcomer(fleet)  # it names the genuine one, the copy holds the forgery

    assert named.returncode != EXIT_OK
    assert "names another certificate than the site state" in named.stderr
    assert unnamed.returncode != EXIT_OK
    assert "is not the copy its statement names" in unnamed.stderr
    assert _newcomer_bundles(fleet) == []


def test_an_escrow_copy_larger_than_any_is_refused_without_being_read_whole(fleet):
    """The issuer read the escrow copy the unsigned site state names with no bound: a store
    writer could make every run that delivers from escrow read gigabytes. It is read up to the
    sealed cap and refused beyond it (found by an independent review; failed before the fix)."""
    copy = _state(fleet)["current"]["escrow_object"]
    fleet.store.put(copy, b"\0" * (2 * 1024 * 1024))

    added = _add_newcomer(fleet)

    assert added.returncode != EXIT_OK
    assert "is larger than any escrow copy" in added.stderr
    assert _newcomer_bundles(fleet) == []


def test_a_statement_moved_to_another_version_vouches_for_nothing_there(fleet):
    state = _state(fleet)
    version = state["current"]["version"]
    genuine = fleet.store.get(store_layout.escrow_statement(SITE, version)).body
    _, record = _forge_escrow_copy(fleet, version + 1)
    fleet.store.put(store_layout.escrow_statement(SITE, version + 1), genuine)
    state["pending"] = record
    _save_state(fleet, state)
    _make_due(fleet)

    run = fleet.certdrop("run")

    assert run.returncode == EXIT_OK, run.stderr
    assert f"vouches for {SITE} v{version}" in run.stderr
    assert [e.version for e in parse_index(fleet.index_bytes()).entries] == [version]


# --- key rotations -----------------------------------------------------------------------------


def test_a_signing_key_rotation_signs_every_statement_again_and_redelivery_still_works(fleet):
    rotated = fleet.certdrop("issuer", "rotate")
    state = _state(fleet)
    state["undelivered"] = {"nas-1": "delivery.failed: x"}  # a delivery a run could not make
    _save_state(fleet, state)
    _make_due(fleet)

    redelivered = fleet.certdrop("run")
    added = _add_newcomer(fleet)

    assert rotated.returncode == EXIT_OK, rotated.stderr
    assert "1 escrow statement(s)" in rotated.stdout
    new_key = load_issuer(parts.keystore(_config_of(fleet))).signing_key.public_key()
    statement = json.loads(
        fleet.store.get(store_layout.escrow_statement(SITE, state["current"]["version"])).body
    )
    assert statement["signed"]["issuer_key_id"] == key_id(new_key)
    assert redelivered.returncode == EXIT_OK, redelivered.stderr
    assert _state(fleet)["undelivered"] == {}
    assert added.returncode == EXIT_OK, added.stderr
    assert "delivered current certificates of: example" in added.stdout


def test_an_escrow_key_rotation_reseals_every_copy_and_its_statement_still_vouches(fleet):
    version = _state(fleet)["current"]["version"]
    copy_before = fleet.store.get(store_layout.escrow(SITE, version)).body
    statement_before = fleet.store.get(store_layout.escrow_statement(SITE, version)).body

    rotated = fleet.certdrop("issuer", "rotate", "--escrow")
    added = _add_newcomer(fleet)

    assert rotated.returncode == EXIT_OK, rotated.stderr
    assert "1 escrow cop" in rotated.stdout
    # Re-sealed; the statement binds what the copy holds, not its sealed bytes: unchanged, true.
    assert fleet.store.get(store_layout.escrow(SITE, version)).body != copy_before
    assert fleet.store.get(store_layout.escrow_statement(SITE, version)).body == statement_before
    assert added.returncode == EXIT_OK, added.stderr
    assert "delivered current certificates of: example" in added.stdout
    assert _newcomer_bundles(fleet) == [
        store_layout.agent_bundles("nas-2", SITE) + f"{version}.sealed"
    ]


def test_a_copy_vouched_for_by_a_key_retired_after_a_compromise_is_refused(fleet):
    """The compromised key could have signed anything: what it vouched for is refused until the
    site is issued again, as the README's recovery says."""
    reset = fleet.certdrop("issuer", "rotate", "--compromised")
    trusted_again = fleet.certdrop("agent", "resign", "nas-1")  # the README's recovery
    refused = _add_newcomer(fleet)
    reissued = fleet.certdrop("issue", SITE)

    assert reset.returncode == EXIT_OK, reset.stderr
    assert trusted_again.returncode == EXIT_OK, trusted_again.stderr
    assert "1 escrow statement(s) signed by no key the issuer holds" in reset.stdout
    assert refused.returncode != EXIT_OK
    assert "not one it holds" in refused.stderr and "certdrop issue example" in refused.stderr
    assert reissued.returncode == EXIT_OK, reissued.stderr
    assert _newcomer_bundles(fleet) == [
        store_layout.agent_bundles("nas-2", SITE) + f"{_state(fleet)['current']['version']}.sealed"
    ]


# --- a store from before statements ------------------------------------------------------------


def test_a_copy_from_before_statements_is_refused_until_the_site_is_issued_again(fleet):
    """Upgrading (README): agents keep what they installed; a new agent and a redelivery get
    nothing from the old copy, told to issue the site again; a recorded issuance a run left is
    dropped (nothing tells it from a forgery). `certdrop issue SITE` makes a signed copy."""
    for info in list(fleet.store.list(store_layout.ESCROW_STATEMENTS_PREFIX)):
        fleet.store.delete(info.key)  # as a store written before statements holds them
    state = _state(fleet)
    state["pending"] = state["current"]  # as a run that died at the upgrade would leave it
    state["undelivered"] = {"nas-1": "delivery.failed: x"}
    _save_state(fleet, state)
    _make_due(fleet)

    run = fleet.certdrop("run")
    left = _state(fleet)
    refused = _add_newcomer(fleet)
    reissued = fleet.certdrop("issue", SITE)
    agent = fleet.agent()

    assert run.returncode == EXIT_STORE, run.stderr
    assert left["pending"] is None
    assert "written before escrow copies were signed" in left["undelivered"]["nas-1"]
    # Registered all the same: told which site it did not get and why (exit 5), nothing else
    # of the command skipped.
    assert refused.returncode == EXIT_STORE
    assert "receives: example" in refused.stdout
    assert "not delivered: example: escrow.unsigned:" in refused.stderr
    assert "escrow copies were signed (issue the site again: `certdrop issue example`)" in (
        refused.stderr
    )
    assert reissued.returncode == EXIT_OK, reissued.stderr
    after = _state(fleet)
    assert (
        after["undelivered"] == {}
        and after["current"]["version"] == state["current"]["version"] + 1
    )
    assert agent.returncode == cycle.EXIT_OK, agent.stderr
    assert _served_sha256(fleet) == after["current"]["cert_sha256"]
    assert len(_newcomer_bundles(fleet)) == 1


def test_the_escrow_statements_signed_bytes_are_pinned():
    """docs/bundle-format.md section 12: a context line, then the canonical JSON of `signed`."""
    statement = EscrowStatement(
        site="example.test",
        version=42,
        kind="certdrop-bundle-v1",
        agent="",
        cert_sha256="91" * 32,
        plaintext_sha256="3c" * 32,
    )

    signed = statement.signed_bytes("4897" * 4)

    assert signed == (
        b"certdrop escrow statement v1\n"
        b'{"agent":"","cert_sha256":"' + b"91" * 32 + b'","issuer_key_id":"4897489748974897",'
        b'"kind":"certdrop-bundle-v1","plaintext_sha256":"' + b"3c" * 32 + b'",'
        b'"site":"example.test","version":42}'
    )
