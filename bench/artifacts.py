"""What certdrop ships, by size, beside the goals: the NAS agent's bundle per architecture and the
Lambda artifact.

Builds both with the project's own build scripts (tools/build_agent_bundle.py for DSM's Python
3.8, infra/build_package.py for the python3.12 runtime) into a temporary directory, so pip
downloads wheels from the package index, and prints each artifact's packed and unpacked size.

    .venv/bin/python bench/artifacts.py [--python38 PATH] [--python312 PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENT_GOAL_MIB = 8.0  # per architecture, packed
LAMBDA_GOAL_MIB = 20.0  # zipped
_MIB = 2**20


def agent_bundles(python38: str, out: Path) -> list[tuple[str, int, int]]:
    """(architecture, packed bytes, unpacked bytes) of each bundle built."""
    command = [sys.executable, str(REPO / "tools" / "build_agent_bundle.py"), "--python", python38]
    command += ["--arch", "x86_64", "--arch", "aarch64", "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    sizes = []
    for tarball in sorted(out.glob("certdrop-agent-*.tar.gz")):
        with tarfile.open(tarball) as tar:
            unpacked = sum(m.size for m in tar.getmembers() if m.isfile())
        arch = tarball.name[: -len(".tar.gz")].rsplit("-", 1)[1]
        sizes.append((arch, tarball.stat().st_size, unpacked))
    return sizes


def lambda_zip(python312: str, work: Path) -> tuple[int, int]:
    """(zipped bytes, unzipped bytes) of the Lambda artifact."""
    out = work / "certdrop-lambda.zip"
    command = [sys.executable, str(REPO / "infra" / "build_package.py"), "--python", python312]
    command += ["--work", str(work / "lambda"), "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with zipfile.ZipFile(out) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return out.stat().st_size, unzipped


def _verdict(size: int, goal_mib: float) -> str:
    return f"goal <= {goal_mib:g} MiB: {'met' if size / _MIB <= goal_mib else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--python38", default="python3.8", help="DSM's Python, with pip")
    parser.add_argument("--python312", default="python3.12", help="the runtime's, with pip")
    args = parser.parse_args()
    print("artifacts, built now from this tree", flush=True)
    with tempfile.TemporaryDirectory(prefix="certdrop-artifacts-") as tmp:
        work = Path(tmp)
        for arch, packed, unpacked in agent_bundles(args.python38, work / "agent"):
            print(
                f"  agent bundle {arch:<8} {packed / _MIB:5.1f} MiB packed "
                f"({unpacked / _MIB:5.1f} MiB unpacked)   {_verdict(packed, AGENT_GOAL_MIB)}",
                flush=True,
            )
        zipped, unzipped = lambda_zip(args.python312, work)
        print(
            f"  Lambda artifact       {zipped / _MIB:5.1f} MiB zipped "
            f"({unzipped / _MIB:5.1f} MiB unzipped)   {_verdict(zipped, LAMBDA_GOAL_MIB)}"
        )


if __name__ == "__main__":
    main()
