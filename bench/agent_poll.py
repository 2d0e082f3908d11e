"""What one agent cycle costs: an idle poll (nothing new) and an install, as `certdrop-agent`
processes against a file:// source, an https:// server and S3 (moto's server), with the DSM
emulator.

Run it with the Python the agent runs on (DSM 7's is 3.8: `make bench` uses .venv38). Each agent
process is started as the DSM bundle's launcher starts it: `python -I -S`, the agent and its
dependencies on sys.path and nothing else (no site, no environment). Prints, per source and case:
requests made to the source, body bytes received, wall time of the whole process and its peak
RSS, median of N runs; the idle poll beside its goal.

The peak RSS is wait4's ru_maxrss, taken by a small trampoline process that forks the agent: Linux
counts in a child's ru_maxrss the pages it shared with its parent before exec, so an agent forked
straight from this benchmark (moto and boto3 loaded) would be charged the benchmark's memory.

    .venv38/bin/python bench/agent_poll.py [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path
from typing import Tuple  # noqa: UP035 (the benchmark runs on Python 3.8)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message="Python 3.8 is no longer supported")

from lab.agent_lab import AgentLab  # noqa: E402 (after the path is set)
from lab.https_store import HttpsStore  # noqa: E402
from lab.moto import MotoServer, fake_aws_env  # noqa: E402

GOAL_MS = 150
GOAL_MIB = 40
_COUNTS = re.compile(r"source: (\d+) request\(s\), (\d+) body byte\(s\)")
# The bundle's launcher (tools/build_agent_bundle.py), with this checkout and this Python's
# site-packages standing in for lib/.
_LAUNCHER = (
    "import sys, warnings\n"
    "sys.path[:0] = {paths!r}\n"
    "warnings.filterwarnings('ignore', message='Python 3.8 is no longer supported')\n"
    "from nas_agent.cli import main\n"
    "sys.exit(main())\n"
)

# This benchmark runs on Python 3.8 (DSM's): typing's Tuple where an annotation is evaluated.
Row = Tuple[int, int, float, int]  # noqa: UP006 (requests, body bytes, wall s, peak RSS KiB)


def _lib_paths() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([str(REPO), paths["purelib"], paths["platlib"]]))


# Forks and execs argv[2:], waits, and writes "exit-status wall-seconds peak-RSS-KiB" to the
# file descriptor argv[1] names.
_TRAMPOLINE = (
    "import os, sys, time\n"
    "fd = int(sys.argv[1])\n"
    "start = time.perf_counter()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.close(fd)\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "wall = time.perf_counter() - start\n"
    "code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)\n"
    "os.write(fd, b'%d %.6f %d' % (code, wall, usage.ru_maxrss))\n"
)


def measure(lab: AgentLab) -> Row:
    """(requests, body bytes, wall seconds, peak RSS KiB) of one `run --once` process."""
    code = _LAUNCHER.format(paths=_lib_paths())
    # Bytecode cached beside the labs, not in the tree (as lib/__pycache__ on the NAS).
    cache = f"pycache_prefix={lab.root.parent / 'pycache'}"
    agent = [sys.executable, "-I", "-S", "-X", cache, "-c", code, "--config", str(lab.config_path)]
    read_end, write_end = os.pipe()
    trampoline = [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(write_end)]
    done = subprocess.run(
        [*trampoline, *agent, "run", "--once"],
        capture_output=True,
        text=True,
        cwd=str(lab.root),
        pass_fds=(write_end,),
        check=False,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        measured = report.read().split()
    returncode, wall, rss = int(measured[0]), float(measured[1]), int(measured[2])
    if done.returncode != 0 or returncode != 0:
        raise SystemExit(f"agent exited {returncode}:\n{done.stderr}")
    stderr = done.stderr
    found = _COUNTS.search(stderr)
    if found is None:
        raise SystemExit(f"no source counters in the agent's log:\n{stderr}")
    requests, body = map(int, found.groups())
    return requests, body, wall, rss


def bench(lab: AgentLab, runs: int) -> dict[str, list[Row]]:
    results: dict[str, list[Row]] = {"idle poll": [], "install": []}
    for version in range(1, runs + 1):
        lab.publish(lab.plaintext(version=version))
        results["install"].append(measure(lab))
        results["idle poll"].append(measure(lab))
    return results


def report(source: str, results: dict[str, list[Row]]) -> list[bool]:
    met = []
    for case, rows in results.items():
        requests, body, wall, rss = zip(*rows)  # noqa: B905 (no strict= before 3.10)
        wall_ms = statistics.median(wall) * 1000
        rss_mib = statistics.median(rss) / 1024
        goal = ""
        if case == "idle poll":
            ok = wall_ms <= GOAL_MS and rss_mib <= GOAL_MIB
            met.append(ok)
            goal = f"   goal <= {GOAL_MS} ms, <= {GOAL_MIB} MiB: {'met' if ok else 'NOT met'}"
        print(
            f"  {source:<9}{case:<10} requests {statistics.median(requests):>2.0f}   "
            f"body {statistics.median(body):>5.0f} B   wall {wall_ms:4.0f} ms   "
            f"peak RSS {rss_mib:5.1f} MiB{goal}",
            flush=True,
        )
    return met


def _point_at(lab: AgentLab, lines: str) -> None:
    text = lab.config_path.read_text().replace(f"url = file://{lab.store}", lines)
    lab.config_path.write_text(text)


def to_https(lab: AgentLab, served: HttpsStore) -> None:
    _point_at(lab, f"url = {served.url}\nca_file = {served.ca_file}")


def to_s3(lab: AgentLab, moto: MotoServer) -> None:
    """Mirrors the lab's store into a bucket after each publish, and points the agent at it."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="certdrop-bench")
    publish = lab.publish

    def publish_and_upload(plaintext, **kw):
        entry = publish(plaintext, **kw)
        for path in sorted(lab.store.rglob("*")):
            if path.is_file():
                key = f"fleet/{path.relative_to(lab.store)}"
                s3.put_object(Bucket="certdrop-bench", Key=key, Body=path.read_bytes())
        return entry

    lab.publish = publish_and_upload  # type: ignore[method-assign]
    _point_at(
        lab,
        f"url = s3://certdrop-bench/fleet\nendpoint_url = {moto.endpoint_url}\nregion = us-east-1",
    )


