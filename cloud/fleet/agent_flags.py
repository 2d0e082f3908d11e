"""What is wrong with an agent, worst first, in the words every view uses: `certdrop status` (its
STATE column) and the dashboard (its badges) read the same flags, so they never disagree, and
each flag that needs a human has an alert saying the same.

An agent with no report yet is neutral (grey) until its first report is overdue; then it is
quiet (red), as `agent_quiet` says. Certificates are flagged for the sites the agent receives
only (those certdrop answers for): expired (red, whatever its version: the NAS serves it),
expiring and not the one published for it (amber: the published one expiring is the site's own
`expiring`), or a version never published (red, `agent_version_unpublished`). A site it receives
that its agent.conf does not configure is red (`agent_site_unconfigured`): it is never installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.fleet.alerts.wording import day_count
from cloud.fleet.status import AHEAD, AgentStatus

_RANK = {"red": 0, "amber": 1, "grey": 2}


@dataclass(frozen=True)
class Flag:
    level: str  # "red", "amber" or "grey" (neutral): the dashboard's colour
    word: str  # short, for a badge
    text: str  # with its detail, for a table cell


def agent_flags(agent: AgentStatus) -> tuple[Flag, ...]:
    """Every flag of the agent, worst first; none when nothing is wrong (the views say "ok")."""
    found = _report_flags(agent) + _certificate_flags(agent)
    if agent.unconfigured_sites:
        listed = ", ".join(agent.unconfigured_sites)
        found.append(Flag("red", "site not configured", f"not in its agent.conf: {listed}"))
    return tuple(sorted(found, key=lambda flag: _RANK[flag.level]))


def needs_a_look(agent: AgentStatus) -> bool:
    return any(flag.level != "grey" for flag in agent_flags(agent))


def _report_flags(agent: AgentStatus) -> list[Flag]:
    found = []
    if agent.report_invalid or (agent.report_problem and not agent.no_report):
        word = "report invalid" if agent.report_invalid else "report problem"
        found.append(Flag("red", word, agent.report_problem or word))
    if agent.quiet:
        found.append(
            Flag("red", "quiet", "quiet: no status report yet" if agent.no_report else "quiet")
        )
    elif agent.no_report:  # just added: its first poll has not come yet
        found.append(Flag("grey", "no report yet", agent.report_problem or "no status report yet"))
    if agent.frozen:
        found.append(Flag("red", "frozen", "frozen"))
    elif agent.failing:
        found.append(Flag("red", "failing", "failing"))
    return found


def _certificate_flags(agent: AgentStatus) -> list[Flag]:
    found = []
    for site in agent.sites:
        got = agent.installed.get(site)
        if got is None:
            continue
        held = f"{site} v{got.version}"
        if got.days_left <= 0:
            text = f"{held} expired {day_count(-got.days_left)} ago"
            found.append(Flag("red", "certificate expired", text))
        elif got.expiring and not got.current:
            text = f"{held} expires in {day_count(got.days_left)}"
            found.append(Flag("amber", "certificate expiring", text))
        if got.standing == AHEAD:
            found.append(Flag("red", "version never published", f"{held} never published"))
    return found
