"""UnavailableMarks on virtual time, and threads marking one deployment at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from guardedllm import defaults
from guardedllm.guards import Mark, UnavailableMarks
from guardedllm.state import StateBackend
from guardedllm.state.flow import run


def test_a_mark_holds_until_its_end(new_backend: Callable[[], StateBackend]) -> None:
    marks = UnavailableMarks(new_backend())
    assert marks.unavailable("d", 0.0) is None
    mark = marks.mark("d", until=60.0, reason="404 model not found", now=0.0)
    assert mark == Mark(until=60.0, reason="404 model not found")
    assert marks.unavailable("d", 59.9) == mark
    assert marks.unavailable("d", 60.0) is None
    assert marks.unavailable("other", 1.0) is None


def test_404s_are_counted_until_a_minute_after_the_last(
    new_backend: Callable[[], StateBackend],
) -> None:
    marks = UnavailableMarks(new_backend())
    strike = marks.strike_flow
    assert run(marks.backend, strike("d", expires_at=60.0, now=0.0)) == 1
    assert run(marks.backend, strike("d", expires_at=100.0, now=40.0)) == 2
    assert run(marks.backend, strike("other", expires_at=100.0, now=40.0)) == 1
    assert run(marks.backend, strike("d", expires_at=159.0, now=99.0)) == 3
    # Counting is not marking: the engine decides (engine/_failures.py).
    assert marks.unavailable("d", 99.0) is None
    assert run(marks.backend, strike("d", expires_at=300.0, now=200.0)) == 1  # expired


def test_a_later_mark_extends_an_earlier_one_never_shortens_it(
    new_backend: Callable[[], StateBackend],
) -> None:
    marks = UnavailableMarks(new_backend())
    marks.mark("d", until=60.0, reason="first", now=0.0)
    assert marks.mark("d", until=30.0, reason="second", now=10.0).reason == "first"
    assert marks.mark("d", until=90.0, reason="third", now=20.0).reason == "third"
    mark = marks.unavailable("d", 70.0)
    assert mark is not None
    assert mark.until == 90.0


def test_clear_lifts_a_mark(new_backend: Callable[[], StateBackend]) -> None:
    marks = UnavailableMarks(new_backend())
    marks.mark("d", until=60.0, reason="404", now=0.0)
    marks.clear("d", 1.0)
    assert marks.unavailable("d", 1.0) is None
    marks.clear("d", 1.0)  # clearing nothing is fine


def test_reasons_never_carry_api_keys(new_backend: Callable[[], StateBackend]) -> None:
    marks = UnavailableMarks(new_backend())
    key = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2
    mark = marks.mark("d", until=60.0, reason=f"404 for key {key}", now=0.0)
    assert key not in mark.reason
    stored = marks.unavailable("d", 1.0)
    assert stored is not None
    assert key not in stored.reason
    assert key not in repr(stored)


def test_a_mark_needs_a_finite_end(new_backend: Callable[[], StateBackend]) -> None:
    with pytest.raises(ValueError, match="finite end time"):
        UnavailableMarks(new_backend()).mark("d", until=float("inf"), reason="x", now=0.0)


def test_an_unreadable_value_reads_as_no_mark_and_is_replaced(
    new_backend: Callable[[], StateBackend],
) -> None:
    backend = new_backend()
    backend.value_cas("unavailable:d", None, "not json", now=0.0)
    marks = UnavailableMarks(backend)
    assert marks.unavailable("d", 0.0) is None
    marks.mark("d", until=10.0, reason="404", now=0.0)
    assert marks.unavailable("d", 5.0) == Mark(until=10.0, reason="404")


def test_default_mark_length_is_a_minute() -> None:
    assert defaults.UNAVAILABLE_S == 60.0


def test_threads_marking_at_once_settle_on_the_latest_end(
    new_backend: Callable[[], StateBackend],
) -> None:
    marks = UnavailableMarks(new_backend())
    threads = 8
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        start.wait()
        for i in range(200):
            marks.mark("d", until=100.0 + n * 200 + i, reason=f"{n}:{i}", now=0.0)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert marks.unavailable("d", 0.0) == Mark(until=100.0 + 7 * 200 + 199, reason="7:199")
