"""DSM 7's Package Center as a package sees it, to run an .spk's lifecycle on this machine.

Under `root` (standing for /), it makes the folders DSM makes for a package, unpacks
package.tgz where DSM does, and runs the package's scripts in DSM's order, with DSM's
environment (SYNOPKG_*, the wizard's answers as variables) and as the package's own user:

    root/var/packages/<package>/   INFO, scripts/, conf/, WIZARD_UIFILES/ (root's)
        target -> root/volume1/@appstore/<package>   package.tgz; replaced on upgrade
        var    -> root/volume1/@appdata/<package>    permanent data; DSM never removes it
        tmp    -> root/volume1/@apptemp/<package>    removed on upgrade and uninstall
        home   -> root/volume1/@apphome/<package>    0700
    root/volume1/@tmp/pkginstall/  the .spk being installed: its preinst and preupgrade run here

From the Developer Guide: "FHS" (the folders, their modes and when DSM removes them),
"privilege" (the folders and every script belong to the package's user), "scripts" (which
failures stop DSM), "Script Environment Variables", "WIZARD_UIFILES" (which scripts see which
wizard). The order of the scripts within an upgrade and an uninstall, which the guide does not
spell out, is the one MODS SPK Tracer recorded on DSM (github.com/vletroye/SynoPackages wiki):
upgrade: old `stop`, new preupgrade, old preuninst, old postuninst, new preinst, new files,
new postinst, new postupgrade, new `start`; uninstall: `stop`, preuninst, files removed,
postuninst. Needs root (to be DSM, and to switch to the package's user).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.spk.spk_file import Spk, info_fields

DSM_VERSION = {"MAJOR": "7", "MINOR": "2", "BUILD": "72806"}  # DSM 7.2.2
PLATFORM = "geminilake"  # SYNOPKG_DSM_ARCH: the unit's platform (Appendix A)
STATUS_RUNNING, STATUS_STOPPED = 0, 3  # start-stop-status status


class ScriptFailed(AssertionError):
    """A script DSM would stop at exited non-zero; `messages` is what Package Center shows."""

    def __init__(self, script: str, code: int, messages: str, output: str):
        super().__init__(f"{script} exited {code}: {messages}{output}")
        self.messages = messages


@dataclass(frozen=True)
class PackageUser:
    name: str
    uid: int
    gid: int


def package_user(name: str) -> PackageUser:
    entry = pwd.getpwnam(name)
    return PackageUser(name, entry.pw_uid, entry.pw_gid)


class PackageCenter:
    """One package's life on one emulated NAS. `python` is the interpreter standing in for DSM's
    /usr/bin/python3 (handed to the scripts as CERTDROP_PYTHON, which the launcher honours)."""

    def __init__(self, root: Path, package: str, user: PackageUser, python: str):
        self.root, self.package, self.user, self.python = root, package, user, python
        self.home = root / "var" / "packages" / package
        volume = root / "volume1"
        self.folders = {
            "target": volume / "@appstore" / package,
            "var": volume / "@appdata" / package,
            "tmp": volume / "@apptemp" / package,
            "home": volume / "@apphome" / package,
        }
        self.incoming = volume / "@tmp" / "pkginstall"
        self.messages: list[str] = []  # what Package Center showed, script by script
        self.version: str | None = None

    @property
    def var(self) -> Path:
        return self.home / "var"

    @property
    def log(self) -> Path:
        return self.var / "certdrop-agent.log"

    # --- what the user does in Package Center ------------------------------------------------

    def install(self, spk: Spk, wizard: dict[str, str]) -> None:
        info = self._receive(spk)
        self._script(self.incoming / "scripts" / "preinst", "INSTALL", info, wizard)
        self._make_folders()
        self._place(info)
        self._script(self.home / "scripts" / "postinst", "INSTALL", info, wizard)
        self.start()

    def upgrade(self, spk: Spk, wizard: dict[str, str] | None = None) -> None:
        wizard = wizard or {}  # upgrade_uifile's answers: preupgrade to postupgrade see them
        old = self.version
        # Stopped first and started after only when it runs ("scripts", Execution Order,
        # Upgrade: "if it has been started" / "if it was started before being upgraded").
        running = self.status() == STATUS_RUNNING
        if running:
            self.stop()
        info = self._receive(spk)
        extra = {"SYNOPKG_OLD_PKGVER": old or ""}
        scripts, new_scripts = self.home / "scripts", self.incoming / "scripts"
        self._script(new_scripts / "preupgrade", "UPGRADE", info, wizard, extra)
        self._script(scripts / "preuninst", "UPGRADE", info, wizard, extra)
        self._script(scripts / "postuninst", "UPGRADE", info, wizard, extra)
        self._script(new_scripts / "preinst", "UPGRADE", info, wizard, extra)
        self._place(info)
        self._script(scripts / "postinst", "UPGRADE", info, wizard, extra)
        self._script(scripts / "postupgrade", "UPGRADE", info, wizard, extra)
        if running:
            self.start()

    def uninstall(self, wizard: dict[str, str]) -> None:
        info = info_fields((self.home / "INFO").read_text())
        self.stop()
        self._script(self.home / "scripts" / "preuninst", "UNINSTALL", info, wizard)
        for name in ("target", "tmp"):
            shutil.rmtree(self.folders[name])
        self._script(self.home / "scripts" / "postuninst", "UNINSTALL", info, wizard)
        shutil.rmtree(self.home)
        self.version = None

    # prestart and prestop run first unless INFO says precheckstartstop="no" (its default is
    # "yes": "INFO optional fields"); a non-zero exit cancels the start or stop.
    def start(self) -> None:
        if self._prechecks():
            self._control("prestart", "START", check=True)
        self._control("start", "START", check=True)

    def stop(self) -> None:
        if self._prechecks():
            self._control("prestop", "STOP", check=True)
        self._control("stop", "STOP", check=True)

    def _prechecks(self) -> bool:
        info = info_fields((self.home / "INFO").read_text())
        return info.get("precheckstartstop", "yes") != "no"

    def status(self) -> int:
        return self._control("status", "", check=False)

    # --- what DSM does around the scripts ----------------------------------------------------

    def _receive(self, spk: Spk) -> dict[str, str]:
        """The .spk unpacked for its preinst, once Package Center accepted its INFO."""
        shutil.rmtree(self.incoming, ignore_errors=True)
        self.incoming.mkdir(parents=True)
        with tarfile.open(spk.path, "r:") as tar:
            tar.extractall(self.incoming, filter="data")
        info = info_fields((self.incoming / "INFO").read_text())
        assert info["package"] == self.package
        assert "x86_64" in info["arch"].split(), "Package Center refuses another arch's package"
        self._give(self.incoming)
        return info

    def _make_folders(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        for name, folder in self.folders.items():
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(exist_ok=True)  # var may be there already: an uninstall kept it
            os.chown(folder, self.user.uid, self.user.gid)
            folder.chmod(0o700 if name == "home" else 0o755)
            link = self.home / name
            if not link.is_symlink():
                link.symlink_to(folder)

    def _place(self, info: dict[str, str]) -> None:
        """package.tgz into a fresh target; INFO, scripts, conf and wizards beside it."""
        for name in ("target", "tmp"):
            shutil.rmtree(self.folders[name], ignore_errors=True)
        self._make_folders()
        with tarfile.open(self.incoming / "package.tgz", "r:gz") as tar:
            tar.extractall(self.folders["target"], filter="data")
        self._give(self.folders["target"])
        for name in ("scripts", "conf", "WIZARD_UIFILES"):
            shutil.rmtree(self.home / name, ignore_errors=True)
            shutil.copytree(self.incoming / name, self.home / name, symlinks=True)
        shutil.copy2(self.incoming / "INFO", self.home / "INFO")
        self.version = info["version"]

    def _give(self, folder: Path) -> None:
        """Everything in `folder` to the package's user ("privilege")."""
        os.chown(folder, self.user.uid, self.user.gid)
        for path in folder.rglob("*"):
            os.chown(path, self.user.uid, self.user.gid, follow_symlinks=False)

    def _environment(self, info: dict[str, str], status: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.home / "home"),
            "LANG": "C",
            "SYNOPKG_PKGNAME": info["package"],
            "SYNOPKG_PKGVER": info["version"],
            "SYNOPKG_PKGDEST": str(self.home / "target"),
            "SYNOPKG_PKGDEST_VOL": str(self.root / "volume1"),
            "SYNOPKG_PKGVAR": str(self.home / "var"),
            "SYNOPKG_PKGTMP": str(self.home / "tmp"),
            "SYNOPKG_PKGHOME": str(self.home / "home"),
            "SYNOPKG_PKGINST_TEMP_DIR": str(self.incoming / "package"),
            "SYNOPKG_PKG_STATUS": status,
            "SYNOPKG_DSM_LANGUAGE": "enu",
            "SYNOPKG_DSM_ARCH": PLATFORM,
            "CERTDROP_PYTHON": self.python,
        }
        env.update({f"SYNOPKG_DSM_VERSION_{k}": v for k, v in DSM_VERSION.items()})
        return env

    def _run(self, script: Path, args: list[str], env: dict[str, str]):
        messages = self.root / "volume1" / "@tmp" / "synopkg-messages"
        messages.write_text("")
        os.chown(messages, self.user.uid, self.user.gid)
        env = {**env, "SYNOPKG_TEMP_LOGFILE": str(messages)}
        done = subprocess.run(
            [str(script), *args],
            env=env,
            cwd="/",
            user=self.user.uid,
            group=self.user.gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        said = messages.read_text()
        if said:
            self.messages.append(said)
        return done, said

    def _script(
        self,
        script: Path,
        status: str,
        info: dict[str, str],
        wizard: dict[str, str],
        extra: dict[str, str] | None = None,
    ) -> None:
        env = {**self._environment(info, status), **wizard, **(extra or {})}
        done, said = self._run(script, [], env)
        if done.returncode != 0:
            raise ScriptFailed(script.name, done.returncode, said, done.stdout + done.stderr)

    def _control(self, action: str, status: str, *, check: bool) -> int:
        info = info_fields((self.home / "INFO").read_text())
        script = self.home / "scripts" / "start-stop-status"
        done, said = self._run(script, [action], self._environment(info, status))
        if check and done.returncode != 0:
            raise ScriptFailed(f"start-stop-status {action}", done.returncode, said, done.stderr)
        return done.returncode

    # --- what a test looks at ----------------------------------------------------------------

    def processes(self) -> dict[int, str]:
        """pid -> command line of every live process of the package's user."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields["State"].split()[0] == "Z" or not cmdline:
                continue  # ended: exiting (its memory, so its command line, gone) or a zombie
            if int(fields["Uid"].split()[0]) == self.user.uid:
                found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        return found

    def close(self) -> None:
        """Stop the service if it is installed; end whatever the package's user still runs."""
        if (self.home / "scripts").is_dir():
            self._control("stop", "STOP", check=False)
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