def bare_interpreter_ms(runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    python = ".".join(map(str, sys.version_info[:3]))
    print(
        f"agent cycle on Python {python}, `certdrop-agent run --once` processes started as the"
        f" DSM bundle's launcher starts them (-I -S), median of {args.runs}; bare interpreter"
        f" {bare_interpreter_ms(args.runs):.0f} ms",
        flush=True,
    )
    if sys.version_info[:2] != (3, 8):
        print(f"  (DSM 7 runs Python 3.8; this is {python}: the goal is judged on 3.8)")
    met: list[bool] = []
    tmp = Path(tempfile.mkdtemp(prefix="certdrop-agent-bench-"))
    try:
        lab = AgentLab(tmp / "file")
        try:
            met += report("file://", bench(lab, args.runs))
        finally:
            lab.close()
        lab = AgentLab(tmp / "https")
        try:
            with HttpsStore(lab.store, tmp / "https-tls") as served:
                to_https(lab, served)
                met += report("https://", bench(lab, args.runs))
        finally:
            lab.close()
        with fake_aws_env(), MotoServer() as moto:
            lab = AgentLab(tmp / "s3")
            try:
                to_s3(lab, moto)
                met += report("s3://", bench(lab, args.runs))
            finally:
                lab.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  idle poll goal met for {sum(met)} of {len(met)} sources")


if __name__ == "__main__":
    main()
