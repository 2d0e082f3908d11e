"""`certdrop-agent join` as README's DSM guide runs it: the folder root makes for it, and a store
that refuses the invitation's credentials."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent import cycle, join
from nas_agent.cli import main
from nas_agent.enrollment import issuer_key_line
from nas_agent.invite import Invitation
from tests.agent.source_servers import FakeS3

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _line(source: dict[str, str]) -> str:
    return Invitation(
        agent_id="nas-01",
        issuer_key_line=issuer_key_line(ed25519.Ed25519PrivateKey.generate().public_key()),
        sites={"example": "example.com"},
        source=source,
        secret=os.urandom(32),
        expires_at=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7),
    ).line()


def _join(line: str, folder: Path, password_file: Path) -> int:
    password_file.write_text("pw\n")
    password_file.chmod(0o600)
    return main(
        ["join", line, "--dir", str(folder), "--dsm-user", "certdrop",
         "--dsm-password-file", str(password_file)]
    )  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "store").mkdir()
    return tmp_path / "store"


def test_join_makes_a_folder_root_left_0755_the_agents_alone(tmp_path, store, capsys):
    folder = tmp_path / "certdrop"
    folder.mkdir()
    folder.chmod(0o755)  # `mkdir -p /volume1/certdrop` in the guide's root shell

    code = _join(_line({"url": store.as_uri()}), folder, tmp_path / "pw")

    assert code == cycle.EXIT_OK, capsys.readouterr().err
    assert _mode(folder) == 0o700 and _mode(folder / "keys") == 0o700


def test_a_folder_join_cannot_write_is_exit_2_naming_the_chown(
    tmp_path, store, capsys, monkeypatch
):
    """From an independent review, failing before the fix: the PermissionError went up as a
    traceback (exit 1, "a bug")."""
    folder = tmp_path / "certdrop"

    def refused(path: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(path, "keys"))

    monkeypatch.setattr(join, "make_private_dirs", refused)

    code = _join(_line({"url": store.as_uri()}), folder, tmp_path / "pw")

    err = capsys.readouterr().err
    assert code == cycle.EXIT_CONFIG, err
    assert f"--dir {folder}" in err and f"chown -R {join._user_name()} {folder}" in err
    assert "Traceback" not in err


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="certdrop-join-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _join_as_nobody(line: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         sys.executable, "-m", "nas_agent.cli", "join", "--dir", str(folder),
         "--dsm-user", "certdrop"],
        input=line + "\n", capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO),
             "CERTDROP_DSM_PASSWORD": "pw", "HOME": "/nonexistent"},
        check=False,
    )  # fmt: skip


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root (and setpriv) to act as the guide's two users",
)
def test_join_as_the_agents_user_into_the_folder_root_made_as_the_guide_says(shared_tmp):
    """From an independent review, failing before the fix: README's steps 5 and 6 had root make
    the folder and the agent's user join into it, which ended in a traceback (exit 1)."""
    probe = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         sys.executable, "-c", "import cryptography"],
        capture_output=True, cwd="/", check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("this Python cannot run as another user (installed in root's home)")
    store = shared_tmp / "store"
    (store / "agents" / "nas-01").mkdir(parents=True)
    os.chmod(store / "agents" / "nas-01", 0o777)
    line = _line({"url": store.as_uri()})
    folder = shared_tmp / "volume1" / "certdrop"
    folder.mkdir(parents=True)  # step 5 in the root shell: `mkdir -p /volume1/certdrop`
    folder.chmod(0o755)

    without_chown = _join_as_nobody(line, folder)
    os.chown(folder, NOBODY, -1)  # step 5 as README now has it: chown, then chmod 700
    folder.chmod(0o700)
    as_the_guide_says = _join_as_nobody(line, folder)

    assert "Traceback" not in without_chown.stderr, without_chown.stderr[-1500:]
    assert without_chown.returncode == cycle.EXIT_CONFIG
    assert f"chown -R nobody {folder}" in without_chown.stderr
    assert as_the_guide_says.returncode == cycle.EXIT_OK, as_the_guide_says.stderr
    assert (folder / "agent.conf").stat().st_uid == NOBODY


@pytest.mark.parametrize(
    "code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed"]
)
def test_join_against_an_s3_store_that_refuses_its_credentials_is_exit_5_not_read_only(
    tmp_path, capsys, code
):
    """From an independent review, failing before the fix: S3 refusing the line's credentials
    read as a read-only store, so join printed the enrollment "for the operator" and exited 0."""
    message = "The AWS Access Key Id you provided does not exist in our records."
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()

    def refuse(handler: Any) -> None:
        handler.send_response(403)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with FakeS3(refuse) as s3:
        line = _line(
            {"url": "s3://certdrop/prod", "region": "us-east-1", "endpoint_url": s3.url,
             "access_key_id": "AKIAWRONG", "secret_access_key": "not-the-secret"}
        )  # fmt: skip
        exit_code = _join(line, tmp_path / "nas", tmp_path / "pw")

    out, err = capsys.readouterr()
    assert exit_code == cycle.EXIT_SOURCE, err
    assert "read-only" not in out
    assert code in err and message in err
    assert "not-the-secret" not in out + err
