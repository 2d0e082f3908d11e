"""The DSM bundle, built for real by tools/build_agent_bundle.py and run from its tarball by a bare
Python 3.8 standing in for DSM 7's /usr/bin/python3: help, enroll, and a whole `run --once`
against the DSM emulator with a file:// source.

Building downloads wheels from the package index, so the module is skipped, saying so, when the
index cannot be reached. It builds x86_64 only (aarch64 cannot run here; the build checks its
ELF headers) and keeps nothing between runs.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from lab.agent_lab import REPO, SITE, AgentLab, fingerprint
from nas_agent.cycle import EXIT_CONFIG, EXIT_OK
from nas_agent.enrollment import parse_enrollment_token

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="built and run once, from the 3.11 suite: the build script needs 3.11, and the "
    "bundle runs under a bare Python 3.8 either way",
)

BUILD_SCRIPT = REPO / "tools" / "build_agent_bundle.py"
ARCH = "x86_64"


def _python38() -> str | None:
    """A bare CPython 3.8 (no virtualenv), as on DSM: pyenv's 3.8.18, else python3.8."""
    candidates = []
    if shutil.which("pyenv"):
        prefix = subprocess.run(
            ["pyenv", "prefix", "3.8.18"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if prefix:
            candidates.append(os.path.join(prefix, "bin", "python3.8"))
    candidates.append(shutil.which("python3.8") or "")
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.stdout.strip() == "True":
                return candidate
    return None


def _index_unreachable(python: str, workdir: Path) -> str | None:
    """Why the package index cannot serve a small wheel for the NAS, or None when it can."""
    command = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    command += ["--platform", f"manylinux2014_{ARCH}", "--python-version", "3.8.18"]
    command += ["--timeout", "20", "--retries", "1", "-d", str(workdir), "jmespath==1.0.1"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode == 0:
        return None
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else f"pip exit {done.returncode}"


def _snapshot(root: Path) -> Path:
    """What the wheel is built from, copied once: others may edit the tree between two builds."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, root / name)
    for name in ("cloud", "nas_agent"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _build(python: str, source: Path, out: Path) -> Path:
    command = [sys.executable, str(BUILD_SCRIPT), "--python", python, "--arch", ARCH]
    done = subprocess.run(
        [*command, "--source", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (tarball,) = out.glob(f"certdrop-agent-*-{ARCH}.tar.gz")
    return tarball


@pytest.fixture(scope="module")
def python38() -> str:
    python = _python38()
    if python is None:
        pytest.skip("no CPython 3.8 here (pyenv 3.8.18 or python3.8) to stand in for DSM's")
    return python


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _snapshot(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def tarball(python38: str, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _index_unreachable(python38, tmp_path_factory.mktemp("probe"))
    if reason is not None:
        pytest.skip(f"the package index is unreachable, and building downloads wheels: {reason}")
    return _build(python38, source, tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle unpacked as the install guide says, into a folder like /volume1/certdrop."""
    folder = tmp_path_factory.mktemp("volume1") / "certdrop"
    folder.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(folder)], check=True)
    return folder


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[AgentLab]:
    lab = AgentLab(tmp_path)
    yield lab
    lab.close()


def _checks():
    """tools/agent_bundle_checks.py, the build's own checks, imported by path (tools/ is no
    package)."""
    name = "agent_bundle_checks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BUILD_SCRIPT.parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _agent(installed: Path, python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The launcher with an environment as bare as a scheduled task's."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "CERTDROP_PYTHON": python}
    return subprocess.run(
        [str(installed / "certdrop-agent"), *args],
        capture_output=True,
        text=True,
        cwd=str(cwd),
        env=env,
        timeout=120,
        check=False,
    )


def test_two_builds_of_the_same_sources_give_the_same_bytes(python38, source, tarball, tmp_path):
    again = _build(python38, source, tmp_path)

    assert again.read_bytes() == tarball.read_bytes()


def test_every_entry_is_sorted_root_owned_and_dated_alike(tarball):
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    with gzip.open(tarball) as zipped:
        zipped.read(1)
        gzip_mtime = zipped.mtime

    names = [m.name for m in members]
    assert names == sorted(names)
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    assert len({m.mtime for m in members} | {gzip_mtime}) == 1
    assert {m.type for m in members} <= {tarfile.REGTYPE, tarfile.DIRTYPE}


def test_the_bundle_holds_the_agent_and_its_dependencies_but_not_the_issuer_or_the_lab(tarball):
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        manifest = tar.extractfile("BUNDLE.txt").read().decode()
    parts = {part for name in members for part in name.split("/")}
    dists = {name.split("/")[1].split("-")[0] for name in members if name.endswith(".dist-info")}

    assert "lib/nas_agent/cli.py" in members
    assert {"cryptography", "requests"} <= dists
    assert not {"boto3", "botocore", "s3transfer"} & dists  # s3:// signs its own requests
    assert "lib/cryptography-47.0.0.dist-info" in members
    assert not {"lib/cloud", "lib/bin", "lib/lab"} & set(members)
    assert not {"__pycache__", "tests", "dsm_emulator", "flask"} & parts
    assert members["certdrop-agent"].mode == 0o755
    assert f"all {ARCH}" in manifest


