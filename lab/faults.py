"""Faults to inject into a real run: a store whose chosen writes fail like an unreachable
bucket. The fault suite (tests) and the fault campaign (bench) share it."""

from __future__ import annotations

from typing import Any, Callable


class StoreUnreachable(Exception):
    """Raised by `FailingStore` in place of the real store's error when `error` is not given."""


class FailingStore:
    """The real store, with the writes `fail(key, body)` names failing. `error(key)` builds the
    exception (the issuing side passes its StoreError, so the code under test sees what an
    unreachable bucket raises)."""

    def __init__(
        self,
        store: Any,
        fail: Callable[[str, bytes], bool],
        error: Callable[[str], Exception] = StoreUnreachable,
    ) -> None:
        self._store = store
        self._fail = fail
        self._error = error
        self.failed: list[str] = []

    def put(self, key: str, body: bytes, **kwargs: Any) -> Any:
        if self._fail(key, body):
            self.failed.append(key)
            raise self._error(key)
        return self._store.put(key, body, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
