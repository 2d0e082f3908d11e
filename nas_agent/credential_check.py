"""When the agent checks that DSM still accepts its login, even with nothing to install.

A certificate may be published weeks after the agent last logged in; a password changed on DSM
in the meantime would only show up then. So a run that does not log in to install anything logs
in and out once a day, and at once after agent.conf, the DSM password file or the remembered
2FA device file changed. A run that logged in to install counts as the check.

Not more often: logins are slow, and every refused one counts towards DSM's auto-block, so a
refused login is checked again only a day later or after one of those changes. Only a failure
that may pass by itself (DSM unreachable) is checked again on the next run.

`check_due` is a pure decision over the state's `DsmCheck`; `credentials_basis` is what that
check vouched for.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta

from nas_agent._encoding import canonical_json
from nas_agent.config import AgentConfig
from nas_agent.config.digest import config_digest
from nas_agent.state import DsmCheck

CHECK_EVERY = timedelta(days=1)


def credentials_basis(config: AgentConfig) -> str:
    """The configuration and the DSM credential files as they stand: their size, modification
    time and inode only (the content is a secret and is not read for this). A password given by
    `password_env` is not covered: a change of it shows at the next daily check."""
    dsm = config.dsm
    files = {"password_file": dsm.password_file, "device_id_file": dsm.device_id_file}
    document = {
        "config": config_digest(config),
        "files": {key: _file_stamp(path) for key, path in files.items()},
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


def check_due(last: DsmCheck | None, basis: str, now: datetime) -> bool:
    """Whether this run should log in to DSM only to check the credentials."""
    if last is None or last.basis != basis:
        return True
    if last.error is not None and last.transient:
        return True
    # A clock set back is no reason to wait longer than a day.
    return now < last.at or now - last.at >= CHECK_EVERY


def next_check(last: DsmCheck) -> datetime:
    """When the next check is due unless something changes first."""
    return last.at + CHECK_EVERY


def _file_stamp(path: str | None) -> list[int] | None:
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]
