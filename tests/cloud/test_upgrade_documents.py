"""An upgraded issuer reads the documents older versions left in the store: a site state with
an order in flight (resumed, not placed again), an unsigned registry record, the challenge
journal's older shape.

The literal documents are what commit 5bc1fcc (2026-11-28) wrote, copied from a run of that
commit's own end-to-end test by an independent upgrade review (whose findings were none: these
are the paths that held, kept as regressions).
"""

from __future__ import annotations

import json

from cloud.dns01.solver import _parsed
from cloud.pipeline.site_state import SiteState
from cloud.publish.registry import AgentRecord, record_problem

# state/sites/example.json as 5bc1fcc wrote it (no pending, undelivered, leftover_txt, agents ...).
SITE_5BC1FCC = b"""{
  "current": {"ari_id": "1NDy5iJeXlzxlftGfics9EKbn-s.J2FyqXGYDVI",
    "cert_sha256": "77060c86fea3591dc2cb8d94e0b9d0bb97a71229348fea64093ee461d13396c7",
    "escrow_object": "escrow/example/1.sealed", "issued_at": "2026-12-05T09:02:15+00:00",
    "key_type": "ec-p256", "names": ["example.test", "*.example.test"],
    "not_after": "2031-12-05T09:02:14+00:00", "not_before": "2026-12-05T09:02:15+00:00",
    "profile": null, "serial": "276172a971980d52", "version": 1},
  "failures": 2, "last_error": {"code": "PropagationTimeout", "message": "m",
    "at": "2026-12-05T09:00:00+00:00", "transient": true},
  "next_attempt": "2026-12-05T10:00:00+00:00",
  "order_placed_at": "2026-12-05T09:00:00+00:00",
  "order_url": "https://127.0.0.1:14000/my-order/abc",
  "site": "example", "window": null
}"""

# state/agents/nas-1.json as 5bc1fcc wrote it (before records were signed).
RECORD_5BC1FCC = (
    b'{"added_at": "2026-12-05T09:02:15.729157+00:00", "id": "nas-1", "sites": ["example"],'
    b' "token": "certdrop-agent-v1:nas-1:2oS_DR9s47v-jmC_oNq_rVxxClcoy3DLvogaJkklT1UYfYinvV7Ra4W'
    b'h9uL9sRAQdtgwjfpddvI4s9_bhdpEGndKhs4"}'
)


def test_a_5bc1fcc_site_state_keeps_its_certificate_and_its_order_in_flight():
    state = SiteState.from_json(SITE_5BC1FCC)
    assert state.current is not None and state.current.version == 1
    assert state.order_url == "https://127.0.0.1:14000/my-order/abc"  # resumed, not re-placed
    assert state.failures == 2 and state.next_attempt is not None
    assert (state.pending, state.agents, state.undelivered, state.leftover_txt) == (
        None,
        {},
        {},
        (),
    )
    again = SiteState.from_json(state.to_json())
    assert again == state


def test_a_5bc1fcc_registry_record_reads_as_unsigned_not_a_crash():
    record = AgentRecord.from_json(RECORD_5BC1FCC)
    assert record.sites == ("example",) and record.signature is None
    problem = record_problem(record, {})
    assert problem is not None and problem.code == "registry.record_unsigned"


def test_a_challenge_journal_of_the_older_shape_is_read():
    old = {
        "provider": "dns",
        "records": [
            {
                "zone": "example.test.",
                "fqdn": "_acme-challenge.example.test.",
                "value": "v",
                "ttl": 60,
            }
        ],
    }
    (entry,) = _parsed(json.loads(json.dumps(old)))
    assert (entry.provider, entry.record.value, entry.name) == ("dns", "v", "")
