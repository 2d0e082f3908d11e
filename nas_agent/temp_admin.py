"""Temp-admin mode: the agent, running as root on the NAS, logs in as a throw-away administrator.

The way acme.sh's SYNO_USE_TEMP_ADMIN does it (reference §8.1, case 36), with DSM's own tools:

    synouser --del sc-certdrop-tmp            (a leftover from a killed run; errors ignored)
    synouser --add sc-certdrop-tmp <random 16> "" 0 "" 0
    synogroup --memberadd administrators sc-certdrop-tmp
        or, where only --member exists (DSM 6): --member administrators <every member> <user>
    [journal otp_enforce_option; -> none]  login  [restored; journal removed]
    ... the installs ..., logout
    synouser --del sc-certdrop-tmp            (on every path once the user exists)

No password is stored anywhere: each run makes a new one and forgets it. Only a local DSM is
accepted, because the account and the 2FA switch are on the machine the tools run on.

DSM's enforced 2FA is lifted for the login request alone. Its value is first written to a 0600
journal in the agent's state directory, so a run killed inside that window (SIGKILL skips every
`finally`) is undone by the next run, at its start (`TempAdmin.recover`) and before any new
lifting: the journal's value, not the lifted one the killed run left, is the one to put back.

The password is on synouser's command line, where any local user can read it in /proc while
synouser runs: DSM's tools take it no other way (neither stdin nor a file: Synology's CLI
Administrator Guide, reference §8.1). So the window is kept to what it must be: a random
16-character password, made for one run, on argv for the one `synouser --add` call, and
worthless once the account is deleted at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import string
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Iterator

from nas_agent._atomic import write_atomic
from nas_agent.errors import TempAdminError

_log = logging.getLogger(__name__)

TEMP_ADMIN_USER = "sc-certdrop-tmp"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_GROUP = "administrators"
_SYNOINFO = "/etc/synoinfo.conf"
_OTP_KEY = "otp_enforce_option"
OTP_JOURNAL_FILE = "dsm-otp-enforce.journal"  # in the agent's state directory
_ALPHABET = string.ascii_letters + string.digits
_TIMEOUT = 120.0  # seconds per tool call; they are local and quick unless DSM hangs
_MEMBER_LINE = re.compile(r"^\s*(?:\d+\s*:)?\s*\[(.+)\]\s*$")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def new_password() -> str:
    """16 random letters and digits, as acme.sh makes them: no quoting trouble in an argv."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


@dataclass(frozen=True)
class TempAdmin:
    """How the tools are run and where passwords come from (tests inject both)."""

    run: Runner = subprocess.run
    password_factory: Callable[[], str] = new_password

    def user(self, host: str) -> contextlib.AbstractContextManager:
        return temporary_admin(host, run=self.run, password_factory=self.password_factory)

    def login_window(self, journal: str) -> contextlib.AbstractContextManager:
        return otp_enforcement_lifted(journal, run=self.run)

    def recover(self, journal: str) -> None:
        """At a run's start: put back DSM's 2FA policy a killed run left lifted (`journal`
        exists). Runs no tool otherwise; a failure is logged and tried again next time."""
        if not os.path.exists(journal):
            return
        try:
            _restore_journaled(_Tools(self.run), journal)
        except TempAdminError as exc:
            _log.error("DSM's 2FA policy, left lifted by an earlier run, is still off: %s", exc)


@contextlib.contextmanager
def temporary_admin(
    host: str, *, run: Runner = subprocess.run, password_factory: Callable[[], str] = new_password
) -> Iterator[Credentials]:
    """A fresh administrator account for the block, deleted when it ends, however it ends.

    Raises TempAdminError when `host` is not local, the tools are missing, this is not root,
    or creating the account or its membership fails (the account is deleted first then).
    """
    if host.lower().strip("[]") not in LOCAL_HOSTS:
        raise TempAdminError(
            f"DSM host {host!r} is not local; the temporary account can only be made on this "
            f"machine, so the DSM URL must name {', '.join(LOCAL_HOSTS)}"
        )
    tools = _Tools(run)
    tools.check_root()
    password = password_factory()
    tools.call("synouser", "--del", TEMP_ADMIN_USER, check=False)
    # On argv: synouser takes the password no other way (see the module docstring).
    tools.call("synouser", "--add", TEMP_ADMIN_USER, password, "", "0", "", "0", secret=password)
    try:
        _make_admin(tools)
        _log.info("temporary DSM administrator %s created", TEMP_ADMIN_USER)
        yield Credentials(TEMP_ADMIN_USER, password)
    except BaseException:
        _delete(tools, raising=False)  # the error that got here is the one to report
        raise
    _delete(tools, raising=True)


@contextlib.contextmanager
def otp_enforcement_lifted(journal: str, *, run: Runner = subprocess.run) -> Iterator[None]:
    """DSM's enforced 2FA switched off for the block (wrap the login request alone) and put
    back right after it, also when the block raises; a no-op when nothing is enforced.

    The value is in the 0600 file `journal` from before it is lifted until it is back. A
    journal already there is a killed run's: its value is put back first, and is the baseline.
    """
    tools = _Tools(run)
    _restore_journaled(tools, journal)
    old = tools.call("synogetkeyvalue", _SYNOINFO, _OTP_KEY, check=False).stdout.strip()
    if not old or old == "none":
        yield
        return
    if not _restorable(old):
        raise TempAdminError(f"{_OTP_KEY} is {old[:64]!r}, not a value it can be restored to")
    _write_journal(journal, old)
    tools.call("synosetkeyvalue", _SYNOINFO, _OTP_KEY, "none")
    _log.info("%s was %r: set to none for the login", _OTP_KEY, old)
    try:
        yield
    finally:
        try:
            tools.call("synosetkeyvalue", _SYNOINFO, _OTP_KEY, old)
        except TempAdminError:
            _log.error(
                "%s could not be restored to %r: DSM's 2FA policy is off until the next run"
                " restores it from %s",
                _OTP_KEY,
                old,
                journal,
            )
            raise
        _remove_journal(journal)
        _log.info("%s restored to %r", _OTP_KEY, old)


