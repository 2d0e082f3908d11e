"""A renewal naming what it `replaces` whose order the CA stored but whose answer was lost (a
serverInternal after the order was created): never a second order for one certificate, and no
"replaced elsewhere" alarm for the run's own order."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.wrappers import Request, Response

from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from lab.issuer_config import bind_config
from lab.pebble_front import PebbleFront


class _AnswerLost(PebbleFront):
    """Pebble behind a front that passes the first newOrder carrying `replaces` on to Pebble
    (which stores the order) and answers the client 500 serverInternal: a CA whose front end
    failed after the order was created."""

    def __init__(self, pebble, every: bool = False) -> None:
        super().__init__(pebble, hide=())
        self.lost: list[str] = []
        self.every = every  # every replacing order's answer lost, not only the first

    @Request.application
    def _app(self, request: Request) -> Response:
        response = PebbleFront._app.__wrapped__(self, request)
        entry = self.requests[-1]
        payload = entry["payload"] if isinstance(entry["payload"], dict) else {}
        if (
            entry["path"] == "/order-plz"
            and entry["status"] == 201
            and payload.get("replaces")
            and (self.every or not self.lost)
        ):
            self.lost.append(response.headers["Location"])
            problem = {
                "type": "urn:ietf:params:acme:error:serverInternal",
                "detail": "the order was stored; its answer was lost",
                "status": 500,
            }
            lost = Response(
                json.dumps(problem), status=500, content_type="application/problem+json"
            )
            lost.headers["Replay-Nonce"] = response.headers["Replay-Nonce"]
            return lost
        return response


def _runner(config, now):
    return Runner(
        config,
        parts.store(config),
        parts.keystore(config),
        parts.publisher(config),
        now=lambda: now,
        rng=random.Random(3),
    )


@pytest.mark.parametrize("every", [False, True], ids=["first-answer-lost", "every-answer-lost"])
def test_a_lost_answer_to_a_replacing_order_places_one_order_for_one_certificate(
    tmp_path, pebble, bind_auth, every
):
    with _AnswerLost(pebble, every) as front:
        config = bind_config(tmp_path, front, bind_auth)
        init_issuer(parts.keystore(config))
        store = parts.store(config)
        now = datetime.now(UTC)
        first = _runner(config, now).run_site("example")
        assert first.result == "issued", first.reason
        pebble.set_renewal_info(
            first.certificate.cert_pem,
            (now - timedelta(hours=2)).isoformat(),
            (now - timedelta(hours=1)).isoformat(),
        )
        before = len(front.requests)

        lost = _runner(config, now + timedelta(hours=7)).run_site("example")
        state = load_site_state(store, "example")
        resumed = _runner(config, state.next_attempt or now + timedelta(hours=8)).run_site(
            "example"
        )

        assert lost.result == "failed" and lost.error.transient, lost.reason
        assert resumed.result == "issued", resumed.reason
        created = [
            r for r in front.requests[before:] if r["path"] == "/order-plz" and r["status"] == 201
        ]
        assert len(created) == 1, front.requests[before:]  # the stored one, finished by the next
        assert load_site_state(store, "example").replaced_elsewhere is None
