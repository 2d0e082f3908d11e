"""When the daily DSM credential check is due (`nas_agent.credential_check.check_due`): a pure
decision over the state's record of the latest DSM login."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lab.agent_lab import now
from nas_agent.credential_check import CHECK_EVERY, check_due
from nas_agent.state import AgentState

BASIS = "b" * 64


def checked(error: str | None = None, transient: bool = False) -> AgentState:
    return AgentState().with_dsm_check(
        now(), BASIS, code=error, message="x" if error else "", transient=transient
    )


@pytest.mark.parametrize(
    ("state", "basis", "after", "due"),
    [
        (AgentState(), BASIS, timedelta(0), True),  # never checked
        (checked(), BASIS, timedelta(hours=23, minutes=59), False),
        (checked(), BASIS, CHECK_EVERY, True),
        (checked(), "c" * 64, timedelta(minutes=1), True),  # agent.conf or a file changed
        (checked("dsm.login_wrong_password"), BASIS, timedelta(hours=1), False),
        (checked("dsm.unreachable", transient=True), BASIS, timedelta(minutes=1), True),
        (checked(), BASIS, -timedelta(hours=1), True),  # the clock was set back
    ],
)
def test_the_check_is_due_daily_after_a_change_or_after_a_transient_failure(
    state, basis, after, due
):
    last = state.dsm_check
    moment = (last.at if last is not None else now()) + after
    assert check_due(last, basis, moment) is due
