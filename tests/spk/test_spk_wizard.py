"""The install wizard's answers in the package's scripts: a join that failed leaves no setup an
install without a line would take for kept data, an empty line on a fresh NAS is refused before
anything is unpacked, the 2-step code stays off join's command line; and Package Center's upgrade
leaves a package its user stopped stopped.

From an independent review against Synology's DSM 7 Developer Guide
(help.synology.com/developer-guide: scripts.html, fhs.html, WIZARD_UIFILES_v2.html) and
SynoCommunity's spksrc; each test failed before its fix. Runs the package's real scripts from
the built .spk, as its own user (root is needed, as for test_spk_lifecycle.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent.enrollment import issuer_key_line
from nas_agent.invite import Invitation
from tests.spk.conftest import world_folder
from tests.spk.package_center import STATUS_RUNNING, STATUS_STOPPED, PackageCenter, ScriptFailed

DSM_URL = "https://127.0.0.1:5001"  # join contacts DSM only with an OTP


def _line(source: dict[str, str], agent_id: str = "nas-review") -> str:
    return Invitation(
        agent_id=agent_id,
        issuer_key_line=issuer_key_line(ed25519.Ed25519PrivateKey.generate().public_key()),
        sites={"example": "example.test"},
        source=source,
        secret=os.urandom(32),
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=7),
    ).line()


def _wizard(line: str, otp: str = "") -> dict[str, str]:
    return {
        "wizard_invite_line": line,
        "wizard_dsm_user": "certdrop" if line else "",
        "wizard_dsm_password": "s3cret" if line else "",
        "wizard_otp": otp,
        "wizard_dsm_url": DSM_URL,
    }


def _unreachable_s3_line() -> str:
    """A store whose enrollment post fails: nothing listens on 127.0.0.1:9."""
    return _line(
        {
            "url": "s3://bucket/prefix",
            "region": "us-east-1",
            "endpoint_url": "https://127.0.0.1:9",
            "access_key_id": "AKIDREVIEW",
            "secret_access_key": "review-secret",
        }
    )


@pytest.fixture
def file_store(the_package_user) -> Iterator[Path]:
    """A directory store the package's user may write (a folder anyone may enter)."""
    folder = world_folder("certdrop-store-")
    store = folder / "store"
    store.mkdir()
    os.chown(store, the_package_user.uid, the_package_user.gid)
    try:
        yield store
    finally:
        shutil.rmtree(folder)


# --- the package --------------------------------------------------------------------------------


def test_a_join_that_failed_in_postinst_is_not_taken_for_kept_data_by_the_next_blank_install(
    nas: PackageCenter, first_build
):
    """Guide, "scripts": a non-zero postinst leaves the package installed and "corrupted"; the
    user's way out is uninstall and install again. certdrop's uninstall wizard keeps the data by
    default and tells the user that, kept, "a later install ... carries on as the same agent,
    without a new invitation"; install_uifile says to leave the line empty exactly then.

    But `join` writes agent.conf, keys and dsm-password into $DATA *before* it posts the
    enrollment (nas_agent/join.py), and postinst leaves them there when the post fails. The blank
    reinstall then finds agent.conf, says "this NAS's earlier setup was kept and is used again"
    and starts a service for an agent whose enrollment never reached the store: the operator has
    nothing to approve, and nothing tells the NAS owner. Repro: install with a line whose store
    is unreachable (postinst exits 1), uninstall keeping data, install with the line empty: it
    succeeds and runs.
    """
    spk = first_build["x86_64"]
    with pytest.raises(ScriptFailed) as failed:
        nas.install(spk, _wizard(_unreachable_s3_line()))
    assert str(failed.value).startswith("postinst exited"), failed.value
    nas.uninstall({"wizard_keep_data": "true"})  # the wizard's default

    with pytest.raises(ScriptFailed):
        nas.install(spk, _wizard(""))  # a never-enrolled setup must not count as kept


def test_an_install_without_a_line_on_a_fresh_nas_stops_in_preinst_before_unpacking(
    nas: PackageCenter, first_build
):
    """Guide, "scripts": preinst "can be used to check conditions before installation ...
    Package installation will be aborted for non-zero returned value"; postinst's non-zero
    leaves the package installed with its status "corrupted". A malformed line is refused in
    preinst (test_spk_lifecycle checks that nothing is unpacked then), but an *empty* line on a
    NAS with no kept data passes preinst whenever the var link is not there yet (`[ ! -d "$VAR"
    ]` -> exit 0), so DSM unpacks the package and only postinst fails: a broken package the user
    must now uninstall. The kept data preinst looks for is in the folder DSM never removes, FHS
    "var ... -> /volume[N]/@appdata/[package_name]", remove timing "none"
    (help.synology.com/developer-guide/integrate_dsm/fhs.html), which preinst can check via
    SYNOPKG_PKGDEST_VOL even before the link exists. Repro: install on a fresh (emulated) NAS
    with the line empty: target/ is populated and postinst, not preinst, refuses.
    """
    with pytest.raises(ScriptFailed) as refused:
        nas.install(first_build["x86_64"], _wizard(""))

    assert str(refused.value).startswith("preinst exited"), refused.value
    assert not nas.folders["target"].exists() and not nas.home.exists()


