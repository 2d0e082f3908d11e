"""certdrop next to its floor, lego and certbot: one wildcard issuance each, and fleet throughput.

Against one Pebble (PEBBLE_VA_NOSLEEP=1, authorization reuse 0 %, nonce rejection 0 %: the
launcher's settings) validating through one BIND (authoritative for example.test with two NS
names, RFC 2136 updates with TSIG):

- the median, min and max of N issuances of example.test + *.example.test, each one whole
  process: `certdrop issue` (its ACME account registered beforehand, as in production) by
  DNS-01 and by DNS-PERSIST-01 (its record placed once beforehand, as its owner would: no TXT
  write, no propagation wait, the record read at both nameservers), the floor (bench/_floor.py:
  the interpreter, the imports an issuance needs and the ACME and DNS round trips, nothing a
  certdrop change could remove), Debian's `lego` (rfc2136 provider) and `certbot` with
  `certbot-dns-rfc2136`, both with their defaults and a fresh directory per run (so each run
  registers an account: one request). certdrop and the floor run alternately, so both see the
  same load;
- start-up: the bare interpreter, `import cloud.cli.main` and `certdrop --help`;
- one `certdrop run --force` over N sites at concurrency 1, 4, 16 (a fresh store each time, the
  account and issuer keys shared): certificates per minute, and the CPU each certificate cost
  certdrop, Pebble and BIND, which says which of them runs out of CPU first;
- every figure beside its goal (issue 16), and certdrop's against lego's and certbot's.

Python processes run with bytecode caching on (in a temporary PYTHONPYCACHEPREFIX, whatever
PYTHONDONTWRITEBYTECODE says here), as an installed certdrop runs: compiling every module on
every run is not what a user pays.

Missing peers are installed with apt-get, as `make debs` does (or it stops naming the command).
The whole benchmark re-executes itself in a network namespace holding only loopback when
`unshare --net` works, and the peers run under strace, whose record of every address they tried
is printed: nothing but 127.0.0.1 may appear. lego and certbot each wait about 60 s per run.

    .venv/bin/python bench/compare_peers.py [--runs 5] [--peer-runs N] [--sites 50] [--skip-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _floor, _peers
from bench._fleet import FleetRun, run_fleet, write_config
from bench._loopback import enter_loopback_namespace, outside_loopback, tracing_available
from lab.bind import BindServer, TsigKey, Zone
from lab.issuer_config import bind_config
from lab.pebble import Pebble

CONCURRENCY = (1, 4, 16)
_NAMESERVERS = ("ns1", "ns2")
# Issue 16's goals.
GOAL_FLOOR_RATIO = 1.25  # `certdrop issue` / the floor
GOAL_HELP_RATIO = 2.6  # `certdrop --help` / the bare interpreter
GOAL_CPU_MS = 15.0  # certdrop's CPU per certificate in a fleet run
_FLOOR_IMPORTS = "import acme.client, dns.query, dns.update, cryptography.x509"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="issuances per tool (default 5)")
    parser.add_argument("--peer-runs", type=int, help="issuances by lego and certbot (--runs)")
    parser.add_argument("--sites", type=int, default=50, help="fleet size (default 50)")
    parser.add_argument("--skip-peers", action="store_true", help="certdrop only")
    args = parser.parse_args()
    peer_runs = args.runs if args.peer_runs is None else args.peer_runs
    if min(args.runs, peer_runs, args.sites) < 1:
        parser.error("--runs, --peer-runs and --sites must be at least 1")
    if not args.skip_peers:
        _peers.install_missing()
    network = enter_loopback_namespace()
    began = time.monotonic()
    certdrop = Path(sys.executable).with_name("certdrop")

    with tempfile.TemporaryDirectory(prefix="certdrop-peers-") as tmp:
        work = Path(tmp)
        env = _child_env(work)
        tsig = TsigKey.generate("bench-key")
        zone = Zone("example.test.", nameservers=_NAMESERVERS)
        with (
            BindServer(work / "bind", [zone], tsig) as bind,
            Pebble(work / "pebble", bind.address) as pebble,
        ):
            (work / "single").mkdir()
            single = bind_config(work / "single", pebble, bind)
            issue = [str(certdrop), "--config", str(single.source), "issue", "example"]
            floor = [
                sys.executable,
                str(Path(_floor.__file__)),
                str(_floor_state(work, pebble, bind, tsig)),
            ]
            runs = work / "runs"
            _certdrop_issue(issue, runs / "certdrop-warmup", env)  # registers the account
            _timed(floor, env)  # its bytecode, as certdrop's warm-up made certdrop's
            certdrop_runs, floor_runs = [], []
            for i in range(args.runs):  # alternately: both see the same load
                certdrop_runs.append(_certdrop_issue(issue, runs / f"cd-{i}", env))
                floor_runs.append(_timed(floor, env))
            startup = _startup(certdrop, env, 3 * args.runs)
            fleet_floor = _fleet_floor(floor, env)
            persist = _persist_issue(certdrop, work / "persist", pebble, bind, env)
            persist_runs = [
                _certdrop_issue(persist, runs / f"cdp-{i}", env) for i in range(args.runs)
            ]
            timings = {
                "certdrop": certdrop_runs,
                "certdrop dns-persist-01": persist_runs,
                "floor (bench/_floor.py)": floor_runs,
            }
            contacted: dict[str, set[str]] = {}
            if not args.skip_peers:
                target = _peers.Target(
                    pebble.directory_url, pebble.ca_bundle, bind.address, tsig.name, tsig.secret
                )
                for tool, run in (("lego", _peers.lego), ("certbot", _peers.certbot)):
                    timings[tool], contacted[tool] = _repeat(
                        lambda i, run=run, tool=tool: run(target, runs / f"{tool}-{i}"),
                        peer_runs,
                    )
            services = {"Pebble": pebble, "BIND": bind}
            fleet = _fleet(
                certdrop, work, pebble, bind, single.storage.keys_dir, args.sites, env, services
            )

    print(_report(args.runs, timings, contacted, startup, fleet, fleet_floor, network))
    print(f"(benchmark took {(time.monotonic() - began) / 60:.1f} min)")


def _child_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def _floor_state(work: Path, pebble, bind, tsig) -> Path:
    return _floor.register(
        work / "floor", pebble.directory_url, pebble.ca_bundle, bind.address, tsig
    )


def _timed(command: list[str], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=dict(env))
    return time.perf_counter() - start


def _certdrop_issue(command: list[str], out: Path, env: Mapping[str, str]) -> float:
    seconds = _timed([*command, "--out", str(out)], env)
    names = _peers.certificate_names(out / "cert.pem")
    if names != tuple(sorted(_peers.NAMES)):
        raise RuntimeError(f"certdrop issued a certificate for {names}")
    return seconds


def _startup(certdrop: Path, env: Mapping[str, str], runs: int) -> dict[str, float]:
    """Median seconds of the bare interpreter, of importing the CLI, of `certdrop --help`, and of
    importing what an issuance needs (the floor's imports)."""
    python = sys.executable
    commands = {
        "bare interpreter": [python, "-c", "pass"],
        "import cloud.cli.main": [python, "-c", "import cloud.cli.main"],
        "certdrop --help": [str(certdrop), "--help"],
        "floor imports": [python, "-c", _FLOOR_IMPORTS],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, like the issuances
        for name, command in commands.items():
            seconds[name].append(_timed(command, env))
    return {name: statistics.median(values) for name, values in seconds.items()}


def _fleet_floor(floor: list[str], env: Mapping[str, str], count: int = 20) -> float:
    """The floor's CPU milliseconds per certificate over `count` issuances on one session."""
    printed = subprocess.run(
        [*floor, "--fleet", str(count)], check=True, capture_output=True, text=True, env=dict(env)
    ).stdout
    return float(json.loads(printed)["cpu_ms_per_certificate"])


def _persist_issue(
    certdrop: Path, directory: Path, pebble, bind, env: Mapping[str, str]
) -> list[str]:
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
        env=dict(env),
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


def _fleet(
    certdrop: Path,
    work: Path,
    pebble,
    bind,
    keys_dir: Path,
    sites: int,
    env: Mapping[str, str],
    services: Mapping[str, object],
) -> list[FleetRun]:
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
            subprocess.run(init, check=True, capture_output=True, env=dict(env))
        runs.append(run_fleet(certdrop, config, concurrency, sites, env=env, services=services))
    return runs


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _report(
    runs: int,
    timings: dict[str, list[float]],
    contacted: dict[str, set[str]],
    startup: dict[str, float],
    fleet: list[FleetRun],
    fleet_floor: float,
    network: str,
) -> str:
    base = statistics.median(timings["certdrop"])
    floor = statistics.median(timings["floor (bench/_floor.py)"])
    lines = [
        "wildcard issuance (example.test + *.example.test), Pebble no-sleep + BIND RFC2136, "
        f"median of {runs} (peers: of {len(timings.get('lego', [])) or '-'}), whole processes",
        "(Pebble: PEBBLE_VA_NOSLEEP=1, authorization reuse 0 %, nonce rejection 0 %)",
        f"{'tool':<26}{'median':>10}{'min':>10}{'max':>10}{'vs certdrop':>14}",
    ]
    for tool, seconds in timings.items():
        median = statistics.median(seconds)
        ratio = "" if tool == "certdrop" else f"{median / base:.{2 if median < 10 * base else 0}f}x"
        lines.append(
            f"{tool:<26}{median:>8.2f} s{min(seconds):>8.2f} s{max(seconds):>8.2f} s{ratio:>14}"
        )
    bare, imports = startup["bare interpreter"], startup["floor imports"]
    lines += [
        f"the floor: interpreter {bare * 1000:.0f} ms + imports (acme.client, dns.query,"
        f" dns.update, cryptography) {(imports - bare) * 1000:.0f} ms + ACME and DNS round trips"
        f" {(floor - imports) * 1000:.0f} ms",
        network,
    ]
    for tool, addresses in contacted.items():
        if not tracing_available():
            lines.append(f"{tool}: not traced (strace not installed)")
            continue
        outside = ", ".join(sorted(outside_loopback(addresses))) or "none"
        lines.append(f"{tool} tried {', '.join(sorted(addresses))}; outside loopback: {outside}")
    lines.append(
        "start-up, median: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in startup.items())
    )
    sites = fleet[0].sites
    lines += [
        f"fleet: {sites} sites (apex + wildcard each), `certdrop run --force`, one process each;"
        " CPU per certificate (certdrop's includes its start-up)",
        f"{'concurrency':<13}{'wall':>8}{'certs/min':>11}{'certdrop CPU':>14}"
        f"{'Pebble CPU':>12}{'BIND CPU':>10}  failures",
    ]
    for run in fleet:
        failed = "; ".join(f"{n}x {what}" for what, n in run.failures.most_common()) or "none"
        pebble = run.cpu_ms_per_cert(run.service_cpu.get("Pebble", 0.0))
        bind = run.cpu_ms_per_cert(run.service_cpu.get("BIND", 0.0))
        lines.append(
            f"{run.concurrency:<13}{run.seconds:>6.1f} s{run.per_minute:>11.0f}"
            f"{run.cpu_ms_per_cert():>11.1f} ms{pebble:>9.1f} ms{bind:>7.1f} ms  {failed}"
        )
    lines.append(
        f"the fleet's floor: {fleet_floor:.1f} ms CPU per certificate (bench/_floor.py --fleet:"
        " the acme library, requests and dnspython issuing one after another on one session,"
        " no start-up, state or checks)"
    )
    lines += _limits(fleet)
    lines += _goals(timings, startup, fleet, fleet_floor)
    return "\n".join(lines)


def _limits(fleet: list[FleetRun]) -> list[str]:
    """Where the CPU runs out: with these costs per certificate on this machine's cores, the
    fleet's ceiling, and what certdrop's share would have to be before Pebble is the limit."""
    run = next((r for r in fleet if r.concurrency == 4), fleet[-1])
    cores = os.cpu_count() or 1
    certdrop = run.cpu_ms_per_cert()
    pebble = run.cpu_ms_per_cert(run.service_cpu.get("Pebble", 0.0))
    bind = run.cpu_ms_per_cert(run.service_cpu.get("BIND", 0.0))
    total = certdrop + pebble + bind
    return [
        f"CPU limits at concurrency {run.concurrency} on {cores} core(s): certdrop + Pebble +"
        f" BIND {total:.1f} ms per certificate -> at most {cores * 60_000 / total:,.0f}"
        f" certificates/min; Pebble alone ({pebble:.1f} ms) would allow"
        f" {cores * 60_000 / pebble:,.0f}/min with the cores to itself. Pebble becomes the"
        f" limit once certdrop spends less CPU per certificate than Pebble does ({pebble:.1f} ms;"
        f" certdrop now {certdrop:.1f} ms)",
    ]


def _goals(
    timings: dict[str, list[float]],
    startup: dict[str, float],
    fleet: list[FleetRun],
    fleet_floor: float,
) -> list[str]:
    issue = statistics.median(timings["certdrop"])
    floor = statistics.median(timings["floor (bench/_floor.py)"])
    helped = startup["certdrop --help"] / startup["bare interpreter"]
    run = next((r for r in fleet if r.concurrency == 4), fleet[-1])
    lines = [
        "goals (issue 16):",
        f"  certdrop issue {issue:.2f} s = {issue / floor:.2f} x its floor {floor:.2f} s"
        f"  (goal <= {GOAL_FLOOR_RATIO} x): {_verdict(issue / floor <= GOAL_FLOOR_RATIO)}",
        f"  certdrop --help {startup['certdrop --help'] * 1000:.0f} ms = {helped:.2f} x the bare"
        f" interpreter {startup['bare interpreter'] * 1000:.0f} ms  (goal <= {GOAL_HELP_RATIO} x):"
        f" {_verdict(helped <= GOAL_HELP_RATIO)}",
        f"  fleet, {run.sites} sites at concurrency {run.concurrency}: {run.per_minute:,.0f}"
        f" certs/min, certdrop {run.cpu_ms_per_cert():.1f} ms CPU per certificate"
        f"  (goal <= {GOAL_CPU_MS:g} ms): {_verdict(run.cpu_ms_per_cert() <= GOAL_CPU_MS)};"
        f" {run.cpu_ms_per_cert() / fleet_floor:.1f} x the fleet's floor of {fleet_floor:.1f} ms",
    ]
    for tool in ("lego", "certbot"):
        if tool in timings:
            peer = statistics.median(timings[tool])
            lines.append(
                f"  vs {tool}: an issuance {peer / issue:.0f} x faster; the fleet"
                f" {run.per_minute / (60 / peer):,.0f} x the certificates per minute of {tool}"
                " issuing one after another"
            )
    return lines


if __name__ == "__main__":
    main()
