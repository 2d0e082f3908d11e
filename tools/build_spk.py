"""Build the NAS agent as a DSM 7 package: build/certdrop-agent-<version>-<arch>.spk.

    python tools/build_spk.py --python /path/to/python3.8 [--arch x86_64 --arch aarch64]
        [--build 1] [--out build] [--source .]

Package Center installs it, asks for the operator's invitation line and the DSM account (the
install wizard), and runs the agent as the package's own user: a service whose loop starts a
fresh `certdrop-agent run --once` per poll. For DSM 7.0 and later, on x86_64 and 64-bit ARM
(DSM's arch `armv8`); 32-bit ARM units get no package (cryptography has no wheel for them).

Each architecture's package is made from the agent's bundle, built by build_agent_bundle.build
(its lib/, launcher and checks, with the same reproducible packing):

    INFO                  package, version <project version>-<build, 4 digits>, os_min_ver,
                          arch, maintainer, description, the MD5 of package.tgz
    package.tgz           the bundle (launcher, lib/, BUNDLE.txt) + certdrop-agent-service
    scripts/              preinst ... start-stop-status, and `common`, which they source
    conf/privilege        run as the package's own user
    WIZARD_UIFILES/       install_uifile (invitation, DSM account), uninstall_uifile (keep data)
    PACKAGE_ICON.PNG      64 x 64, and PACKAGE_ICON_256.PNG, drawn here (package_icon.py)

The scripts, the service loop, the privilege and the wizards are the files under tools/spk/.
The .spk is a plain tar; its entries and package.tgz's are sorted, root-owned and dated like the
bundle (SOURCE_DATE_EPOCH, else 1980-01-01): the same sources and build number give the same
bytes. Raise --build for every package built from changed sources of the same version: Package
Center offers an upgrade only to a higher version.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from build_agent_bundle import ARCHES, REPO, BuildError, build, build_wheel, pack, target_python
from package_icon import package_icon

PACKAGE = "certdrop-agent"
SOURCES = Path(__file__).resolve().parent / "spk"
# DSM's arch values (Developer Guide, "Appendix A: Platform and Arch Value Mapping Table"):
# `armv8` is the family of DSM's 64-bit ARM platforms (rtd1296, armada37xx, rtd1619, rtd1619b).
DSM_ARCH = {"x86_64": "x86_64", "aarch64": "armv8"}
# DSM 7.0's first build: the least a DSM 7 package may ask (INFO "Necessary Fields", os_min_ver);
# the bundle needs no newer glibc than DSM 7.0's 2.26.
OS_MIN_VER = "7.0-40000"
MAINTAINER = "certdrop"
DISPLAY_NAME = "certdrop agent"
DESCRIPTION = (
    "Installs the certificates your certdrop issuer publishes for this NAS into DSM, and renews"
    " them. Paste the invitation line your operator gives you; once the operator approves this"
    " NAS, its certificate arrives at the next poll."
)
ICONS = {"PACKAGE_ICON.PNG": 64, "PACKAGE_ICON_256.PNG": 256}


def info_text(version: str, arch: str, package_md5: str) -> str:
    """INFO: key="value" lines (Developer Guide, "INFO")."""
    fields = {
        "package": PACKAGE,
        "version": version,
        "os_min_ver": OS_MIN_VER,
        "arch": DSM_ARCH[arch],
        "maintainer": MAINTAINER,
        "displayname": DISPLAY_NAME,
        "description": DESCRIPTION,
        "checksum": package_md5,
    }
    return "".join(f'{key}="{value}"\n' for key, value in fields.items())


def spk_version(project_version: str, build_number: int) -> str:
    """`[feature number]-[build number]`, digits and dots only (INFO "Necessary Fields")."""
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", project_version):
        raise BuildError(
            f"version {project_version!r}: DSM allows only numbers between dots (e.g. 0.2.0);"
            " set such a version in pyproject.toml"
        )
    if not 1 <= build_number <= 9999:
        raise BuildError(f"--build {build_number}: give 1 to 9999")
    return f"{project_version}-{build_number:04d}"


def _unpack(tarball: Path, into: Path) -> int:
    """Unpack the bundle (built here, so trusted); the one mtime all its entries share."""
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
        tar.extractall(into, filter="data")
    (mtime,) = {m.mtime for m in members}
    return mtime


def _copy_executable(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    target.chmod(0o755)


def package_spk(bundle: Path, arch: str, build_number: int, out: Path, workdir: Path) -> Path:
    """The .spk for `arch` in `out`, wrapping the agent's `bundle` tarball."""
    project_version = bundle.name.split("-")[2]
    version = spk_version(project_version, build_number)
    payload, stage = workdir / "package", workdir / "spk"
    payload.mkdir()
    mtime = _unpack(bundle, payload)
    _copy_executable(SOURCES / "certdrop-agent-service", payload / "certdrop-agent-service")
    stage.mkdir()
    pack(payload, stage / "package.tgz", mtime)
    for folder in ("scripts", "conf", "WIZARD_UIFILES"):
        shutil.copytree(SOURCES / folder, stage / folder)
    for script in (stage / "scripts").iterdir():
        script.chmod(0o644 if script.name == "common" else 0o755)  # common is sourced, not run
    for name, size in ICONS.items():
        (stage / name).write_bytes(package_icon(size))
    md5 = hashlib.md5((stage / "package.tgz").read_bytes()).hexdigest()
    (stage / "INFO").write_text(info_text(version, arch, md5), encoding="utf-8")
    # An .spk is a plain tar: pack() writes the normalised, sorted entries, gzip-compressed.
    packed = workdir / "spk.tar.gz"
    pack(stage, packed, mtime)
    spk = out / f"{PACKAGE}-{project_version}-{arch}.spk"
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(packed) as tar, open(spk, "wb") as target:
        shutil.copyfileobj(tar, target)
    size = spk.stat().st_size
    print(
        f"{spk}: {size} bytes ({size / 2**20:.1f} MiB), version {version}, DSM arch"
        f" {DSM_ARCH[arch]}, DSM {OS_MIN_VER} or later",
        flush=True,
    )
    return spk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the NAS agent's DSM 7 package (.spk).")
    parser.add_argument("--python", default="python3.8", help="the target Python 3.8, with pip")
    parser.add_argument("--arch", action="append", choices=ARCHES, help="repeatable; default all")
    parser.add_argument("--build", type=int, default=1, help="the build number (default 1)")
    parser.add_argument("--out", type=Path, default=REPO / "build", help="default: build/")
    parser.add_argument("--source", type=Path, default=REPO, help="default: this repository")
    args = parser.parse_args(argv)
    dated = (
        {"mtime": int(os.environ["SOURCE_DATE_EPOCH"])} if "SOURCE_DATE_EPOCH" in os.environ else {}
    )
    try:
        python, version = target_python(args.python)
        with tempfile.TemporaryDirectory(prefix="certdrop-spk-") as tmp:
            wheel = build_wheel(Path(tmp), args.source)
            for arch in args.arch or ARCHES:
                work = Path(tmp) / arch
                work.mkdir()
                bundle = build(arch, wheel, python, version, work, **dated)
                package_spk(bundle, arch, args.build, args.out, work)
    except BuildError as exc:
        print(f"build_spk: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