def _postinst_with_stand_in(spk, tmp_path: Path, dsm_login_exit: int) -> tuple[int, str, Path]:
    """postinst run with the wizard's answers (a 2-step code among them) and a stand-in agent:
    `join` writes agent.conf and a key and says it posted the enrollment; `dsm-login` exits
    `dsm_login_exit`. Each call's arguments and $CERTDROP_DSM_OTP go to tmp_path/calls."""
    spk.unpack(tmp_path / "spk")
    target, var = tmp_path / "target", tmp_path / "var"
    target.mkdir()
    var.mkdir()
    calls = tmp_path / "calls"
    stub = target / "certdrop-agent"
    stub.write_text(
        "#!/bin/sh\n"
        f'printf "%s|otp=%s\\n" "$*" "$CERTDROP_DSM_OTP" >> "{calls}"\n'
        'case " $* " in\n'
        '  *" join "*) mkdir -p "$SYNOPKG_PKGVAR/agent/keys"\n'
        '    echo conf > "$SYNOPKG_PKGVAR/agent/agent.conf"\n'
        '    echo key > "$SYNOPKG_PKGVAR/agent/keys/agent.key"\n'
        '    echo "enrollment posted" ;;\n'
        f'  *" dsm-login "*) echo "DSM refused the code" >&2; exit {dsm_login_exit} ;;\n'
        "esac\n"
    )
    stub.chmod(0o755)
    messages = tmp_path / "messages"
    env = {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "SYNOPKG_PKGNAME": "certdrop-agent",
        "SYNOPKG_PKGVER": spk.info()["version"],
        "SYNOPKG_PKGDEST": str(target),
        "SYNOPKG_PKGVAR": str(var),
        "SYNOPKG_PKG_STATUS": "INSTALL",
        "SYNOPKG_TEMP_LOGFILE": str(messages),
        **_wizard("certdrop-invite-v1:AAAA", otp="493817"),
    }
    done = subprocess.run(
        [str(tmp_path / "spk" / "scripts" / "postinst")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    told = messages.read_text() if messages.exists() else ""
    return done.returncode, told + done.stderr, var


def test_postinst_keeps_the_2fa_code_off_every_command_line(first_build, tmp_path):
    """postinst's own rule ("The line holds secrets: it goes through join's environment, not
    its command line (ps)") and the password's (a 0600 file, never argv) were not applied to the
    wizard's 2-step code: `--otp "$wizard_otp"` put the live TOTP on join's argv, readable by
    every local user in /proc/<pid>/cmdline. Guide, "WIZARD_UIFILES": wizard answers reach the
    scripts as environment variables; the code now reaches the agent's DSM login that way."""
    code, _, _ = _postinst_with_stand_in(first_build["x86_64"], tmp_path, dsm_login_exit=0)

    assert code == 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("join ") and "dsm-login" in calls[1]
    assert not any(s in call.split("|")[0] for call in calls for s in ("493817", "s3cret"))
    assert "certdrop-invite-v1:AAAA" not in "".join(calls)
    assert calls[1].endswith("|otp=493817") and calls[0].endswith("|otp=")


def test_a_2fa_code_dsm_refuses_keeps_the_posted_enrollments_keys(first_build, tmp_path):
    """From a review of this change, failing before its fix: with the code refused after join
    had posted the enrollment, postinst took the join for a failed one and removed what it wrote,
    the agent's keys among them, while the enrollment naming them was in the store. The login
    is a step of its own now: refused, the setup stays, the package installs, and the message
    says to run dsm-login (each run meanwhile stops at DSM's login, exit 6)."""
    code, told, var = _postinst_with_stand_in(first_build["x86_64"], tmp_path, dsm_login_exit=6)

    assert code == 0
    assert (var / "agent" / "keys" / "agent.key").exists()
    assert "DSM did not take the 2-step code" in told and "dsm-login" in told


# --- the Package Center emulation ---------------------------------------------------------------


def test_the_emulated_upgrade_leaves_a_package_stopped_by_its_user_stopped(
    nas: PackageCenter, first_build, second_build, file_store
):
    """Guide, "scripts" > Execution Order > Upgrade: stop runs "if it has been started (old)",
    and start (11, 12) "if it was started before being upgraded (new)". PackageCenter.upgrade
    starts the package unconditionally, so a package the user had stopped comes back running
    after an emulated upgrade: the harness cannot notice a package whose upgrade depends on that
    start (or on a stop that real DSM skips). Repro: install, Stop, upgrade to build 2:
    status() is 0 (running) where DSM leaves it stopped.
    """
    nas.install(first_build["x86_64"], _wizard(_line({"url": file_store.as_uri()})))
    assert nas.status() == STATUS_RUNNING
    nas.stop()
    assert nas.status() == STATUS_STOPPED

    nas.upgrade(second_build["x86_64"])

    assert nas.status() == STATUS_STOPPED
