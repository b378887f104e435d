"""The in-process state backend: dicts behind one lock.

The lock is a ``threading.Lock`` held only for the few dict operations of one call — never
across I/O or an ``await`` — so sync threads and async tasks (asyncio or trio) share it safely.
Expiry is by the caller's clock (``now`` on every call): an entry whose ``expires_at`` has
passed reads as absent and is dropped by a periodic sweep, so memory stays bounded.

Callers read their clock before taking the lock, so calls can arrive with ``now`` slightly out
of order. A bucket's refill time therefore never moves backwards: were it set back to an older
``now``, the next call would refill the same interval twice and over-grant.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import ClassVar

from guardedllm.state.base import BucketTake

__all__ = ["MemoryBackend"]


# Expired entries are swept after this many writes: often enough to bound memory for keys that
# are never touched again (a month-old spend window), rarely enough to cost nothing per call.
_SWEEP_EVERY = 4096


class _Window:
    """One sliding window of slices: each slice's amounts, and running totals over the slices
    ``newest - slices + 1`` to ``newest``. A slice that leaves the totals is kept for as long
    again, for a caller whose clock lags another's (it reads the window ending at its own
    slice, as it would have from per-slice counters)."""

    __slots__ = ("expires_at", "newest", "slices", "totals")

    def __init__(self, width: int, newest: int) -> None:
        self.slices: dict[int, list[float]] = {}
        self.totals = [0.0] * width
        self.newest = newest
        self.expires_at = 0.0

    def add(self, index: int, amounts: tuple[float, ...], slices: int) -> None:
        if index > self.newest:
            self._slide(index, slices)
        stored = self.slices.get(index)
        if stored is None:
            self.slices[index] = list(amounts)
        else:
            for metric, amount in enumerate(amounts):
                stored[metric] += amount
        if index > self.newest - slices:
            for metric, amount in enumerate(amounts):
                self.totals[metric] += amount

    def _slide(self, newest: int, slices: int) -> None:
        leaving_from, leaving_to = self.newest - slices + 1, newest - slices + 1
        for index in [i for i in self.slices if i < leaving_to]:
            if index >= leaving_from:
                for metric, amount in enumerate(self.slices[index]):
                    self.totals[metric] -= amount
            if index <= newest - 2 * slices:
                del self.slices[index]
        self.newest = newest

    def sum(self, width: int, end: int, slices: int) -> tuple[float, ...]:
        """The totals over the ``slices`` slices ending with ``end``."""
        if end == self.newest:
            return tuple(self.totals)
        totals = [0.0] * width
        for index, amounts in self.slices.items():
            if end - slices < index <= end:
                for metric, amount in enumerate(amounts):
                    totals[metric] += amount
        return tuple(totals)


class MemoryBackend:
    """``StateBackend`` for one process."""

    # Answers at once, without I/O: the engine runs its operations inline (see base.py).
    shared: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (level, updated_at)
        self._counters: dict[str, tuple[float, float]] = {}  # key -> (total, expires_at)
        self._values: dict[str, tuple[str, float | None]] = {}  # key -> (value, expires_at)
        self._windows: dict[str, _Window] = {}
        self._writes = 0

    # ---- token buckets ---------------------------------------------------------------

    def _refilled(
        self, key: str, capacity: float, refill_per_s: float, now: float
    ) -> tuple[float, float]:
        """The level refilled up to ``now``, and the time it is refilled to (never earlier
        than the bucket's last refill)."""
        level, updated = self._buckets.get(key, (capacity, now))
        if now > updated:
            return min(capacity, level + (now - updated) * refill_per_s), now
        return level, updated

    def bucket_take(
        self,
        key: str,
        amount: float,
        *,
        capacity: float,
        refill_per_s: float,
        now: float,
        allow_debt: bool = False,
    ) -> BucketTake:
        with self._lock:
            level, at = self._refilled(key, capacity, refill_per_s, now)
            if allow_debt or level >= amount:
                self._buckets[key] = (level - amount, at)
                return BucketTake(granted=True, remaining=level - amount, wait_s=0.0)
            self._buckets[key] = (level, at)
            missing = amount - level
            wait = missing / refill_per_s if refill_per_s > 0 else float("inf")
            return BucketTake(granted=False, remaining=level, wait_s=wait)

    def bucket_put(
        self, key: str, amount: float, *, capacity: float, refill_per_s: float, now: float
    ) -> float:
        with self._lock:
            level, at = self._refilled(key, capacity, refill_per_s, now)
            level = min(capacity, level + amount)
            self._buckets[key] = (level, at)
            return level

    def bucket_set(
        self, key: str, level: float, *, capacity: float, refill_per_s: float, now: float
    ) -> None:
        with self._lock:
            _, at = self._refilled(key, capacity, refill_per_s, now)
            self._buckets[key] = (min(capacity, level), at)

    # ---- counters ----------------------------------------------------------------------

    def counter_add(
        self, key: str, amount: float, *, limit: float | None, expires_at: float, now: float
    ) -> tuple[bool, float]:
        with self._lock:
            self._wrote(now)
            total = self._counter(key, now)
            new_total = total + amount
            if limit is not None and amount > 0 and new_total > limit:
                return False, total
            self._counters[key] = (new_total, expires_at)
            return True, new_total

    def counters_get(self, keys: list[str], *, now: float) -> Mapping[str, float]:
        with self._lock:
            return {key: self._counter(key, now) for key in keys}

    def _counter(self, key: str, now: float) -> float:
        total, expiry = self._counters.get(key, (0.0, now))
        return total if expiry >= now else 0.0

    # ---- windows -------------------------------------------------------------------------

    def window_add(
        self,
        key: str,
        amounts: tuple[float, ...],
        *,
        slice_index: int,
        slices: int,
        expires_at: float,
        now: float,
    ) -> tuple[float, ...]:
        width = len(amounts)
        with self._lock:
            self._wrote(now)
            window = self._windows.get(key)
            # An expired window needs no reset: its slices slide out of the totals as it moves.
            if window is None or len(window.totals) != width:
                window = self._windows[key] = _Window(width, slice_index)
            window.add(slice_index, amounts, slices)
            window.expires_at = max(window.expires_at, expires_at)
            return window.sum(width, slice_index, slices)

    def window_get(
        self, key: str, *, width: int, slice_index: int, slices: int, now: float
    ) -> tuple[float, ...]:
        with self._lock:
            window = self._windows.get(key)
            if window is None or window.expires_at < now or len(window.totals) != width:
                return (0.0,) * width
            return window.sum(width, slice_index, slices)

    # ---- values --------------------------------------------------------------------------

    def value_get(self, key: str, *, now: float) -> str | None:
        with self._lock:
            return self._value(key, now)

    def value_cas(
        self,
        key: str,
        expected: str | None,
        value: str | None,
        *,
        expires_at: float | None = None,
        now: float,
    ) -> bool:
        with self._lock:
            self._wrote(now)
            if self._value(key, now) != expected:
                return False
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = (value, expires_at)
            return True

    def _value(self, key: str, now: float) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expiry = entry
        return value if expiry is None or expiry >= now else None

    # ---- expiry ----------------------------------------------------------------------------

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._counters = {k: v for k, v in self._counters.items() if v[1] >= now}
            self._values = {k: v for k, v in self._values.items() if v[1] is None or v[1] >= now}
            self._windows = {k: w for k, w in self._windows.items() if w.expires_at >= now}
