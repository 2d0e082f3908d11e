"""One foreground server process: started in its own process group, logged to a file, reaped."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

_S = TypeVar("_S", bound="Service")


class ServiceError(RuntimeError):
    """A test service failed to start; the message carries the tail of its log."""

    def __init__(self, service: str, reason: str, log_tail: str = "") -> None:
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
        text = f"{service}: {reason}"
        if log_tail:
            text += f"\n--- last lines of its output ---\n{log_tail}"
        super().__init__(text)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServiceProcess:
    """A child process whose stdout and stderr go to `log_path`."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str]):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            # A new session gives the child its own process group, so stop() reaches any helper
            # it forks, and Ctrl-C in the test terminal does not race our own shutdown.
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        # Fixture teardown normally stops us; this covers an interpreter exiting without it.
        atexit.register(self.stop)

    def check_alive(self) -> None:
        """Raise ServiceError with the log tail if the process has exited."""
        if self._proc is None:
            raise ServiceError(self.name, "not started")
        code = self._proc.poll()
        if code is not None:
            raise ServiceError(self.name, f"exited with status {code}", tail(self.log_path))

    def failure(self, reason: str) -> ServiceError:
        return ServiceError(self.name, reason, tail(self.log_path))

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        # Signal only while the leader is unreaped: until then its pid, and so the group id,
        # cannot belong to anyone else.
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a service: ours without proxy settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra or {})
    return env


class Service:
    """Start-and-wait, stop, and `with` for a launcher that runs one ServiceProcess and polls
    `_ready` until it serves."""

    startup_seconds: float | None = None
    _process: ServiceProcess | None = None

    def _run(self, process: ServiceProcess, timeout: float, what: str) -> None:
        """Starts `process` and waits for `_ready`; on failure stops it and raises ServiceError
        with the tail of its log."""
        from .ports import wait_until

        began = time.monotonic()
        process.start()
        self._process = process
        try:
            wait_until(self._ready, timeout, what)
        except TimeoutError as exc:
            self.stop()
            raise process.failure(str(exc)) from exc
        except ServiceError:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def _ready(self) -> bool:
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the service's process has used so far, from /proc: what a
        benchmark charges the CA or the DNS server per certificate."""
        process = self._process
        if process is None or process._proc is None:
            raise RuntimeError("the service is not running")
        stat = Path(f"/proc/{process._proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError
