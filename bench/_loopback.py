"""Keeping a benchmark on loopback: a network namespace with only `lo`, and a record of where
each traced child process tried to connect or send.

`enter_loopback_namespace()` re-executes the current script inside `unshare --net` with `lo` up,
so nothing run from it can reach beyond this machine whatever it attempts. `traced()` wraps a
command in `strace` (when installed) so the attempts show: `destinations()` reads the trace and
returns every address:port the process family connected or sent to.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_MARKER = "CERTDROP_BENCH_IN_NETNS"
_IPV4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_IPV6 = re.compile(r'sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"')


def enter_loopback_namespace() -> str:
    """Re-exec this script in a new network namespace holding only `lo` (never returns when that
    works). Returns a line saying where the benchmark runs, for the report."""
    if os.environ.get(_MARKER) == "1":
        return "network: own namespace with loopback only (unshare --net)"
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    probe = [unshare, "--net", "true"] if unshare else None
    if probe is None or subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        return "network: host namespace (unshare --net unavailable); peers traced with strace"
    script = f'{ip} link set lo up && exec "$@"'
    argv = [unshare, "--net", "--", "sh", "-c", script, "sh", sys.executable, *sys.argv]
    os.environ[_MARKER] = "1"
    sys.stdout.flush()
    os.execv(unshare, argv)
    raise AssertionError("unreachable")  # execv does not return


def traced(argv: Sequence[str], trace_log: Path) -> list[str]:
    """`argv` wrapped so every connect/sendto/sendmsg of it and its children is logged to
    `trace_log` (only those calls stop the process: seccomp-bpf); unchanged without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return list(argv)
    calls = ["-e", "trace=connect,sendto,sendmsg", "-e", "signal=none"]
    return [strace, "-f", "-qq", "--seccomp-bpf", *calls, "-o", str(trace_log), *argv]


def destinations(trace_log: Path) -> set[str]:
    """Every IPv4/IPv6 "address:port" in a trace written by `traced` (empty without one)."""
    if not trace_log.exists():
        return set()
    text = trace_log.read_text(errors="replace")
    found = {f"{host}:{port}" for port, host in _IPV4.findall(text)}
    found |= {f"[{host}]:{port}" for port, host in _IPV6.findall(text)}
    return found


def outside_loopback(addresses: set[str]) -> set[str]:
    """The addresses of `destinations()` that are not loopback."""
    return {a for a in addresses if not _is_loopback(a.rpartition(":")[0].strip("[]"))}


def _is_loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def tracing_available() -> bool:
    return shutil.which("strace") is not None
