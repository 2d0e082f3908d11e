"""infra/build_package.py: its checks and its zip, on small trees made here (no pip, no network)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "build_package.py"
_spec = importlib.util.spec_from_file_location("build_package", _SCRIPT)
assert _spec is not None and _spec.loader is not None
build_package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_package)

EM_X86_64, EM_AARCH64 = 62, 183


def _elf_header(machine: int) -> bytes:
    """A 64-bit little-endian ELF header of a shared object (ET_DYN) for `machine`."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 64, 0, 0, 64, 56, 0, 64, 0, 0)


def _dist(root: Path, name: str, version: str, *requires: str) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


needs_file = pytest.mark.skipif(shutil.which("file") is None, reason="`file` is not installed")


@needs_file
def test_an_x86_64_shared_object_fails_the_build(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "_native.cpython-312-aarch64-linux-gnu.so").write_bytes(
        _elf_header(EM_AARCH64)
    )
    (tmp_path / "pkg" / "_other.abi3.so").write_bytes(_elf_header(EM_X86_64))
    with pytest.raises(build_package.BuildError, match=r"_other\.abi3\.so"):
        build_package.check_shared_objects(tmp_path)


@needs_file
def test_aarch64_shared_objects_pass_and_are_counted(tmp_path):
    (tmp_path / "a.so").write_bytes(_elf_header(EM_AARCH64))
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libz.so.1").write_bytes(_elf_header(EM_AARCH64))
    assert build_package.check_shared_objects(tmp_path) == 2


def test_a_dependency_only_lambda_needs_is_reported_missing(tmp_path):
    # pip evaluates platform_machine for the x86_64 build host, so it would skip this one.
    _dist(tmp_path, "top", "1.0", 'armonly>=2; platform_machine == "aarch64"')
    with pytest.raises(build_package.BuildError, match="armonly>=2"):
        build_package.check_closure(tmp_path, ["top"])


def test_a_dependency_in_a_version_the_requirement_refuses_is_reported(tmp_path):
    _dist(tmp_path, "top", "1.0", "dep>=2")
    _dist(tmp_path, "dep", "1.5")
    with pytest.raises(build_package.BuildError, match=r"dep>=2 is needed but 1\.5"):
        build_package.check_closure(tmp_path, ["top"])


def test_dependencies_through_extras_are_followed_and_host_only_ones_are_listed(tmp_path):
    _dist(tmp_path, "top", "1.0", "mid[fast]")
    _dist(
        tmp_path,
        "mid",
        "1.0",
        'speedup; extra == "fast"',
        'x86helper; platform_machine == "x86_64"',
    )
    _dist(tmp_path, "speedup", "3.0")
    _dist(tmp_path, "x86helper", "1.0")
    assert build_package.check_closure(tmp_path, ["top"]) == ["x86helper"]


def test_the_zip_is_byte_identical_whatever_the_files_mtimes_and_sorted(tmp_path):
    tree = tmp_path / "tree"
    (tree / "b").mkdir(parents=True)
    (tree / "b" / "z.py").write_text("z = 1\n")
    (tree / "a.py").write_text("a = 1\n")
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o750)

    first = tmp_path / "one.zip"
    build_package.write_zip(tree, first)
    for path in (tree / "a.py", tree / "b" / "z.py", tree / "run.sh"):
        os.utime(path, (1_900_000_000, 1_900_000_000))
    second = tmp_path / "two.zip"
    zipped, unzipped = build_package.write_zip(tree, second)

    assert first.read_bytes() == second.read_bytes()
    assert (zipped, unzipped) == (second.stat().st_size, len("z = 1\na = 1\n#!/bin/sh\n"))
    with zipfile.ZipFile(second) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a.py", "b/z.py", "run.sh"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
    assert modes == {"a.py": 0o644, "b/z.py": 0o644, "run.sh": 0o755}


def test_pruning_drops_console_scripts_caches_and_test_packages_only(tmp_path):
    for rel in ("bin/flask", "acme/_internal/tests/x.py", "pkg/__pycache__/m.pyc", "pkg/m.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    build_package.prune(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["pkg/m.py"]


def test_an_interpreter_that_is_not_3_12_is_refused_with_the_fix(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 3 11\n")
    fake.chmod(0o755)
    with pytest.raises(build_package.BuildError, match=r"--python /path/to/python3\.12"):
        build_package.check_python(str(fake))


def test_the_requirements_are_the_base_dependencies_and_the_cloud_extra(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["a>=1"]\n'
        '[project.optional-dependencies]\ncloud = ["b; python_version >= \'3.11\'"]\ns3 = ["c"]\n'
    )
    assert build_package.requirements(pyproject) == ["a>=1", "b; python_version >= '3.11'"]


def test_the_runtimes_boto3_is_left_out_unless_the_sdk_is_asked_for(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["a>=1"]\n'
        "[project.optional-dependencies]\n"
        'cloud = ["Boto3>=1.36; python_version >= \'3.11\'", "b"]\n'
    )
    assert build_package.requirements(pyproject) == ["a>=1", "b"]
    assert "Boto3>=1.36; python_version >= '3.11'" in build_package.requirements(
        pyproject, with_sdk=True
    )


def test_botocore_brought_back_by_another_dependency_fails_the_build(tmp_path):
    _dist(tmp_path, "lexicon-ish", "1.0", "botocore")
    _dist(tmp_path, "botocore", "1.40.0")
    with pytest.raises(build_package.BuildError, match="botocore installed although the runtime"):
        build_package.check_no_sdk(tmp_path)
    (tmp_path / "botocore-1.40.0.dist-info" / "METADATA").unlink()
    (tmp_path / "botocore-1.40.0.dist-info").rmdir()
    build_package.check_no_sdk(tmp_path)
