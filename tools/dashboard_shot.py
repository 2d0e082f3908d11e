"""A screenshot of the fleet dashboard, for the README and for looking at it without a browser.

    python tools/dashboard_shot.py [--out build/dashboard.png] [--size 1400,1000]
        [--chromium chromium]

Builds the demo fleet of the tests (one expired, one due and one healthy site; an agent that is
current, one behind and failing, one quiet) in a temporary directory, serves the dashboard on a
free 127.0.0.1 port in a thread and has headless Chromium (Debian's `chromium`) take the picture.
Chromium is kept off the network: no first-run, sync, component updates or background fetches.
Prints the PNG's path, pixel size and bytes.
"""

from __future__ import annotations

import argparse
import logging
import struct
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_ROOT))  # run from a checkout: cloud/ and lab/ beside tools/

from cloud.fleet.dashboard import make_app  # noqa: E402
from cloud.fleet.dashboard.server import serving  # noqa: E402
from cloud.fleet.status import collect  # noqa: E402
from lab.sample_fleet import make_fleet  # noqa: E402

_CHROMIUM_TIMEOUT = 120  # seconds; a first start on a cold disk is slow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=_ROOT / "build" / "dashboard.png")
    parser.add_argument("--size", default="1400,1000", help="window width,height in pixels")
    parser.add_argument("--chromium", default="chromium", help="the browser to run")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # so a stale picture is never reported as this run's
    with tempfile.TemporaryDirectory(prefix="certdrop-shot-") as work:
        fleet = make_fleet(Path(work), datetime.now(UTC))
        app = make_app(lambda: collect(fleet.config, fleet.store, fleet.now))
        with serving(app) as url:
            _screenshot(args.chromium, url, out, args.size, Path(work) / "profile")
    if not out.is_file():
        print(f"dashboard_shot: {args.chromium} wrote no {out}", file=sys.stderr)
        return 1
    width, height = _png_size(out.read_bytes())
    print(f"{out}  {width}x{height} px  {out.stat().st_size} bytes")
    return 0


def _screenshot(chromium: str, url: str, out: Path, size: str, profile: Path) -> None:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # runs as root here, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        f"--screenshot={out}",
        url,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_CHROMIUM_TIMEOUT, check=False
        )
    except FileNotFoundError:
        sys.exit(f"dashboard_shot: no {chromium!r}; install Debian's chromium package")
    except subprocess.TimeoutExpired:
        sys.exit(f"dashboard_shot: {chromium} took over {_CHROMIUM_TIMEOUT} s")
    if done.returncode != 0:
        sys.exit(f"dashboard_shot: {chromium} exited {done.returncode}:\n{done.stderr[-2000:]}")


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise SystemExit("dashboard_shot: the screenshot is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


if __name__ == "__main__":
    sys.exit(main())
