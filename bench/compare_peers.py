"""certdrop next to lego and certbot: one wildcard issuance each, and certdrop's fleet throughput.

Against one Pebble (PEBBLE_VA_NOSLEEP=1, authorization reuse 0 %, nonce rejection 0 %: the
launcher's settings) validating through one BIND (authoritative for example.test with two NS
names, RFC 2136 updates with TSIG):

- the median, min and max of N issuances of example.test + *.example.test, each one whole
  process: `certdrop issue` (its ACME account registered beforehand, as in production) by
  DNS-01 and by DNS-PERSIST-01 (its record placed once beforehand, as its owner would: no TXT
  write, no propagation wait, the record read at both nameservers), Debian's `lego` (rfc2136
  provider) and `certbot` with `certbot-dns-rfc2136`, both with their defaults and a fresh
  directory per run (so each run registers an account: one request);
- certificates per minute of one `certdrop run --force` over 200 sites at concurrency 1, 4, 16
  (a fresh store each time, the account and issuer keys shared).

Missing peers are installed with apt-get, as `make debs` does (or it stops naming the command).
The whole benchmark re-executes itself in a network namespace holding only loopback when
`unshare --net` works, and the peers run under strace, whose record of every address they tried
is printed: nothing but 127.0.0.1 may appear. With the defaults it takes about 11.5 minutes.

    .venv/bin/python bench/compare_peers.py [--runs 5] [--sites 200] [--skip-peers]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _peers
from bench._fleet import FleetRun, run_fleet, write_config
from bench._loopback import enter_loopback_namespace, outside_loopback, tracing_available
from lab.bind import BindServer, TsigKey, Zone
from lab.issuer_config import bind_config
from lab.pebble import Pebble

CONCURRENCY = (1, 4, 16)
_NAMESERVERS = ("ns1", "ns2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="issuances per tool (default 5)")
    parser.add_argument("--sites", type=int, default=200, help="fleet size (default 200)")
    parser.add_argument("--skip-peers", action="store_true", help="certdrop only")
    args = parser.parse_args()
    if args.runs < 1 or args.sites < 1:
        parser.error("--runs and --sites must be at least 1")
    if not args.skip_peers:
        _peers.install_missing()
    network = enter_loopback_namespace()
    began = time.monotonic()
    certdrop = Path(sys.executable).with_name("certdrop")

    with tempfile.TemporaryDirectory(prefix="certdrop-peers-") as tmp:
        work = Path(tmp)
        tsig = TsigKey.generate("bench-key")
        zone = Zone("example.test.", nameservers=_NAMESERVERS)
        with (
            BindServer(work / "bind", [zone], tsig) as bind,
            Pebble(work / "pebble", bind.address) as pebble,
        ):
            (work / "single").mkdir()
            single = bind_config(work / "single", pebble, bind)
            issue = [str(certdrop), "--config", str(single.source), "issue", "example"]
            runs = work / "runs"
            _certdrop_issue(issue, runs / "certdrop-warmup")  # registers the account
            certdrop_runs = [_certdrop_issue(issue, runs / f"cd-{i}") for i in range(args.runs)]
            persist = _persist_issue(certdrop, work / "persist", pebble, bind)
            persist_runs = [_certdrop_issue(persist, runs / f"cdp-{i}") for i in range(args.runs)]
            timings = {"certdrop": certdrop_runs, "certdrop dns-persist-01": persist_runs}
            contacted: dict[str, set[str]] = {}
            if not args.skip_peers:
                target = _peers.Target(
                    pebble.directory_url, pebble.ca_bundle, bind.address, tsig.name, tsig.secret
                )
                for tool, run in (("lego", _peers.lego), ("certbot", _peers.certbot)):
                    timings[tool], contacted[tool] = _repeat(
                        lambda i, run=run, tool=tool: run(target, runs / f"{tool}-{i}"),
                        args.runs,
                    )
            fleet = _fleet(certdrop, work, pebble, bind, single.storage.keys_dir, args.sites)

    print(_report(args.runs, timings, contacted, fleet, network))
    print(f"(benchmark took {(time.monotonic() - began) / 60:.1f} min)")


def _certdrop_issue(command: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    names = _peers.certificate_names(out / "cert.pem")
    if names != tuple(sorted(_peers.NAMES)):
        raise RuntimeError(f"certdrop issued a certificate for {names}")
    return seconds


def _persist_issue(certdrop: Path, directory: Path, pebble, bind) -> list[str]:
    """The `certdrop issue` command of a DNS-PERSIST-01 site for example.test, after its record
    is placed once: printed by `certdrop site persist-record` (which registers the account),
    added to BIND by an RFC 2136 update as the zone's owner would."""
    directory.mkdir()
    config = bind_config(directory, pebble, bind, persist=True).source
    printed = subprocess.run(
        [str(certdrop), "--config", str(config), "site", "persist-record", "example"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    bind.update_add("example.test.", next(x for x in printed.splitlines() if x.startswith("_")))
    return [str(certdrop), "--config", str(config), "issue", "example"]


def _repeat(run: Callable[[int], _peers.Run], runs: int) -> tuple[list[float], set[str]]:
    seconds, contacted = [], set()
    for i in range(runs):
        result = run(i)
        seconds.append(result.seconds)
        contacted |= result.contacted
    return seconds, contacted


def _fleet(certdrop: Path, work: Path, pebble, bind, keys_dir: Path, sites: int) -> list[FleetRun]:
    runs = []
    for concurrency in CONCURRENCY:
        config = write_config(
            work / f"fleet-c{concurrency}",
            pebble=pebble,
            bind=bind,
            keys_dir=keys_dir,
            store="store",
            sites=sites,
            ns=tuple(f"{ns}.example.test" for ns in _NAMESERVERS),
        )
        if not runs:  # the issuer keys, which `run` needs to publish; once, in the shared dir
            init = [str(certdrop), "--config", str(config), "init"]
            subprocess.run(init, check=True, capture_output=True)
        runs.append(run_fleet(certdrop, config, concurrency, sites))
    return runs


def _report(
    runs: int,
    timings: dict[str, list[float]],
    contacted: dict[str, set[str]],
    fleet: list[FleetRun],
    network: str,
) -> str:
    base = statistics.median(timings["certdrop"])
    lines = [
        "wildcard issuance (example.test + *.example.test), Pebble no-sleep + BIND RFC2136, "
        f"median of {runs}, whole processes",
        "(Pebble: PEBBLE_VA_NOSLEEP=1, authorization reuse 0 %, nonce rejection 0 %)",
        f"{'tool':<24}{'median':>10}{'min':>10}{'max':>10}{'vs certdrop':>14}",
    ]
    for tool, seconds in timings.items():
        median = statistics.median(seconds)
        ratio = "" if tool == "certdrop" else f"{median / base:.{2 if median < 10 * base else 0}f}x"
        lines.append(
            f"{tool:<24}{median:>8.2f} s{min(seconds):>8.2f} s{max(seconds):>8.2f} s{ratio:>14}"
        )
    lines.append(network)
    for tool, addresses in contacted.items():
        if not tracing_available():
            lines.append(f"{tool}: not traced (strace not installed)")
            continue
        outside = ", ".join(sorted(outside_loopback(addresses))) or "none"
        lines.append(f"{tool} tried {', '.join(sorted(addresses))}; outside loopback: {outside}")
    sites = fleet[0].sites
    lines += [
        f"fleet: {sites} sites (apex + wildcard each), `certdrop run --force`, one process each",
        f"{'concurrency':<13}{'wall':>9}{'certs/min':>11}  failures",
    ]
    for run in fleet:
        failed = "; ".join(f"{n}x {what}" for what, n in run.failures.most_common()) or "none"
        lines.append(f"{run.concurrency:<13}{run.seconds:>7.1f} s{run.per_minute:>11.0f}  {failed}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
