"""Wall time of one wildcard issuance (example.test + *.example.test) against local Pebble + BIND.

Pebble runs with PEBBLE_VA_NOSLEEP=1 and no authorization reuse, so every run places both TXT
values, checks both authoritative nameservers, and waits for real validation. Prints the median
of N runs in-process (the pipeline, forced, as `certdrop issue` runs it) and through the CLI
(`certdrop issue`, a whole new process each time). The account is registered once before timing,
as in production.

    .venv/bin/python bench/issue_latency.py [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from lab.bind import BindServer, TsigKey, Zone
from lab.issuer_config import bind_config
from lab.pebble import Pebble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    certdrop = Path(sys.executable).with_name("certdrop")

    with tempfile.TemporaryDirectory(prefix="certdrop-bench-") as tmp:
        work = Path(tmp)
        tsig = TsigKey.generate("bench-key")
        zone = Zone("example.test.", nameservers=("ns1", "ns2"))
        with (
            BindServer(work / "bind", [zone], tsig) as bind,
            Pebble(work / "pebble", bind.address) as pebble,
        ):
            config = bind_config(work, pebble, bind)
            # No issuer keys: the pipeline issues and publishes nothing, like `certdrop issue`
            # before `certdrop init`.
            runner = Runner(config, parts.store(config), parts.keystore(config), None)
            start = time.perf_counter()
            runner.run_site("example", force=True)
            first = time.perf_counter() - start

            in_process = []
            for _ in range(args.runs):
                start = time.perf_counter()
                runner.run_site("example", force=True)
                in_process.append(time.perf_counter() - start)

            cli = []
            command = [str(certdrop), "--config", str(config.source), "issue", "example"]
            # Bytecode cached (outside the tree), as an installed certdrop runs.
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
            for i in range(-1, args.runs):  # the first, untimed, writes the bytecode
                start = time.perf_counter()
                subprocess.run(
                    [*command, "--out", str(work / f"out{i}")],
                    check=True,
                    capture_output=True,
                    env=env,
                )
                if i >= 0:
                    cli.append(time.perf_counter() - start)

    print(f"wildcard issuance, Pebble (no VA sleep) + BIND, 2 authoritative NS, {args.runs} runs")
    print(f"  first run (registers the account)  {first:6.3f} s")
    print(
        f"  in-process  median {statistics.median(in_process):6.3f} s   "
        f"min {min(in_process):.3f}  max {max(in_process):.3f}"
    )
    print(
        f"  CLI process median {statistics.median(cli):6.3f} s   "
        f"min {min(cli):.3f}  max {max(cli):.3f}"
    )


if __name__ == "__main__":
    main()
