"""`certdrop issue SITE` (also the README's remedy for escrow.unsigned) when a dead run left a
recorded issuance: it finishes that one, then issues the new certificate asked for. From an
independent review: a traceback (exit 1) before the fix, nothing ordered, nothing in --out."""

from __future__ import annotations

from cloud.cli.exit_codes import EXIT_OK
from tests.cloud import test_index_trust
from tests.cloud.test_escrow_trust import SITE, _save_state, _state

fleet = test_index_trust.fleet


def test_issue_after_a_run_died_with_a_recorded_issuance_does_not_crash(fleet, tmp_path):
    state = _state(fleet)
    state["pending"] = state["current"]  # a run died after recording its certificate
    _save_state(fleet, state)

    issued = fleet.certdrop("issue", SITE, "--out", str(tmp_path / "pem"))

    assert "Traceback" not in issued.stderr, issued.stderr[-1500:]
    assert issued.returncode == EXIT_OK, issued.stderr
    assert f"finished version {state['current']['version']}" in issued.stdout
    assert _state(fleet)["current"]["version"] == state["current"]["version"] + 1
    assert (tmp_path / "pem" / "fullchain.pem").exists()
