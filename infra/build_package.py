"""Build the Lambda artifact: build/certdrop-lambda.zip for python3.12 on arm64.

    python infra/build_package.py --python /path/to/python3.12

Steps, each of which fails the build with a message naming what is wrong:

1. pip installs the `cloud` extra's requirements (read from pyproject.toml) into build/lambda as
   wheels for manylinux aarch64, CPython 3.12, binary only. pip runs under the given Python 3.12
   so `python_version` markers are evaluated for the runtime, not for the build host.
2. The dependency closure is re-checked with every marker evaluated for Lambda (3.12, aarch64,
   Linux), because pip evaluates `platform_machine` markers for the host: a dependency only the
   runtime needs would otherwise be missing without a word.
3. `cloud/` and `nas_agent/` are copied in (the Lambda runs the code, not an installed wheel).
4. What Lambda never runs is removed: console scripts (`bin/`), test packages, caches.
5. Every shared object must be an ARM aarch64 ELF according to `file`.
6. Bytecode is compiled with the 3.12 interpreter as unchecked-hash .pyc, whose bytes depend only
   on the source (Lambda's code directory is read-only, so without them every cold start
   compiles every imported module again).
7. The zip has sorted entries, one fixed timestamp and normalised modes, so the same tree always
   gives the same bytes.

boto3 and what only it needs (botocore, s3transfer, jmespath, python-dateutil, six) are left out:
the python3.12 runtime provides them, and they were 60 % of the artifact. certdrop needs botocore
>= 1.36.0 (S3 conditional writes and deletes, `request_checksum_calculation`), which the runtime
has shipped since 2025; its version depends on region and runtime release, so each function
checks it at its first invocation (`cloud.aws.sdk`) and says to rebuild with `--with-sdk`, which
puts boto3 back in the artifact, when the runtime's is older. Other libraries the runtime also
has (urllib3) stay: the artifact's own versions are the ones tested.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from importlib.metadata import distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cloud.aws.sdk import MIN_BOTOCORE

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("cloud", "nas_agent")
_EXTRA = "cloud"
# AL2023 (the python3.12 runtime) has glibc 2.34: manylinux2014 first, 2_28 when a project has
# nothing older for aarch64.
_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
_RUNTIME_MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": "3.12",
    "sys_platform": "linux",
}
_DROPPED_DIRS = {"__pycache__", "tests"}
# Provided by the Lambda runtime (with its dependencies): left out unless --with-sdk.
_RUNTIME_PROVIDED = ("boto3",)
# What boto3 alone brings; none of it may reach the artifact without --with-sdk.
_SDK_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
# Lambda's limit for the unzipped code of a function deployed from S3.
_UNZIPPED_LIMIT = 250 * 1024 * 1024


class BuildError(Exception):
    """A step of the build failed; the message says which and why."""


def requirements(pyproject: Path, *, with_sdk: bool = False) -> list[str]:
    """The base dependencies plus the cloud extra, as written in pyproject.toml; without what
    the runtime provides unless `with_sdk`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"][_EXTRA]]
    if with_sdk:
        return reqs
    return [r for r in reqs if canonicalize_name(Requirement(r).name) not in _RUNTIME_PROVIDED]


def check_no_sdk(target: Path) -> None:
    """The runtime's SDK must not come back through another dependency: that copy would shadow
    the runtime's (the function's own directory is first on sys.path) untested."""
    found = sorted(
        name
        for d in distributions(path=[str(target)])
        if (name := canonicalize_name(d.metadata["Name"])) in _SDK_DISTRIBUTIONS
    )
    if found:
        raise BuildError(
            f"{', '.join(found)} installed although the runtime provides it: a dependency pulls"
            " it in; build with --with-sdk or drop that dependency"
        )


def check_python(python: str) -> None:
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise BuildError(f"cannot run {python!r} ({exc.strerror}); pass --python") from exc
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no output"])[0]
        raise BuildError(f"{python} failed ({said}); pass --python /path/to/python3.12")
    out = result.stdout.split()
    if out != ["3", "12"]:
        raise BuildError(
            f"{python} is Python {'.'.join(out)}; the Lambda runtime is python3.12, so markers "
            "and bytecode must come from 3.12 (pass --python /path/to/python3.12)"
        )


def pip_install(python: str, target: Path, reqs: list[str]) -> None:
    platforms = [arg for platform in _PLATFORMS for arg in ("--platform", platform)]
    command = [
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(target), *platforms, "--implementation", "cp",
        "--python-version", "3.12", "--only-binary=:all:", "--no-compile", *reqs,
    ]  # fmt: skip
    if subprocess.run(command, check=False).returncode != 0:
        raise BuildError("pip could not install the requirements for aarch64 (see above)")


