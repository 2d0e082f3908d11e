"""Runs under the CA's limits, against real Pebble and BIND: a site's run takes its tokens before
ordering and, without one, orders nothing and is looked at again when it fits; `certdrop run`
runs what fits now and says when the others go."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.cli.exit_codes import EXIT_OK
from cloud.fleet.status import collect
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.schedule import read_markers
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from lab.issuer_config import bind_config

REPO = Path(__file__).resolve().parents[2]
# One new order per 3 hours; the second site's order never reaches DNS, so any name will do.
ONE_ORDER = "limits = { new_orders = { count = 1, hours = 3 } }"
TWO_SITES = 'domain = "example.test"\n\n[sites.other]\nprovider = "dns"\ndomain = "other.test"'


@pytest.fixture
def config(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth, ca_extra=ONE_ORDER, site=TWO_SITES)
    init_issuer(parts.keystore(config))
    return config


def _runner(config):
    return Runner(config, parts.store(config), parts.keystore(config), parts.publisher(config))


def test_a_run_without_a_token_orders_nothing_and_is_looked_at_when_one_is_back(config, orders):
    before = datetime.now(UTC)
    first = _runner(config).run_site("example")
    second = _runner(config).run_site("other")

    assert first.result == "issued"
    assert second.result == "waiting"
    assert second.error.code == "limits.waiting"
    assert second.error.held_by == ("new orders per account",)
    assert len(orders) == 1
    store = parts.store(config)
    state = load_site_state(store, "other")
    assert state is None or (state.failures == 0 and state.order_url is None)  # not a failure
    go = read_markers(store)["other"].next_check  # when the token spent on "example" is back
    assert before + timedelta(hours=3) - timedelta(seconds=1) <= go
    assert go <= datetime.now(UTC) + timedelta(hours=3)
    shown = collect(config, store, datetime.now(UTC)).site("other")
    assert shown.waiting_for == ("new orders per account",)
    assert abs((shown.next_check - go).total_seconds()) < 1


def test_a_forced_issue_is_counted_but_never_held_back(config, orders):
    _runner(config).run_site("example")

    forced = _runner(config).run_site("other", force=True)

    assert forced.result in ("issued", "failed")  # ordered: other.test has no DNS here
    assert len(orders) == 2


def test_certdrop_run_runs_what_fits_and_says_when_the_others_go(config):
    run = [sys.executable, "-m", "cloud.cli", "-c", str(config.source), "run"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    done = subprocess.run(run, capture_output=True, text=True, cwd=REPO, env=env, check=False)

    assert done.returncode == EXIT_OK, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("example  issued") for line in lines), done.stdout
    waiting = [line for line in lines if line.startswith("other  waiting  from ")]
    assert waiting, done.stdout
    assert waiting[0].endswith("waiting for the CA's limits (new orders per account)")
