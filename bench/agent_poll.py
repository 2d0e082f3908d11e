"""What one agent cycle costs: an idle poll (nothing new) and an install, as `certdrop-agent`
processes against a file:// source and against S3 (moto's server), with the DSM emulator.

Prints, per case: requests made to the source, body bytes received, wall time of the whole
process, and its peak RSS (from wait4's rusage). Median of N runs.

    .venv/bin/python bench/agent_poll.py [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.agent_lab import AgentLab  # noqa: E402 (after the path is set)
from lab.moto import MotoServer, fake_aws_env  # noqa: E402

_COUNTS = re.compile(r"source: (\d+) request\(s\), (\d+) body byte\(s\)")


def measure(lab: AgentLab) -> tuple[int, int, float, int]:
    """(requests, body bytes, wall seconds, peak RSS KiB) of one `run --once` process."""
    start = time.perf_counter()
    process = lab.spawn("run", "--once")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"agent exited {process.returncode}:\n{stderr}")
    requests, body = map(int, _COUNTS.search(stderr).groups())
    return requests, body, wall, usage.ru_maxrss


def bench(lab: AgentLab, runs: int) -> dict[str, list[tuple[int, int, float, int]]]:
    results: dict[str, list] = {"idle poll": [], "install": []}
    for version in range(1, runs + 1):
        lab.publish(lab.plaintext(version=version))
        results["install"].append(measure(lab))
        results["idle poll"].append(measure(lab))
    return results


def report(source: str, results: dict) -> None:
    for case, rows in results.items():
        requests, body, wall, rss = zip(*rows, strict=True)
        wall_ms = statistics.median(wall) * 1000
        print(
            f"  {source:<8} {case:<10} requests {statistics.median(requests):>3.0f}   "
            f"body {statistics.median(body):>6.0f} B   wall {wall_ms:6.0f} ms   "
            f"peak RSS {statistics.median(rss) / 1024:5.1f} MiB"
        )


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

    lab.publish = publish_and_upload
    text = lab.config_path.read_text().replace(
        f"url = file://{lab.store}",
        f"url = s3://certdrop-bench/fleet\nendpoint_url = {moto.endpoint_url}\nregion = us-east-1",
    )
    lab.config_path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    print(f"agent cycle, `certdrop-agent run --once` processes, median of {args.runs}")
    tmp = Path(tempfile.mkdtemp(prefix="certdrop-agent-bench-"))
    try:
        lab = AgentLab(tmp / "file")
        try:
            report("file://", bench(lab, args.runs))
        finally:
            lab.close()
        with fake_aws_env(), MotoServer() as moto:
            lab = AgentLab(tmp / "s3")
            try:
                to_s3(lab, moto)
                report("s3://", bench(lab, args.runs))
            finally:
                lab.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