def _write_journal(journal: str, value: str) -> None:
    record = {"file": _SYNOINFO, "key": _OTP_KEY, "value": value}
    try:
        write_atomic(journal, json.dumps(record).encode("ascii"), mode=0o600)
    except OSError as exc:
        raise TempAdminError(
            f"cannot write {journal} ({exc.strerror}); DSM's 2FA policy was not lifted"
        ) from exc


def _read_journal(journal: str) -> str | None:
    """The value a killed run lifted; None without a journal."""
    try:
        with open(journal, encoding="ascii") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TempAdminError(
            f"{journal} cannot be read ({exc}): check {_OTP_KEY} in {_SYNOINFO} (DSM: Control"
            " Panel > Security > Account, 2-factor authentication), then delete the file"
        ) from exc
    value = record.get("value") if isinstance(record, dict) else None
    if not isinstance(value, str) or not _restorable(value):
        raise TempAdminError(
            f"{journal} holds no {_OTP_KEY} value: check the setting in {_SYNOINFO} (DSM:"
            " Control Panel > Security > Account, 2-factor authentication), then delete the file"
        )
    return value


def _restorable(value: str) -> bool:
    """A value a tool can be given back as one argument (what synogetkeyvalue printed)."""
    return 0 < len(value) <= 256 and value.isprintable()


def _restore_journaled(tools: _Tools, journal: str) -> None:
    value = _read_journal(journal)
    if value is None:
        return
    tools.call("synosetkeyvalue", _SYNOINFO, _OTP_KEY, value)
    _remove_journal(journal)
    _log.warning(
        "%s restored to %r: a run killed while it was lifted had left it at none",
        _OTP_KEY,
        value,
    )


def _remove_journal(journal: str) -> None:
    try:
        os.unlink(journal)
    except FileNotFoundError:
        pass
    except OSError as exc:
        # Harmless but for a needless restore next time; the policy itself is back.
        _log.warning("%s could not be removed: %s", journal, exc.strerror)


def _make_admin(tools: _Tools) -> None:
    usage = tools.call("synogroup", "--help", check=False)
    offered = usage.stdout + usage.stderr
    if "--memberadd " in offered:
        tools.call("synogroup", "--memberadd", _GROUP, TEMP_ADMIN_USER)
        return
    if "--member " not in offered:
        raise TempAdminError("synogroup offers neither --memberadd nor --member")
    # DSM 6: --member replaces the whole list, so it must name every current member.
    listing = tools.call("synogroup", "--get", _GROUP).stdout
    members = _members(listing)
    if not members:
        raise TempAdminError(
            f"could not read the members of {_GROUP} from synogroup --get; not calling "
            "synogroup --member, which would replace them"
        )
    others = [name for name in members if name != TEMP_ADMIN_USER]
    tools.call("synogroup", "--member", _GROUP, *others, TEMP_ADMIN_USER)


def _members(listing: str) -> list[str]:
    """The names in square brackets on the lines after "Group Members"."""
    lines = listing.splitlines()
    starts = [i for i, line in enumerate(lines) if "Group Members" in line]
    if not starts:
        return []
    found = (_MEMBER_LINE.match(line) for line in lines[starts[0] + 1 :])
    return [match.group(1) for match in found if match]


def _delete(tools: _Tools, *, raising: bool) -> None:
    try:
        tools.call("synouser", "--del", TEMP_ADMIN_USER)
    except TempAdminError as exc:
        _log.error("the temporary DSM administrator %s was not deleted: %s", TEMP_ADMIN_USER, exc)
        if raising:
            raise
        return
    _log.info("temporary DSM administrator %s deleted", TEMP_ADMIN_USER)


class _Tools:
    def __init__(self, run: Runner):
        self._run = run

    def check_root(self) -> None:
        # What acme.sh checks: the tools refuse non-root callers with this text.
        usage = self.call("synouser", "--help", check=False)
        if "Permission denied" in usage.stdout + usage.stderr:
            raise TempAdminError("DSM's tools answer 'Permission denied': run the agent as root")

    def call(
        self, *argv: str, check: bool = True, secret: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        shown = [("***" if secret is not None and arg == secret else arg) for arg in argv]
        try:
            done = self._run(
                list(argv), capture_output=True, text=True, timeout=_TIMEOUT, check=False
            )
        except FileNotFoundError as exc:
            raise TempAdminError(
                f"{argv[0]} not found: temp_admin needs DSM's tools on PATH", shown
            ) from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise TempAdminError(f"{argv[0]} could not run: {exc}", shown) from exc
        if check and done.returncode != 0:
            output = (done.stderr or done.stdout or "").strip().replace(secret or "\0", "***")
            raise TempAdminError(
                f"{argv[0]} failed with exit code {done.returncode}: {output[:200]}", shown
            )
        return done
