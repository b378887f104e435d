"""The operations a state backend performs atomically.

Guards are pure state machines: they decide, a backend stores. Every operation that reads and
then writes (a bucket take, a budget reservation, a breaker transition) is one backend call, so
that it stays correct under many threads, tasks and — for a shared backend — processes. Time is
always passed in (``now``, seconds on a clock the guard chose), never read here, so a guard's
whole life can run on virtual time. Keys are namespaced by the guard ("breaker:gpt-4o").

A backend may say ``shared = True``: its operations are I/O (a round trip to a store other
processes use too), so a client runs them off its event loop, and, if it has a ``clock()``,
every guard's ``now`` comes from it (one clock for every host). Without the attribute a backend
is taken to answer at once, in process, as ``MemoryBackend`` does.

A backend may also offer ``run_batch(ops)``: several independent operations (``flow.Op``) in one
go, in order, an outcome (result or exception) each; the guards' flows then send each round of a
phase as one batch (``guardedllm.state.flow``). ``RedisBackend`` sends a batch as one pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

__all__ = ["BucketTake", "StateBackend"]


@attrs.frozen(kw_only=True)
class BucketTake:
    """The result of a token-bucket take: whether it was granted, the tokens left after it, and
    how long until enough tokens for it would be there (0 when granted)."""

    granted: bool
    remaining: float
    wait_s: float


class StateBackend(Protocol):
    # ---- token buckets (rate limits, retry budgets) ------------------------------------

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
        """Refill ``key``'s bucket for the time since its last use (up to ``capacity``; a new
        bucket starts full), then take ``amount`` if that many tokens are there. With
        ``allow_debt`` the take always succeeds and may leave the bucket negative (a correction
        after the fact, such as actual tokens above the estimate)."""
        ...

    def bucket_put(
        self, key: str, amount: float, *, capacity: float, refill_per_s: float, now: float
    ) -> float:
        """Refill, then add ``amount`` (capped at ``capacity``); returns the level."""
        ...

    def bucket_set(
        self, key: str, level: float, *, capacity: float, refill_per_s: float, now: float
    ) -> None:
        """Set the level outright (a vendor's own count of what is left)."""
        ...

    # ---- counters over windows (spend budgets, breaker windows) ------------------------

    def counter_add(
        self, key: str, amount: float, *, limit: float | None, expires_at: float, now: float
    ) -> tuple[bool, float]:
        """Add ``amount`` unless that takes the total over ``limit`` (None: no limit; a
        negative amount is always added). Returns (added, total after). The counter reads as 0
        once ``now`` passes ``expires_at``."""
        ...

    def counters_get(self, keys: list[str], *, now: float) -> Mapping[str, float]:
        """Several counters in one read (0 for absent or expired ones)."""
        ...

    # ---- sliding windows of slices (breaker windows) ------------------------------------

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
        """Add ``amounts`` (one per metric) to slice ``slice_index`` of ``key``'s window and
        return each metric's total over the ``slices`` slices ending with that one. A window
        reads as empty once ``now`` passes ``expires_at`` (the last write's). Cheap whatever
        the number of slices: a window keeps a running total as slices slide out."""
        ...

    def window_get(
        self, key: str, *, width: int, slice_index: int, slices: int, now: float
    ) -> tuple[float, ...]:
        """The ``width`` totals over the ``slices`` slices ending with ``slice_index``
        (zeros for an absent or expired window)."""
        ...

    # ---- small values with compare-and-set (breaker state, marks) ----------------------

    def value_get(self, key: str, *, now: float) -> str | None:
        """The value, or None when absent or expired."""
        ...

    def value_cas(
        self,
        key: str,
        expected: str | None,
        value: str | None,
        *,
        expires_at: float | None = None,
        now: float,
    ) -> bool:
        """Set ``value`` (None deletes) only if the current value is ``expected``; True when
        it was set. ``expected=None`` matches an absent or expired value."""
        ...
