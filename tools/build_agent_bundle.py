"""Build the NAS agent's bundle: build/certdrop-agent-<version>-<arch>.tar.gz for DSM 7's Python.

    python tools/build_agent_bundle.py --python /path/to/python3.8 [--arch x86_64 --arch aarch64]
        [--out build] [--source .] [--max-glibc 2.26]

DSM 7 has /usr/bin/python3 (3.8) but no pip, and a zip cannot hold cryptography's extension
module, so the bundle is a plain directory: `lib/` (the agent and its dependencies, installed
for the NAS's architecture), the launcher `certdrop-agent` and `BUNDLE.txt` (what is inside).
Unpacked anywhere, e.g. /volume1/certdrop, it runs as `./certdrop-agent -c agent.conf ...`.

Steps, each of which fails the build with a message naming what is wrong:

1. The project wheel is built from a copy of the sources (setuptools' in-tree build/ directory
   can keep deleted modules and ship them).
2. pip installs it with the `s3` extra into lib/ as manylinux2014 wheels (glibc 2.17) for the
   architecture, binary only. pip runs under the given Python 3.8 because it evaluates
   dependency markers for the interpreter it runs under, not for --python-version (from 3.11 it
   asks for cffi>=2.0, which has no 3.8 release). The full patch version is passed: pip reads
   a bare "3.8" as 3.8.0.
3. `platform_machine` markers are still evaluated for the build host, so any in the installed
   metadata fails the build rather than silently leaving a dependency out on the NAS.
4. What the NAS never runs is removed: the issuer (`cloud/`), console scripts (`bin/`, whose
   shebangs name the build host's Python), tests, caches, pip's record of the wheel's path.
5. agent_bundle_checks: every ELF file is for the architecture, every CPython extension for the
   target version, and none names a glibc newer than --max-glibc (DSM 7.0/7.1 have 2.26).
6. The tarball has sorted entries, one mtime (SOURCE_DATE_EPOCH, else 1980-01-01), uid/gid 0,
   normalised modes and a gzip header without name or time: the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from agent_bundle_checks import NativeCodeError, NativeReport, check_native, machine_markers

REPO = Path(__file__).resolve().parents[1]
ARCHES = ("x86_64", "aarch64")
_SOURCES = ("pyproject.toml", "README.md", "cloud", "nas_agent")
_DROP_TOP = ("bin", "cloud")
_DROP_ANYWHERE = ("__pycache__", "tests")
_ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the usual fixed time of reproducible archives

_LAUNCHER = """\
#!/bin/sh
# certdrop-agent {version} for {arch}, CPython {python}: runs the agent from lib/ beside this
# script with DSM 7's own Python, or with the interpreter named by CERTDROP_PYTHON.
# -I -S: only the standard library and lib/ are importable, whatever the environment, the working
# directory or the system's site-packages hold. The directory is found from this script's real
# path at run time, so the bundle may live anywhere (e.g. /volume1/certdrop) or be symlinked.
exec "${{CERTDROP_PYTHON:-/usr/bin/python3}}" -I -S -c '
import os, sys
if sys.version_info[:2] != ({major}, {minor}):
    sys.stderr.write("certdrop-agent: this bundle needs Python {python}, %s is %d.%d;"
                     " set CERTDROP_PYTHON to a Python {python}\\n"
                     % ((sys.executable,) + tuple(sys.version_info[:2])))
    sys.exit(2)
