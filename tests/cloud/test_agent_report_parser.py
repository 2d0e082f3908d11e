"""The parser of an agent's status report, property-based: whatever JSON a field holds, the report
is read with every field of its documented type or refused as StatusReportInvalid, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.fleet.agent_report import parse_report
from nas_agent import status
from nas_agent.errors import StatusReportInvalid
from nas_agent.state import AgentState

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SEEN = NOW - timedelta(minutes=5)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    [
        "format", "agent", "poll_interval_s", "seen_at", "dsm_version", "sites", "last_success",
        "last_error", "site_errors", "unconfigured_sites", "dsm_check", "failing",
    ]
)  # fmt: skip


def _genuine_report() -> dict[str, Any]:
    state = AgentState().with_error("install.failed", "restored", SEEN, "healthy")
    return json.loads(status.status_report(state, agent_id="nas-x", now=SEEN, poll_interval=900))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(changes=st.dictionaries(_FIELDS, _JSON, max_size=3))
def test_any_field_of_any_json_value_is_read_or_refused_as_report_invalid(changes):
    report = {**_genuine_report(), **changes}

    try:
        parsed = parse_report(report, written_at=None, now=NOW)
    except StatusReportInvalid:
        return
    assert parsed.seen_at <= NOW
    assert parsed.poll_interval is None or parsed.poll_interval > 0