def check_closure(target: Path, reqs: Iterable[str]) -> list[str]:
    """Every requirement Lambda needs is installed in a satisfying version; returns the names of
    installed distributions nothing needs there (installed for the build host's markers)."""
    installed = {
        canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[str(target)])
    }
    needed: set[tuple[str, str]] = set()
    queue = [(Requirement(r), "") for r in reqs]
    problems = []
    while queue:
        req, extra = queue.pop()
        if req.marker is not None and not req.marker.evaluate({**_RUNTIME_MARKERS, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = installed.get(name)
        if dist is None:
            problems.append(f"{req} is needed on Lambda but was not installed")
            continue
        if not req.specifier.contains(dist.version, prereleases=True):
            problems.append(f"{req} is needed but {dist.version} was installed")
        for want in ("", *sorted(req.extras)):
            if (name, want) in needed:
                continue
            needed.add((name, want))
            queue.extend((Requirement(r), want) for r in dist.requires or [])
    if problems:
        raise BuildError("dependency check for Lambda failed:\n  " + "\n  ".join(problems))
    reached = {name for name, _ in needed}
    return sorted(set(installed) - reached)


def copy_packages(source: Path, target: Path) -> None:
    for package in _PACKAGES:
        shutil.copytree(
            source / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )


def prune(target: Path) -> None:
    shutil.rmtree(target / "bin", ignore_errors=True)
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _DROPPED_DIRS:
            shutil.rmtree(path)


def check_shared_objects(target: Path) -> int:
    """Every .so is an ARM aarch64 ELF; returns how many there are."""
    objects = sorted(p for p in target.rglob("*") if p.is_file() and ".so" in p.suffixes)
    if not objects:
        return 0
    if shutil.which("file") is None:
        raise BuildError("`file` is not installed (apt-get install file); it checks every .so")
    result = subprocess.run(
        ["file", "-b", *map(str, objects)], capture_output=True, text=True, check=True
    )
    kinds = result.stdout.splitlines()
    wrong = [
        f"{p.relative_to(target)}: {k}" for p, k in zip(objects, kinds, strict=True)
        if "ELF" not in k or "ARM aarch64" not in k
    ]  # fmt: skip
    if wrong:
        raise BuildError("shared objects that are not ARM aarch64:\n  " + "\n  ".join(wrong))
    return len(objects)


def compile_bytecode(python: str, target: Path) -> None:
    command = [
        python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
        # Tracebacks and co_filename name /var/task (where Lambda unpacks the zip), not this host.
        "-s", str(target), "-p", "/var/task", str(target),
    ]  # fmt: skip
    if subprocess.run(command, check=False).returncode != 0:
        raise BuildError("compileall failed (see above)")


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    for path in root.rglob("*"):
        if path.is_file() or path.is_symlink():
            yield path.relative_to(root).as_posix(), path


def write_zip(root: Path, out: Path) -> tuple[int, int]:
    """Zips `root` reproducibly; returns (zipped bytes, unzipped bytes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".zip.partial")
    unzipped = 0
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path in sorted(_files(root)):
            data = path.read_bytes()
            unzipped += len(data)
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3  # Unix, so the modes below are honoured
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    partial.replace(out)
    return out.stat().st_size, unzipped


def build(python: str, work: Path, out: Path, *, with_sdk: bool = False) -> None:
    check_python(python)
    reqs = requirements(_ROOT / "pyproject.toml", with_sdk=with_sdk)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pip_install(python, work, reqs)
    if not with_sdk:
        check_no_sdk(work)
    unneeded = check_closure(work, reqs)
    if unneeded:
        print(f"note: installed but not needed on Lambda: {', '.join(unneeded)}")
    copy_packages(_ROOT, work)
    prune(work)
    shared = check_shared_objects(work)
    compile_bytecode(python, work)
    zipped, unzipped = write_zip(work, out)
    if unzipped > _UNZIPPED_LIMIT:
        raise BuildError(f"{unzipped:,} bytes unzipped is over Lambda's 250 MiB limit")
    print(f"{out}: {zipped / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped")
    print(f"  {shared} shared objects, all ARM aarch64")
    if not with_sdk:
        minimum = ".".join(map(str, MIN_BOTOCORE))
        print(f"  boto3/botocore: the runtime's (botocore >= {minimum}, checked at start)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3.12", help="a Python 3.12 interpreter")
    parser.add_argument("--work", type=Path, default=_ROOT / "build" / "lambda")
    parser.add_argument("--out", type=Path, default=_ROOT / "build" / "certdrop-lambda.zip")
    parser.add_argument(
        "--with-sdk",
        action="store_true",
        help="put boto3 and botocore in the artifact (a runtime whose botocore is too old)",
    )
    args = parser.parse_args(argv)
    try:
        build(args.python, args.work, args.out, with_sdk=args.with_sdk)
    except BuildError as exc:
        print(f"build_package: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
