"""Runs that can repeat: the lock, resuming an order, backoff, and one order per due site."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.cli.exit_codes import EXIT_DNS, EXIT_OK
from cloud.errors import Locked
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.lock import SiteLock
from cloud.pipeline.schedule import read_markers
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from lab.issuer_config import bind_config
from tests.cloud.issuing import txt_values

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    init_issuer(parts.keystore(config))
    return config


def _runner(config):
    return Runner(config, parts.store(config), parts.keystore(config), parts.publisher(config))


def test_a_site_run_twice_is_issued_once(config, orders):
    first = _runner(config).run_site("example")
    second = _runner(config).run_site("example")

    assert (first.result, first.reason) == ("issued", "never issued")
    assert second.result == "not due"
    assert len(orders) == 1
    state = load_site_state(parts.store(config), "example")
    assert state.current.version == 1
    assert state.order_url is None
    marker = read_markers(parts.store(config))["example"]
    # Pebble offers ARI: the next look is when the CA said to ask again (its Retry-After, 6 h),
    # well before the window it suggested for the renewal.
    assert state.window is not None
    assert marker.next_check == state.window.next_check.replace(microsecond=0)
    assert state.window.renew_at > datetime.now(UTC) + timedelta(days=30)
    assert marker.not_after == state.current.not_after.replace(microsecond=0)


def _kill_run_after_ordering(config) -> None:
    """`certdrop run --site example`, SIGKILLed as soon as it has saved its order."""
    command = [sys.executable, "-m", "cloud.cli", "-c", str(config.source), "run"]
    process = subprocess.Popen(
        [*command, "--site", "example"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        for line in process.stderr:
            if "order saved" in line:
                process.send_signal(signal.SIGKILL)
                break
        process.wait()
    finally:
        watchdog.cancel()
        process.stderr.close()


def test_a_run_killed_after_ordering_is_resumed_without_a_new_order(config, orders, bind_auth):
    _kill_run_after_ordering(config)
    saved = load_site_state(parts.store(config), "example")
    assert saved.order_url is not None and saved.current is None
    later = Runner(  # the dead run's lock has expired by then
        config,
        parts.store(config),
        parts.keystore(config),
        parts.publisher(config),
        now=lambda: datetime.now(UTC) + timedelta(minutes=10),
    )
    assert _runner(config).run_site("example").result == "locked"

    outcome = later.run_site("example")

    assert outcome.result == "issued"
    assert orders == []  # the interrupted run's order was finished, none placed
    assert load_site_state(parts.store(config), "example").order_url is None
    assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()


def test_a_dead_runs_lock_is_named_as_such_and_the_operator_can_break_it(config, pebble):
    before = len(pebble.order_ids())
    _kill_run_after_ordering(config)
    cli = [sys.executable, "-m", "cloud.cli", "-c", str(config.source)]

    blocked = subprocess.run([*cli, "run", "--site", "example"], capture_output=True, text=True)
    refused = subprocess.run([*cli, "unlock", "example"], capture_output=True, text=True, input="")
    broken = subprocess.run([*cli, "unlock", "example", "--yes"], capture_output=True, text=True)
    resumed = subprocess.run([*cli, "run", "--site", "example"], capture_output=True, text=True)

    assert blocked.returncode == 0, blocked.stderr
    assert "no longer running" in blocked.stdout
    assert "certdrop unlock example" in blocked.stdout
    assert "not broken" in refused.stdout
    assert "pid" in broken.stdout and "no longer running" in broken.stdout
    assert broken.returncode == 0, broken.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "issued" in resumed.stdout
    assert len(pebble.order_ids()) == before + 1  # the dead run's order, finished; no other


def test_a_failed_run_backs_off_and_is_not_retried_before_its_time(config, orders, tmp_path):
    (tmp_path / "tsig").write_text("AAAA" + (tmp_path / "tsig").read_text()[4:])

    failed = _runner(config).run_site("example")
    again = _runner(config).run_site("example")

    assert failed.result == "failed"
    state = load_site_state(parts.store(config), "example")
    assert state.failures == 1
    assert state.last_error.code == "dns.provider_failed"
    assert timedelta(minutes=3) < state.next_attempt - datetime.now(UTC) < timedelta(minutes=7)
    assert read_markers(parts.store(config))["example"].next_check <= state.next_attempt
    assert again.result == "not due"
    assert "backing off after 1 failure" in again.reason
    assert len(orders) == 1


def test_a_site_locked_by_another_run_is_left_alone(config, orders):
    store = parts.store(config)
    with SiteLock(store, "example", timedelta(minutes=5), owner="someone-else"):
        outcome = _runner(config).run_site("example")

    assert outcome.result == "locked"
    assert "someone-else" in outcome.reason
    assert orders == []


def test_an_expired_lock_of_a_dead_run_is_taken_over(config):
    store = parts.store(config)
    dead = SiteLock(store, "example", timedelta(minutes=5), owner="dead-run",
                    now=lambda: datetime.now(UTC) - timedelta(hours=1))  # fmt: skip
    dead.acquire()  # and never released

    assert _runner(config).run_site("example").result == "issued"


def test_two_lock_holders_cannot_both_win(config):
    store = parts.store(config)
    first = SiteLock(store, "example", timedelta(minutes=5), owner="a")
    first.acquire()

    with pytest.raises(Locked):
        SiteLock(store, "example", timedelta(minutes=5), owner="b").acquire()
    first.release()
    SiteLock(store, "example", timedelta(minutes=5), owner="b").acquire()


def test_certdrop_run_issues_the_due_sites_and_reports_each(config):
    run = [sys.executable, "-m", "cloud.cli", "-c", str(config.source), "run"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    first = subprocess.run(run, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    second = subprocess.run(run, capture_output=True, text=True, cwd=REPO, env=env, check=False)

    assert first.returncode == EXIT_OK, first.stderr
    assert "example  issued    v1     never issued" in first.stdout
    assert second.returncode == EXIT_OK
    assert second.stdout.strip() == "no site is due"


def test_certdrop_run_exit_code_names_the_failure(config, tmp_path):
    (tmp_path / "tsig").write_text("AAAA" + (tmp_path / "tsig").read_text()[4:])
    run = [
        sys.executable,
        "-m",
        "cloud.cli",
        "-c",
        str(config.source),
        "run",
        "--site",
        "example",
    ]

    done = subprocess.run(
        run, capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )  # fmt: skip

    assert done.returncode == EXIT_DNS
    assert "failed" in done.stdout
    assert (
        json.loads((tmp_path / "store" / "state" / "sites" / "example.json").read_text())[
            "failures"
        ]
        == 1
    )
