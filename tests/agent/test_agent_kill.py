"""An agent process killed (SIGKILL) at any step of an install converges on its next run."""

from __future__ import annotations

import signal
import threading

import pytest

from lab.agent_lab import PASSWORD, SITE, USER, AgentLab, fingerprint
from nas_agent import cycle
from nas_agent.dsm.client import DsmClient

# The install logs one line per step (index, verified, DSM's certificate pinned on first use,
# login, backup, import, confirm, report): killing after the n-th line stops the agent before,
# between and after each DSM call.
KILL_POINTS = range(1, 10)


@pytest.fixture
def lab(tmp_path):
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def _kill_after_lines(lab: AgentLab, lines: int) -> None:
    process = lab.spawn("run", "--once")
    watchdog = threading.Timer(60, process.kill)  # a hung agent fails the test, not the suite
    watchdog.start()
    try:
        for _ in range(lines):
            if not process.stderr.readline():
                break  # it finished before this point
        process.send_signal(signal.SIGKILL)
        process.communicate()
    finally:
        watchdog.cancel()


def _certificates_described(lab: AgentLab, description: str) -> int:
    client = DsmClient(lab.dsm.http_url, timeout=10)
    with client.logged_in(USER, PASSWORD) as session:
        listed = client.list_certificates(session)
    client.close()
    return sum(1 for cert in listed if cert.desc == description)


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_a_killed_first_install_converges(lab, kill_after):
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)

    _kill_after_lines(lab, kill_after)
    rerun = lab.run_process("run", "--once")

    assert rerun.returncode == cycle.EXIT_OK, rerun.stderr
    assert lab.served() == fingerprint(plaintext)
    assert lab.state.installed(SITE).version == 1
    assert _certificates_described(lab, f"certdrop {SITE}") == 1


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_a_killed_renewal_converges(lab, kill_after):
    lab.publish(lab.plaintext(version=1))
    assert lab.run_process("run", "--once").returncode == cycle.EXIT_OK
    renewal = lab.plaintext(version=2)
    lab.publish(renewal)

    _kill_after_lines(lab, kill_after)
    rerun = lab.run_process("run", "--once")

    assert rerun.returncode == cycle.EXIT_OK, rerun.stderr
    assert lab.served() == fingerprint(renewal)
    assert lab.state.installed(SITE).version == 2
    assert _certificates_described(lab, f"certdrop {SITE}") == 1