# DSM chose Python 3.8; cryptography 47 warns about it on every run, which no NAS owner can act on.
import warnings
warnings.filterwarnings("ignore", message="Python {python} is no longer supported")
launcher = os.path.realpath(sys.argv[1])
sys.argv[:2] = [launcher]
sys.path.insert(0, os.path.join(os.path.dirname(launcher), "lib"))
from nas_agent.cli import main
sys.exit(main())
' "$0" "$@"
"""


class BuildError(Exception):
    """The bundle cannot be built as asked; the message says why and what to do."""


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def target_python(python: str) -> tuple[str, str]:
    """(path, full version such as 3.8.18) of the target interpreter, which must have pip."""
    path = shutil.which(python)
    if path is None:
        raise BuildError(f"{python}: not found; give --python /path/to/python3.8 (with pip)")
    version = _run(
        [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], f"{path} -c"
    ).strip()
    _run([path, "-m", "pip", "--version"], f"{path} -m pip (the target Python needs pip)")
    return path, version


def build_wheel(workdir: Path, tree: Path = REPO) -> Path:
    """The project wheel, built from a copy of what the distribution needs from `tree`."""
    source = workdir / "source"
    source.mkdir()
    for name in _SOURCES:
        if not (tree / name).exists():
            raise BuildError(f"{tree / name} is missing: --source must be the project's root")
        if (tree / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(tree / name, source / name, ignore=ignore)
        else:
            shutil.copy2(tree / name, source / name)
    wheels = workdir / "wheel"
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels)]
    _run([*command, str(source)], "pip wheel (the project)")
    (wheel,) = wheels.glob("certdrop-*.whl")
    return wheel


def install(wheel: Path, lib: Path, arch: str, python: str, version: str) -> None:
    major, minor = version.split(".")[:2]
    options = ["--no-compile", "--disable-pip-version-check", "--target", str(lib)]
    options += ["--platform", f"manylinux2014_{arch}", "--python-version", version]
    options += ["--implementation", "cp", "--abi", f"cp{major}{minor}", "--only-binary=:all:"]
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    command = [python, "-m", "pip", "install", "-q", *options, f"{wheel}[s3]"]
    _run(command, f"pip install for {arch}", env=env)
    markers = machine_markers(lib)
    if markers:
        raise BuildError(
            "these dependencies depend on the CPU, and pip decided them for the build host; "
            "check them by hand:\n  " + "\n  ".join(markers)
        )


def prune(lib: Path) -> None:
    for top in _DROP_TOP:
        shutil.rmtree(lib / top, ignore_errors=True)
    for path in sorted(lib.rglob("*"), reverse=True):  # children before their parents
        if path.is_dir() and path.name in _DROP_ANYWHERE:
            shutil.rmtree(path)
        elif path.name == "direct_url.json" or path.suffix == ".pyc":
            path.unlink()
    # RECORD lists what pip installed; keep only what ships (and so no hash of a temporary path).
    for record in lib.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if (lib / line.rsplit(",", 2)[0]).is_file()]
        record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    if not (lib / "nas_agent" / "cli.py").is_file():
        raise BuildError("lib/nas_agent/cli.py is missing: the wheel did not hold the agent")


def write_launcher(stage: Path, version: str, arch: str, python: str) -> None:
    major, minor = python.split(".")[:2]
    text = _LAUNCHER.format(
        version=version, arch=arch, python=f"{major}.{minor}", major=major, minor=minor
    )
    launcher = stage / "certdrop-agent"
    launcher.write_text(text, encoding="utf-8")
    launcher.chmod(0o755)


def write_manifest(stage: Path, version: str, arch: str, python: str, native: NativeReport) -> None:
    major, minor = python.split(".")[:2]
    dists = sorted(p.name[: -len(".dist-info")] for p in (stage / "lib").glob("*.dist-info"))
    lines = [
        f"certdrop-agent {version} for Linux {arch} and CPython {major}.{minor} "
        "(DSM 7: /usr/bin/python3)",
        f"wheels: manylinux2014_{arch}, cp{major}{minor}, resolved for Python {python}",
        f"native code: {native.files} ELF files, all {arch}, "
        f"needing at most GLIBC_{native.glibc_text}",
        "distributions:",
        *(f"  {name.replace('-', ' ', 1)}" for name in dists),
    ]
    (stage / "BUNDLE.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def pack(stage: Path, tarball: Path, mtime: int) -> tuple[int, int]:
    """Write `tarball` from `stage`; (packed bytes, unpacked bytes of file content)."""
    entries = sorted(stage.rglob("*"), key=lambda p: p.relative_to(stage).as_posix())
    unpacked = 0
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(tarball, "wb") as raw,
        gzip.GzipFile("", "wb", 9, raw, mtime=mtime) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in entries:
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise BuildError(f"{path}: only plain files and directories are packed")
            info = tarfile.TarInfo(path.relative_to(stage).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.size = path.stat().st_size
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            unpacked += info.size
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return tarball.stat().st_size, unpacked


def build(
    arch: str,
    wheel: Path,
    python: str,
    version: str,
    out: Path,
    *,
    max_glibc: tuple[int, ...] = (2, 26),
    mtime: int = _ZIP_EPOCH,
) -> Path:
    """One architecture's tarball in `out` from the project `wheel`; prints its figures."""
    project_version = wheel.name.split("-")[1]
    with tempfile.TemporaryDirectory(prefix=f"certdrop-agent-{arch}-") as tmp:
        stage = Path(tmp)
        install(wheel, stage / "lib", arch, python, version)
        prune(stage / "lib")
        try:
            native = check_native(stage / "lib", arch, version, max_glibc)
        except NativeCodeError as exc:
            raise BuildError(str(exc)) from exc
        write_launcher(stage, project_version, arch, version)
        write_manifest(stage, project_version, arch, version, native)
        tarball = out / f"certdrop-agent-{project_version}-{arch}.tar.gz"
        packed, unpacked = pack(stage, tarball, mtime)
    print(
        f"{tarball}: {packed} bytes packed ({packed / 2**20:.1f} MiB), {unpacked} bytes "
        f"unpacked ({unpacked / 2**20:.1f} MiB); {native.files} ELF files, all {arch}, "
        f"max GLIBC_{native.glibc_text}",
        flush=True,
    )
    return tarball


def _glibc(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"2\.\d+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a glibc version such as 2.26")
    return tuple(int(part) for part in text.split("."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the NAS agent's bundle for DSM 7.")
    parser.add_argument("--python", default="python3.8", help="the target Python 3.8, with pip")
    parser.add_argument("--arch", action="append", choices=ARCHES, help="repeatable; default all")
    parser.add_argument("--out", type=Path, default=REPO / "build", help="default: build/")
    parser.add_argument("--source", type=Path, default=REPO, help="default: this repository")
    parser.add_argument("--max-glibc", type=_glibc, default=(2, 26), help="default: 2.26")
    args = parser.parse_args(argv)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", _ZIP_EPOCH))
    try:
        python, version = target_python(args.python)
        with tempfile.TemporaryDirectory(prefix="certdrop-wheel-") as tmp:
            wheel = build_wheel(Path(tmp), args.source)
            for arch in args.arch or ARCHES:
                build(arch, wheel, python, version, args.out, max_glibc=args.max_glibc, mtime=mtime)
    except BuildError as exc:
        print(f"build_agent_bundle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
