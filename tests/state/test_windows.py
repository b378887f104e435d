"""Each backend's sliding windows against a model: per-slice counters that expire as they
slide out, which is what the running totals replace."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from guardedllm.state import StateBackend

SLICES = 4
SLICE_S = 1.0

# (slice a caller is in, amounts it adds); callers may lag one another by a few slices.
ADDS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30),
        st.tuples(*(st.sampled_from([0.0, 1.0]) for _ in range(3))),
    ),
    max_size=60,
)


def _model_sum(counters: dict[int, list[float]], end: int, now: float) -> tuple[float, ...]:
    """What per-slice counters read: the slices ending with ``end``, unexpired at ``now``."""
    totals = [0.0, 0.0, 0.0]
    for index, amounts in counters.items():
        if end - SLICES < index <= end and (index + SLICES) * SLICE_S >= now:
            for metric, amount in enumerate(amounts):
                totals[metric] += amount
    return tuple(totals)


@given(ADDS, st.data())
def test_a_window_reads_what_per_slice_counters_would(
    new_backend: Callable[[], StateBackend],
    adds: list[tuple[int, tuple[float, float, float]]],
    data: st.DataObject,
) -> None:
    backend = new_backend()
    counters: dict[int, list[float]] = {}
    newest = 0
    for drawn, amounts in adds:
        # Mostly moving on, sometimes a caller whose clock lags the newest by a slice or two.
        index = max(drawn, newest - 2)
        now = index * SLICE_S + 0.5
        newest = max(newest, index)
        got = backend.window_add(
            "w",
            amounts,
            slice_index=index,
            slices=SLICES,
            expires_at=(index + SLICES) * SLICE_S,
            now=now,
        )
        stored = counters.setdefault(index, [0.0, 0.0, 0.0])
        for metric, amount in enumerate(amounts):
            stored[metric] += amount
        assert got == _model_sum(counters, index, now)
        later = data.draw(st.integers(min_value=index, max_value=index + SLICES + 1))
        read_at = later * SLICE_S + 0.5
        assert backend.window_get(
            "w", width=3, slice_index=later, slices=SLICES, now=read_at
        ) == _model_sum(counters, later, read_at)


def test_an_absent_or_expired_window_reads_as_zeros(backend: StateBackend) -> None:
    assert backend.window_get("w", width=2, slice_index=5, slices=3, now=5.0) == (0.0, 0.0)
    backend.window_add("w", (1.0, 1.0), slice_index=5, slices=3, expires_at=8.0, now=5.0)
    assert backend.window_get("w", width=2, slice_index=7, slices=3, now=7.5) == (1.0, 1.0)
    assert backend.window_get("w", width=2, slice_index=8, slices=3, now=8.5) == (0.0, 0.0)
    # A write after expiry starts afresh.
    got = backend.window_add("w", (1.0, 0.0), slice_index=9, slices=3, expires_at=12.0, now=9.0)
    assert got == (1.0, 0.0)


def test_a_write_of_another_width_starts_afresh(backend: StateBackend) -> None:
    backend.window_add("w", (1.0, 1.0), slice_index=5, slices=3, expires_at=8.0, now=5.0)
    assert backend.window_get("w", width=3, slice_index=5, slices=3, now=5.0) == (0.0,) * 3
    got = backend.window_add("w", (2.0, 0.0, 1.0), slice_index=5, slices=3, expires_at=8.0, now=5.0)
    assert got == (2.0, 0.0, 1.0)


def test_a_lagging_caller_reads_the_window_ending_at_its_own_slice(backend: StateBackend) -> None:
    for index in range(10, 16):
        backend.window_add(
            "w", (1.0, float(index)), slice_index=index, slices=4, expires_at=100.0, now=index
        )
    # Newest is 15: slices 12-15 are in the totals; 13 ends at 13 (10-13), 9 before any.
    assert backend.window_get("w", width=2, slice_index=15, slices=4, now=15.0) == (4.0, 54.0)
    assert backend.window_get("w", width=2, slice_index=13, slices=4, now=15.0) == (4.0, 46.0)
    # A write into an older slice counts where it belongs, not in the newest totals.
    got = backend.window_add("w", (1.0, 0.5), slice_index=11, slices=4, expires_at=100.0, now=15.0)
    assert got == (3.0, 21.5)  # slices 8-11: 10 and 11 are left
    assert backend.window_get("w", width=2, slice_index=15, slices=4, now=15.0) == (4.0, 54.0)
    # Sliding far ahead leaves only the new slice in the totals.
    got = backend.window_add("w", (1.0, 1.0), slice_index=40, slices=4, expires_at=100.0, now=40.0)
    assert got == (1.0, 1.0)
