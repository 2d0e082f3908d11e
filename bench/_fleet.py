"""A fleet for bench/compare_peers: N sites sNNN.example.test (apex + wildcard each) on the BIND
zone example.test, issued by one `certdrop run --force --concurrency C` process.

Each concurrency gets a fresh store, so every site is really ordered; the keys directory (ACME
account and issuer keys) is shared and prepared beforehand, so no run pays for registration.
Besides the wall time, a run records the CPU time of the certdrop process (its rusage: start-up
included) and of the services it drove (Pebble, BIND: from /proc), to say per certificate what
each costs and which of them would run out of CPU first.
"""

from __future__ import annotations

import re
import resource
import subprocess
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.issuer_config import rfc2136_provider

_OUTCOME = re.compile(r"^\S+\s+(issued|not due|failed|locked)\s+\S+\s+(.*)$")


@dataclass(frozen=True)
class FleetRun:
    concurrency: int
    sites: int
    seconds: float
    issued: int
    failures: Counter[str]  # result and reason of every site not issued, counted
    cpu_seconds: float = 0.0  # the certdrop process, user + system
    service_cpu: Mapping[str, float] = field(default_factory=dict)  # name -> CPU seconds

    @property
    def per_minute(self) -> float:
        return self.issued / (self.seconds / 60)

    def cpu_ms_per_cert(self, seconds: float | None = None) -> float:
        """CPU milliseconds per issued certificate: certdrop's, or `seconds` of a service's."""
        used = self.cpu_seconds if seconds is None else seconds
        return used * 1000 / self.issued if self.issued else float("inf")


def write_config(
    directory: Path, *, pebble, bind, keys_dir: Path, store: str, sites: int, ns: tuple[str, ...]
) -> Path:
    """certdrop.toml in `directory` for `sites` sites; `ns` are example.test's nameservers, all
    mapped to `bind` so the propagation check stays on loopback. Defaults elsewhere (timeouts)."""
    directory.mkdir(parents=True, exist_ok=True)
    nameservers = ", ".join(f'"{name}" = "{bind.address}"' for name in ns)
    provider = rfc2136_provider(bind.address, bind.tsig, directory / "tsig")
    head = f"""\
[ca]
directory = "{pebble.directory_url}"
ca_bundle = "{pebble.ca_bundle}"
terms_agreed = true
contact = "ops@example.test"

[storage]
url = "{store}"
keys_dir = "{keys_dir}"

[dns]
resolvers = ["{bind.address}"]
nameservers = {{ {nameservers} }}

[providers.bind]
{provider}
"""
    tables = "".join(
        f'\n[sites.s{i:03d}]\ndomain = "s{i:03d}.example.test"\nprovider = "bind"\n'
        for i in range(sites)
    )
    path = directory / "certdrop.toml"
    path.write_text(head + tables)
    return path


def run_fleet(
    certdrop: Path,
    config: Path,
    concurrency: int,
    sites: int,
    *,
    env: Mapping[str, str] | None = None,
    services: Mapping[str, Any] = {},
) -> FleetRun:
    """Times one `certdrop run --force` over every site; the output is kept beside the config.
    `services` (name -> a lab Service) are charged the CPU they used meanwhile."""
    argv = [str(certdrop), "--config", str(config), "run", "--force"]
    log = config.with_name(f"run-c{concurrency}.log")
    with open(log, "w") as err:
        before = {name: service.cpu_seconds() for name, service in services.items()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        process = subprocess.run(
            [*argv, f"--concurrency={concurrency}"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=None if env is None else dict(env),
            check=False,
        )
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        service_cpu = {name: s.cpu_seconds() - before[name] for name, s in services.items()}
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    results = [m.groups() for m in map(_OUTCOME.match, process.stdout.splitlines()) if m]
    issued = sum(1 for result, _ in results if result == "issued")
    failures = Counter(f"{result}: {reason}" for result, reason in results if result != "issued")
    if len(results) != sites:
        failures[f"process exit {process.returncode}, {len(results)} outcomes (see {log})"] += 1
    return FleetRun(concurrency, sites, seconds, issued, failures, cpu, service_cpu)
