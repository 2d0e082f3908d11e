"""The fault campaign: the fault suite's scenarios in a bounded, seeded loop against real Pebble
and BIND, with the goal's zeros counted per fault (DESIGN §9).

Each iteration renews one site under one fault, then lets healthy runs converge, and counts:
- faults fired (the injected failure really happened),
- agents without a valid current certificate (their signed index entry must name the site's
  current version and certificate, unexpired),
- TXT values left at _acme-challenge (asked of BIND directly),
- extra orders (Pebble's log: orders beyond one per certificate that became current),
- discarded certificates (Pebble issued them; none became a version),
- whether the state told the truth (no pending piece left, every agent holding the current one).

    .venv/bin/python bench/fault_campaign.py [--runs 25] [--seed 7]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.message
import dns.query
import dns.rdatatype

from cloud.dns01.providers.rfc2136 import Rfc2136Provider
from cloud.errors import DnsProviderError, StoreError
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.pipeline.site_state import load_site_state
from cloud.store import StoredObject
from lab.bind import BindServer, TsigKey, Zone
from lab.faults import FailingStore
from lab.issuer_config import bind_config
from lab.pebble import Pebble
from nas_agent import store_layout
from nas_agent.bundle import parse_index
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys

AGENTS = ("nas-a", "nas-b")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    runs: int = 0
    fired: int = 0
    no_valid_cert: int = 0
    txt_left: int = 0
    extra_orders: int = 0
    discarded: int = 0
    untruthful: int = 0


class Campaign:
    def __init__(self, work: Path, pebble: Pebble, bind: BindServer, rng: random.Random):
        self.pebble = pebble
        self.bind = bind
        self.rng = rng
        work.mkdir(parents=True, exist_ok=True)
        self.config = bind_config(work, pebble, bind)
        init_issuer(parts.keystore(self.config))
        self.store = parts.store(self.config)
        publisher = parts.publisher(self.config, self.store)
        for agent_id in AGENTS:
            record = enrollment_of(generate_agent_keys(agent_id))
            publisher.registry.add(record, ("example",), datetime.now(UTC))
        self.hours = 0  # each run moves the clock on, past the backoff of a failure
        self._run(self.store, force=True)

    def _run(self, store, *, force: bool = False):
        self.hours += 1  # past the first backoffs (5 to 20 minutes)
        later = datetime.now(UTC) + timedelta(hours=self.hours)
        runner = Runner(
            self.config,
            store,
            parts.keystore(self.config),
            parts.publisher(self.config, store),
            now=lambda: later,
        )
        return runner.run_site("example", force=force)

    def iteration(self, tally: Tally, fault: Callable[[], bool]) -> None:
        orders = len(self.pebble.order_ids())
        issued = len(self.pebble.issued_serials())
        before = self._current_version()
        tally.runs += 1
        tally.fired += fault()
        for _ in range(4):  # healthy runs converge
            state = load_site_state(self.store, "example")
            done = state and state.pending is None and not state.undelivered
            if done and not state.order_url and not state.leftover_txt:
                break
            self._run(self.store)
        after = self._current_version()
        new_versions = (after or 0) - (before or 0)
        tally.extra_orders += max(len(self.pebble.order_ids()) - orders - new_versions, 0)
        tally.discarded += max(len(self.pebble.issued_serials()) - issued - new_versions, 0)
        tally.txt_left += len(self._txt_values())
        tally.no_valid_cert += self._agents_without_current()
        state = load_site_state(self.store, "example")
        truthful = (
            state is not None
            and state.pending is None
            and not state.undelivered
            and len(state.leftover_txt) == len(self._txt_values())
        )
        tally.untruthful += not (truthful and self._agents_without_current() == 0)

    # The faults: each renews the site once while one thing goes wrong; True when it fired.
    def store_fails_at_a_write(self) -> bool:
        writes = {"n": 0}
        nth = self.rng.randint(1, 12)

        def fail(_key: str, _body: bytes) -> bool:
            writes["n"] += 1
            return writes["n"] == nth

        flaky = FailingStore(self.store, fail, lambda key: StoreError(key, "injected"))
        self._run(flaky, force=True)
        return bool(flaky.failed)

    def one_agent_unwritable(self) -> bool:
        down = self.rng.choice(AGENTS)
        flaky = FailingStore(
            self.store,
            lambda key, _body: key.startswith(store_layout.agent_prefix(down)),
            lambda key: StoreError(key, "injected"),
        )
        self._run(flaky, force=True)
        return bool(flaky.failed)

    def killed_at_a_random_moment(self) -> bool:
        command = [sys.executable, "-m", "cloud.cli", "-c", str(self.config.source), "run"]
        process = subprocess.Popen(
            [*command, "--force", "--site", "example"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        time.sleep(self.rng.uniform(0.05, 0.6))
        fired = process.poll() is None
        if fired:
            process.send_signal(signal.SIGKILL)
        process.wait()
        self._break_dead_lock()
        return fired

    def dns_api_down_at_cleanup(self) -> bool:
        """The DNS API fails every removal of this run (issued; values stay until a run heals)."""
        original = Rfc2136Provider.remove_txts  # remove_txt goes through it too
        fired = {"n": 0}

        def down(provider, records):
            fired["n"] += 1
            raise DnsProviderError("rfc2136", records[0].fqdn, "injected: DNS API down")

        Rfc2136Provider.remove_txts = down
        try:
            self._run(self.store, force=True)
        finally:
            Rfc2136Provider.remove_txts = original
        return fired["n"] > 0

    def _break_dead_lock(self) -> None:
        from cloud.pipeline.lock import break_lock, read_holder

        holder = read_holder(self.store, "example")
        if holder is not None and holder.dead():
            break_lock(self.store, "example", holder)

    def _current_version(self) -> int | None:
        state = load_site_state(self.store, "example")
        return state.current.version if state and state.current else None

    def _agents_without_current(self) -> int:
        state = load_site_state(self.store, "example")
        missing = 0
        for agent_id in AGENTS:
            found = self.store.get(store_layout.agent_index(agent_id))
            if not isinstance(found, StoredObject) or state is None or state.current is None:
                missing += 1
                continue
            entry = parse_index(found.body).entry("example")
            current = state.current
            valid = current.not_after > datetime.now(UTC) + timedelta(hours=self.hours)
            if (entry.version, entry.cert_sha256) != (
                current.version,
                current.cert_sha256,
            ) or not valid:
                missing += 1
        return missing

    def _txt_values(self) -> set[str]:
        host, port = self.bind.address.rsplit(":", 1)
        query = dns.message.make_query("_acme-challenge.example.test.", dns.rdatatype.TXT)
        answer = dns.query.udp(query, host, port=int(port), timeout=2)
        return {r.to_text() for rrset in answer.answer for r in rrset}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="iterations per fault")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    rng = random.Random(args.seed)
    started = time.monotonic()
    results: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="certdrop-faults-") as tmp:
        work = Path(tmp)
        tsig = TsigKey.generate("faults-key")
        zones = [Zone("example.test.", nameservers=("ns1", "ns2"))]
        with BindServer(work / "bind", zones, tsig) as bind:
            for name, pebble_options in (
                ("store fails at a write", {}),
                ("one agent's prefix unwritable", {}),
                ("issuer SIGKILLed at a random moment", {}),
                ("CA rejects half the nonces", {"nonce_reject_percent": 50}),
                ("DNS API down during cleanup", {}),
            ):
                with Pebble(work / f"pebble-{len(results)}", bind.address, **pebble_options) as ca:
                    campaign = Campaign(work / f"site-{len(results)}", ca, bind, rng)
                    fault = {
                        "store fails at a write": campaign.store_fails_at_a_write,
                        "one agent's prefix unwritable": campaign.one_agent_unwritable,
                        "issuer SIGKILLed at a random moment": campaign.killed_at_a_random_moment,
                        "CA rejects half the nonces": lambda c=campaign: bool(
                            c._run(c.store, force=True)
                        ),
                        "DNS API down during cleanup": campaign.dns_api_down_at_cleanup,
                    }[name]
                    tally = Tally()
                    for _ in range(args.runs):
                        campaign.iteration(tally, fault)
                    results[name] = tally
    print(f"fault campaign: {args.runs} runs per fault, seed {args.seed}, "
          f"{time.monotonic() - started:.0f} s; goal: every count 0, status truthful")  # fmt: skip
    header = (
        f"{'fault':<38} {'runs':>4} {'fired':>5} {'no valid cert':>13} {'TXT left':>8} "
        f"{'extra orders':>12} {'discarded':>9} {'truthful':>8}"
    )
    print(header)
    for name, t in results.items():
        truthful = "yes" if t.untruthful == 0 else f"no ({t.untruthful})"
        print(
            f"{name:<38} {t.runs:>4} {t.fired:>5} {t.no_valid_cert:>13} {t.txt_left:>8} "
            f"{t.extra_orders:>12} {t.discarded:>9} {truthful:>8}"
        )


if __name__ == "__main__":
    main()
