"""Any DNS you can script: runs an operator's command to add or remove one TXT value.

The command is run as `command + [action, fqdn, value]`, action being "add" or "remove", with the
same facts in the environment: CERTDROP_ACTION, CERTDROP_FQDN, CERTDROP_ZONE, CERTDROP_VALUE and
CERTDROP_TTL, plus the `env` and `secret_env` tables. The script must keep the provider contract:
add beside other values at the name, remove only this value, succeed when there is nothing to do.

Exit 0 is success. Exit 75 (EX_TEMPFAIL from sysexits.h) reports a failure worth retrying later;
any other exit status is terminal. A command still running at `timeout` is killed with its whole
process group and counts as transient. The error names the exit status and quotes the last lines
of stderr, with the values of `secret_env` blanked out.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from cloud.dns01.providers.base import InvalidSetting, ProviderInfo, Setting, TxtRecord
from cloud.errors import DnsProviderError

log = logging.getLogger(__name__)

NAME = "exec"
EX_TEMPFAIL = 75
TIMEOUT = 60.0  # seconds before the command is killed
_STDERR_LINES = 5


class ExecProvider:
    def __init__(
        self,
        command: Sequence[str],
        *,
        timeout: float = TIMEOUT,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
    ) -> None:
        self._command = list(command)
        self._timeout = timeout
        self._env = {**(env or {}), **(secret_env or {})}
        self._secrets = [v for v in (secret_env or {}).values() if v]

    def add_txt(self, record: TxtRecord) -> None:
        self._run("add", record)

    def remove_txt(self, record: TxtRecord) -> None:
        self._run("remove", record)

    def _run(self, action: str, record: TxtRecord) -> None:
        argv = [*self._command, action, record.fqdn, record.value]
        env = {
            **os.environ,
            **self._env,
            "CERTDROP_ACTION": action,
            "CERTDROP_FQDN": record.fqdn,
            "CERTDROP_ZONE": record.zone,
            "CERTDROP_VALUE": record.value,
            "CERTDROP_TTL": str(record.ttl),
        }
        try:
            # A session of its own, so a timeout can kill whatever the command started too.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise DnsProviderError(
                NAME, record.fqdn, f"cannot run {self._command[0]}: {exc.strerror}"
            ) from exc
        try:
            _, stderr = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise DnsProviderError(
                NAME,
                record.fqdn,
                f"{action} command still running after {self._timeout:g} s; killed",
                transient=True,
            ) from exc
        if proc.returncode == 0:
            log.info("exec: %s of a TXT value at %s done", action, record.fqdn)
            return
        raise DnsProviderError(
            NAME,
            record.fqdn,
            f"{action} command exited with status {proc.returncode}{self._tail(stderr)}",
            transient=proc.returncode == EX_TEMPFAIL,
        )

    def _tail(self, stderr: bytes) -> str:
        text = stderr.decode(errors="replace")
        for secret in self._secrets:
            text = text.replace(secret, "***")
        lines = [line for line in text.strip().splitlines() if line.strip()][-_STDERR_LINES:]
        return (": " + " | ".join(lines)) if lines else " (nothing on stderr)"


def _command(value: str | Sequence[Any]) -> tuple[str, ...]:
    """The argv of `command`: a list of strings, or one string split like a shell would."""
    try:
        argv = shlex.split(value) if isinstance(value, str) else list(value)
    except ValueError:  # an unclosed quote
        argv = []
    if not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidSetting(
            "must be a non-empty list of strings or a command line",
            'write command = ["/usr/local/bin/dns-hook", "--zone-file", "/etc/x"]',
        )
    return tuple(argv)


def _build(values: Mapping[str, Any]) -> ExecProvider:
    return ExecProvider(
        values["command"],
        timeout=values["timeout"],
        env=values.get("env"),
        secret_env=values.get("secret_env"),
    )


INFO = ProviderInfo(
    name=NAME,
    summary="runs your command: `command add|remove FQDN VALUE` (also in CERTDROP_* variables)",
    settings=(
        Setting(
            "command",
            "argv list (or one string split like a shell would)",
            kind=(list, str),
            parse=_command,
        ),
        Setting(
            "timeout",
            "seconds before the command is killed",
            required=False,
            kind=float,
            default=TIMEOUT,
        ),
        Setting("env", "extra environment variables for the command", required=False, kind=dict),
        Setting(
            "secret_env",
            "environment variables whose values are secret references (env:/file:)",
            required=False,
            secret=True,
            kind=dict,
        ),
    ),
    permissions="whatever the command needs; certdrop itself needs only permission to run it",
    build=_build,
)
