"""Removing a run's dns-01 values: a value whose removal fails with an error no provider
translated (a bug, a raw third-party exception) stops neither the removal of the others nor
replaces the error that led to the cleanup. Found by an independent review of the dns-01 layer
(a PowerDNS API answering 200 with HTML raised a raw JSONDecodeError); each failed before the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cloud.acme.order import Dns01Authorizer, Steps
from cloud.dns01.propagation import DnsCheckSettings
from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.solver import ChallengeJournal, Dns01Solver
from cloud.errors import DnsError, PropagationTimeout
from cloud.store.local import LocalStore

_NAME = "_acme-challenge.example.test."
_BROKEN = TxtRecord("example.test.", _NAME, "a" * 43)
_FINE = TxtRecord("example.test.", _NAME, "b" * 43)


class _RemoveBreaksOnOne:
    """Removes every value but `_BROKEN`, on which it raises what no provider should."""

    def __init__(self) -> None:
        self.removed: list[TxtRecord] = []

    def add_txt(self, record: TxtRecord) -> None:
        raise AssertionError("not expected: add_txt")

    def remove_txt(self, record: TxtRecord) -> None:
        if record == _BROKEN:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        self.removed.append(record)


def test_an_unexpected_error_removing_one_value_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = _RemoveBreaksOnOne()
    journal = ChallengeJournal(LocalStore(tmp_path / "store"), "site")
    solver = Dns01Solver("dns", provider, DnsCheckSettings(resolvers=("127.0.0.1",)), journal)
    journal.record("dns", [("example.test", _BROKEN), ("example.test", _FINE)], solver.now())

    with caplog.at_level(logging.ERROR), pytest.raises(DnsError, match="could not be removed"):
        solver.cleanup([_BROKEN, _FINE])

    assert provider.removed == [_FINE]
    assert [e.record for e in journal.entries()] == [_BROKEN]  # the next run tries again
    assert any("Expecting value" in (r.exc_text or "") for r in caplog.records)


class _Acme:
    """One pending dns-01 challenge; nothing else may be asked."""

    def dns01_challenges(self, order: object) -> list[tuple[str, object]]:
        return [("example.test", object())]

    def validation(self, challb: object) -> str:
        return "a" * 43


class _SolverWhoseCleanupBreaks:
    """Waits in vain, then fails to clean up with an error no provider translated."""

    def present(self, challenges: object) -> tuple[TxtRecord, ...]:
        return (_BROKEN,)

    def add(self, records: object) -> None:
        pass

    def wait(self, records: object) -> None:
        raise PropagationTimeout(_NAME, "a" * 43, ("ns1.example.test. 127.0.0.1:53: lags",), 1.0)

    def cleanup(self, records: object) -> None:
        raise ValueError("Expecting value: line 1 column 1 (char 0)")


def test_an_unexpected_cleanup_error_does_not_replace_the_error_that_led_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    authorizer = Dns01Authorizer(_SolverWhoseCleanupBreaks())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR), pytest.raises(PropagationTimeout):
        authorizer.authorize(_Acme(), object(), 0.0, Steps("site"))  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == ["cleanup failed: unexpected error"]
