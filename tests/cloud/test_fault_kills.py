"""The issuer SIGKILLed at its Nth store write of a renewal, for every N (deterministic), then left
to the next runs: never a second order for one certificate, never a certificate thrown away,
never a TXT value left, never one version with two certificates, every agent holding the current
certificate — against real Pebble and BIND, the kill a real SIGKILL of a real `certdrop`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.pipeline import parts
from cloud.pipeline.site_state import load_site_state
from cloud.store import StoredObject
from lab.issuer_config import bind_config
from nas_agent import store_layout
from nas_agent.bundle import parse_index
from tests.cloud.issuing import enroll_agents, txt_values

REPO = Path(__file__).resolve().parents[2]
AGENTS = ("nas-a", "nas-b")

# `certdrop` with the local store's writes counted; at the Nth the process SIGKILLs itself. The
# count of writes goes to stdout's last line when nobody was killed.
_DRIVER = """
import atexit, os, signal, sys
from cloud.store.local import LocalStore
kill_at, writes = int(sys.argv[1]), [0]
original = LocalStore.put
def put(self, *args, **kwargs):
    writes[0] += 1
    if writes[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args, **kwargs)
LocalStore.put = put
atexit.register(lambda: print(f"store writes: {writes[0]}"))
from cloud.cli.main import main
code = main(sys.argv[2:])
sys.stdout.flush()
sys.exit(code)
"""


def _certdrop(config, kill_at: int, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", _DRIVER, str(kill_at), "-c", str(config.source), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def fleet(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    store, _, _ = enroll_agents(config, AGENTS)
    first = _certdrop(config, 0, "run", "--site", "example")
    assert first.returncode == 0, first.stderr
    return config, store


def _entries(store) -> dict[str, tuple[int, str]]:
    found = {}
    for agent_id in AGENTS:
        index = store.get(store_layout.agent_index(agent_id))
        assert isinstance(index, StoredObject)
        entry = parse_index(index.body).entry("example")
        found[agent_id] = (entry.version, entry.cert_sha256)
    return found


def test_a_renewal_killed_at_any_store_write_is_finished_with_nothing_lost_or_doubled(
    fleet, pebble, bind_auth
):
    config, store = fleet
    clean = _certdrop(config, 0, "run", "--site", "example", "--force")
    assert clean.returncode == 0, clean.stderr
    writes = int(clean.stdout.strip().splitlines()[-1].removeprefix("store writes: "))
    assert writes >= 8  # lock, order, journal, version, escrow, pending, agents…, state, schedule
    seen: dict[int, str] = {}

    for kill_at in range(1, writes + 1):
        state = load_site_state(store, "example")
        before = (state.current.version, len(pebble.order_ids()), len(pebble.issued_serials()))
        killed = _certdrop(config, kill_at, "run", "--site", "example", "--force")
        assert killed.returncode == -9, f"write {kill_at}: {killed.stdout}{killed.stderr}"
        # What an operator does: break the dead run's lock, let the next run finish.
        assert _certdrop(config, 0, "unlock", "example", "--yes").returncode == 0
        healed = _certdrop(config, 0, "run", "--site", "example")
        assert healed.returncode == 0, f"write {kill_at}: {healed.stdout}{healed.stderr}"

        state = load_site_state(store, "example")
        version, orders, issued = before
        # A version reserved by the killed run stays reserved: the next one may skip it.
        added = int(state.current.version != version)
        where = f"killed at store write {kill_at} of {writes}"
        assert state.current.version >= version, where
        assert len(pebble.order_ids()) - orders == added, f"{where}: an extra order"
        assert len(pebble.issued_serials()) - issued == added, f"{where}: a certificate lost"
        assert state.pending is None and state.order_url is None and not state.undelivered, where
        assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set(), where
        for agent_version, sha in _entries(store).values():
            assert seen.setdefault(agent_version, sha) == sha, f"{where}: one version, two certs"
            assert (agent_version, sha) == (state.current.version, state.current.cert_sha256)


def test_the_counters_catch_a_planted_duplicate_order_and_a_planted_txt_value(
    fleet, pebble, bind_auth
):
    """The zeros above could pass by counting nothing: each counter is shown to count."""
    from cloud.acme.certificate_keys import KeyType, generate_key, make_csr, pkcs8_pem
    from cloud.acme.client import AcmeClient
    from cloud.dns01.providers.base import TxtRecord

    config, _store = fleet
    orders = len(pebble.order_ids())
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()
    csr = make_csr(pkcs8_pem(generate_key(KeyType.EC_P256)), ("example.test",))
    acme.new_order(csr, None)
    provider = parts.provider(config, "dns")
    planted = TxtRecord("example.test.", "_acme-challenge.example.test.", "planted-value")
    provider.add_txt(planted)
    try:
        assert len(pebble.order_ids()) == orders + 1
        assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == {"planted-value"}
    finally:
        provider.remove_txt(planted)
