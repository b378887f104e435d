"""FailoverBackend on virtual time: what it serves while its store fails, what it logs and
counts, and when it tries the store again."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from guardedllm.errors import StateError
from guardedllm.state import FailoverBackend, MemoryBackend


class Store(MemoryBackend):
    """An in-process stand-in for a shared store that can be switched off."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def counter_add(self, *args: Any, **kwargs: Any) -> tuple[bool, float]:
        self.calls += 1
        if self.down:
            raise StateError("redis://10.0.0.1:6379/0 did not answer", store="redis://10.0.0.1")
        return super().counter_add(*args, **kwargs)


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def add(backend: FailoverBackend, key: str) -> float:
    return backend.counter_add(key, 1.0, limit=None, expires_at=1e12, now=1.0)[1]


def test_a_failing_store_is_left_for_the_cool_off_then_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock, failures = Store(), Monotonic(), []
    backend = FailoverBackend(store, cool_off_s=5.0, on_failure=failures.append, monotonic=clock)
    caplog.set_level(logging.WARNING, logger="guardedllm")
    assert add(backend, "retry_budget:d:0") == 1.0  # on the store
    store.down = True
    assert add(backend, "retry_budget:d:0") == 1.0  # the store failed: served locally
    assert backend.failing
    clock.now = 4.9
    assert add(backend, "retry_budget:d:0") == 2.0  # still local: the store is not asked
    assert store.calls == 2
    clock.now = 5.1
    assert add(backend, "retry_budget:d:0") == 3.0  # asked again, failed again: local
    assert store.calls == 3
    store.down = False
    clock.now = 10.2
    assert add(backend, "retry_budget:d:0") == 2.0  # the store's own count, where it left it
    assert not backend.failing
    assert backend.local_ops == 3
    assert len(failures) == 2  # each failure counted
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "failed" in m]) == 1  # one warning an outage
    assert len([m for m in messages if "answers again" in m]) == 1


def test_refuse_keeps_spend_off_local_state_and_the_rest_on_it() -> None:
    store, clock = Store(), Monotonic()
    backend = FailoverBackend(store, on_error="refuse", cool_off_s=5.0, monotonic=clock)
    store.down = True
    with pytest.raises(StateError):
        add(backend, "spend:global:-:day:0:total")
    assert add(backend, "retry_budget:d:0") == 1.0  # other guards carry on locally
    with pytest.raises(StateError, match='on_error="refuse"'):  # in the cool-off too
        add(backend, "spend:global:-:day:0:total")
    assert store.calls == 1


def test_on_error_is_checked() -> None:
    with pytest.raises(ValueError, match="on_error"):
        FailoverBackend(Store(), on_error="ignore")  # type: ignore[arg-type]
