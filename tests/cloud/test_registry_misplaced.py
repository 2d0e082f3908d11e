"""A registry record a store writer copied into another agent's place reads as no record there:
it stops no index being signed again (`issuer rotate`, the tick's re-sign) and `agent add`
replaces it. From an independent review of the first fix, which raised instead; both tests
failed then."""

from __future__ import annotations

from cloud.cli.exit_codes import EXIT_OK
from nas_agent import store_layout
from nas_agent.bundle import parse_index
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys
from tests.cloud import test_index_trust

fleet = test_index_trust.fleet


def test_a_record_copied_to_another_agents_place_does_not_stop_every_index_being_signed_again(
    fleet,
):
    token = enrollment_of(generate_agent_keys("nas-0")).token()  # listed before nas-1
    added = fleet.certdrop("agent", "add", token, "--site", "example")
    assert added.returncode == EXIT_OK, added.stderr
    nas1 = fleet.store.get(store_layout.registry_record("nas-1")).body
    fleet.store.put(store_layout.registry_record("nas-0"), nas1)  # the store writer
    signed_by = parse_index(fleet.index_bytes()).issuer_key_id

    rotated = fleet.certdrop("issuer", "rotate")

    assert rotated.returncode == EXIT_OK, rotated.stderr[-1500:]
    assert parse_index(fleet.index_bytes()).issuer_key_id != signed_by, (
        "nas-1's index was not signed with the new key"
    )


def test_the_re_add_the_refusal_advises_replaces_a_record_copied_to_the_agents_place(fleet):
    """The refusal says "re-add the agent with the token its NAS printed"; `agent add` reads the
    record first with get(), which raises the same refusal, so the record can never be replaced
    (before a22b04b agent add replaced it: "replaced its record, which was not the issuer's")."""
    token = enrollment_of(generate_agent_keys("nas-0")).token()
    assert fleet.certdrop("agent", "add", token, "--site", "example").returncode == EXIT_OK
    nas1 = fleet.store.get(store_layout.registry_record("nas-1")).body
    fleet.store.put(store_layout.registry_record("nas-0"), nas1)

    again = fleet.certdrop("agent", "add", token, "--site", "example")

    assert again.returncode == EXIT_OK, again.stderr[-800:]