def test_native_code_is_for_the_architecture_and_needs_at_most_glibc_2_17(installed):
    checks = _checks()
    lib = installed / "lib"

    report = checks.check_native(lib, ARCH, "3.8.18", max_glibc=(2, 17))
    machines = {checks.elf_machine(p) for p in lib.rglob("*.so")}

    assert report.files >= 2  # cryptography's Rust module and cffi's backend at least
    assert machines == {ARCH}


def test_the_launcher_runs_from_any_directory_and_through_a_symlink(installed, python38, tmp_path):
    link = tmp_path / "certdrop-agent"
    link.symlink_to(installed / "certdrop-agent")

    done = _agent(tmp_path, python38, "--help", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "enroll" in done.stdout and "dsm-login" in done.stdout
    assert done.stderr == ""  # no deprecation warning on every scheduled run


def test_the_launcher_refuses_another_python_naming_the_fix(installed, tmp_path):
    done = _agent(installed, sys.executable, "--help", cwd=tmp_path)

    assert done.returncode == EXIT_CONFIG
    assert "needs Python 3.8" in done.stderr and "CERTDROP_PYTHON" in done.stderr


def test_enroll_from_the_bundle_writes_keys_and_prints_a_token(installed, python38, tmp_path):
    config = tmp_path / "agent.conf"
    config.write_text(
        "[agent]\nid = nas-b\n\n[source]\nurl = file:///nonexistent\n\n"
        "[dsm]\nusername = certdrop\npassword_file = dsm-password\ninsecure = true\n\n"
        f"[site:{SITE}]\nhostnames = nas.{SITE}\n"
    )

    done = _agent(installed, python38, "-c", str(config), "enroll", cwd=tmp_path)

    assert done.returncode == EXIT_OK, done.stderr
    token = next(w for w in done.stdout.split() if w.startswith("certdrop-agent-v1:"))
    assert parse_enrollment_token(token).agent_id == "nas-b"
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "keys").iterdir()}
    assert modes == {0o600}


def test_run_once_from_the_bundle_installs_into_dsm_then_finds_nothing_to_do(
    installed, python38, lab
):
    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    config = str(lab.config_path)

    first = _agent(installed, python38, "-c", config, "run", "--once", cwd=lab.root)
    second = _agent(installed, python38, "-c", config, "run", "--once", cwd=lab.root)

    assert first.returncode == EXIT_OK, first.stderr
    assert f"installed: {SITE}" in first.stdout
    assert lab.served() == fingerprint(plaintext)
    assert lab.state.sites[SITE].version == 1
    assert second.returncode == EXIT_OK, second.stderr
    assert lab.imports() == 1


def test_run_once_from_the_bundle_reads_s3_with_its_credentials_file_and_reports_back(
    installed, python38, lab
):
    pytest.importorskip("moto", reason="moto (S3 server) is not installed for this Python")
    from lab.moto import REGION, MotoServer, fake_aws_env

    plaintext = lab.plaintext(version=1)
    lab.publish(plaintext)
    credentials = lab.root / "agent" / "aws-creds"
    credentials.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = x\n")
    credentials.chmod(0o600)
    with fake_aws_env(), MotoServer() as moto:
        bucket, s3 = moto.create_bucket(), moto.client("s3")
        for path in sorted(p for p in lab.store.rglob("*") if p.is_file()):
            key = f"certdrop/{path.relative_to(lab.store).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        lab.config_path.write_text(
            lab.config_path.read_text().replace(
                f"url = file://{lab.store}",
                f"url = s3://{bucket}/certdrop\nregion = {REGION}\n"
                f"endpoint_url = {moto.endpoint_url}\ncredentials_file = aws-creds",
            )
        )

        config = str(lab.config_path)
        done = _agent(installed, python38, "-c", config, "run", "--once", cwd=lab.root)
        status_key = f"certdrop/agents/{lab.agent_id}/status.json"
        status = s3.get_object(Bucket=bucket, Key=status_key)["Body"].read().decode()

    assert done.returncode == EXIT_OK, done.stderr
    assert lab.served() == fingerprint(plaintext)
    assert SITE in status


def _elf(path: Path, machine: int, tail: bytes = b"") -> None:
    # e_ident: magic, 64-bit, little-endian, version 1; then e_type 3 (shared) and e_machine
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little")
    path.write_bytes(header + machine.to_bytes(2, "little") + tail)


def test_the_native_check_names_each_library_that_would_not_load(tmp_path):
    checks = _checks()
    _elf(tmp_path / "wrong_arch.abi3.so", 62)
    _elf(tmp_path / "new_glibc.abi3.so", 183, b"GLIBC_2.17\0GLIBC_2.28\0")
    _elf(tmp_path / "_ext.cpython-311-aarch64-linux-gnu.so", 183)
    _elf(tmp_path / "fine.abi3.so", 183, b"GLIBC_2.17\0")

    with pytest.raises(checks.NativeCodeError) as caught:
        checks.check_native(tmp_path, "aarch64", "3.8.18", max_glibc=(2, 26))

    problems = "\n".join(caught.value.problems)
    assert "wrong_arch.abi3.so is for x86_64, not aarch64" in problems
    assert "new_glibc.abi3.so needs GLIBC_2.28" in problems
    assert "_ext.cpython-311-aarch64-linux-gnu.so" in problems
    assert "fine" not in problems
