"""What the guards do when their shared store fails: carry on with this process's own state for
a while, or, for spend budgets, refuse.

``FailoverBackend`` wraps a shared backend (``RedisBackend``) with an in-process one. Every
operation goes to the shared store; when it raises ``StateError`` (down, slow past its
``timeout_s``, credentials refused, a failover in progress), the backend logs a warning once
for the outage (naming the store by address and key prefix, never a password), reports the
failure to ``on_failure`` (a client counts it as ``guardedllm.state.errors``), serves the
operation from the local backend, and keeps serving locally for ``cool_off_s`` before it tries
the store again, so that a store that is down costs each call no timeout. When the store
answers again it logs that, and the guards share its state again.

``on_error`` says what a spend budget does meanwhile:

- ``"local"`` (the default): like every other guard, it counts in this process. No call fails
  because the store did; spend is bounded per process, not across the fleet, until it returns.
- ``"refuse"``: its operations (the ledger's ``spend:`` keys) raise the ``StateError``, so a
  call under a spend budget fails closed with that typed error rather than spend untracked.
  Breakers, rate limits, retry budgets and marks still fall back locally.

State does not move between the two: what the store held comes back with it (what expired
meanwhile stays gone), and what was counted locally during the outage stays local. A spend
reservation made on the store and settled during an outage keeps its hold on the store until
its window ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

from guardedllm import defaults
from guardedllm.errors import ArgumentError, StateError
from guardedllm.state import flow
from guardedllm.state.base import BucketTake, StateBackend
from guardedllm.state.flow import Op
from guardedllm.state.memory import MemoryBackend

__all__ = ["ON_ERROR", "FailoverBackend", "OnError"]

logger = logging.getLogger("guardedllm")

# What a guard does when the store fails: carry on with this process's own state, or refuse
# the calls whose spend it cannot count.
OnError = Literal["local", "refuse"]
ON_ERROR: tuple[OnError, ...] = ("local", "refuse")

T = TypeVar("T")

# The spend ledger's keys (guards/spend.py): the state "refuse" will not keep locally.
_SPEND_PREFIX = "spend:"


class FailoverBackend:
    """``StateBackend`` over a shared store, falling back to ``local`` while it fails (see the
    module docstring). Safe to use from many threads."""

    shared: ClassVar[bool] = True

    def __init__(
        self,
        shared: StateBackend,
        *,
        local: StateBackend | None = None,
        on_error: OnError = "local",
        cool_off_s: float = defaults.STATE_COOL_OFF_S,
        on_failure: Callable[[StateError], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ArgumentError(f'on_error must be "local" or "refuse"; got {on_error!r}')
        self.store = shared
        self.local = local if local is not None else MemoryBackend()
        self.on_error: OnError = on_error
        self._cool_off_s = cool_off_s
        self._on_failure = on_failure
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._retry_at: float | None = None  # set while the store is failing: when to try again
        self._error: StateError | None = None
        self._local_ops = 0

    @property
    def failing(self) -> bool:
        """Whether the store failed and is not being tried again yet."""
        retry_at = self._retry_at
        return retry_at is not None and self._monotonic() < retry_at

    @property
    def timeout_s(self) -> float | None:
        """How long one operation may wait for the store (None when not known)."""
        timeout = getattr(self.store, "timeout_s", None)
        return float(timeout) if timeout is not None else None

    @property
    def local_ops(self) -> int:
        """How many operations were served locally so far (a call compares it before and
        after, to say on its span that it ran on local state)."""
        return self._local_ops

    def clock(self) -> float:
        """The store's clock (see ``RedisBackend.clock``); this host's wall clock while the
        store fails, which local state is kept by."""
        store_clock = getattr(self.store, "clock", None)
        if callable(store_clock) and not self.failing:
            try:
                return float(store_clock())
            except StateError as error:
                self._failed(error)
        return time.time()

    # ---- the decision --------------------------------------------------------------------

    def _run(self, spend: bool, operation: Callable[[StateBackend], T]) -> T:
        if not self.failing:
            try:
                result = operation(self.store)
            except StateError as error:
                self._failed(error)
                if spend and self.on_error == "refuse":
                    raise
            else:
                if self._retry_at is not None:
                    self._recovered()
                return result
        elif spend and self.on_error == "refuse":
            assert self._error is not None
            raise self._refused(self._error)
        with self._lock:
            self._local_ops += 1
        return operation(self.local)

    def run_batch(self, batch: Sequence[Op]) -> list[Any]:
        """Run ``batch`` (``guardedllm.state.flow``) on the store in one go, as ``_run`` runs
        one operation: a batch the store failed as a whole (unreachable, no answer) goes to
        the local state as a whole; an operation the store refused alone goes local alone.
        Under ``"refuse"``, a spend operation gets the ``StateError`` instead."""
        spend = [_op_is_spend(op) for op in batch]
        if self.failing:
            assert self._error is not None
            return self._local(batch, spend, self._refused(self._error))
        try:
            outcomes = flow.run_batch(self.store, batch)
        except StateError as error:
            self._failed(error)
            return self._local(batch, spend, error)
        failures = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, StateError)]
        if not failures:
            if self._retry_at is not None:
                self._recovered()
            return outcomes
        for i in failures:
            failure: StateError = outcomes[i]
            self._failed(failure)
            (outcomes[i],) = self._local([batch[i]], [spend[i]], failure)
        return outcomes

    def _local(self, batch: Sequence[Op], spend: Sequence[bool], error: StateError) -> list[Any]:
        """``batch`` run on the local state, but for spend operations under "refuse", which get
        ``error``."""
        outcomes: list[Any] = []
        for op, is_spend in zip(batch, spend, strict=True):
            if is_spend and self.on_error == "refuse":
                outcomes.append(error)
                continue
            with self._lock:
                self._local_ops += 1
            try:
                outcomes.append(op.apply(self.local))
            except Exception as raised:  # the flow that asked decides what it means
                outcomes.append(raised)
        return outcomes

    def _failed(self, error: StateError) -> None:
        with self._lock:
            first = self._retry_at is None
            self._retry_at = self._monotonic() + self._cool_off_s
            self._error = error
        if first:  # once per outage
            logger.warning(
                "guard state: the store %s failed (%s); %s for %g s before trying it again",
                error.store,
                error,
                "carrying on with this process's own state"
                if self.on_error == "local"
                else "refusing calls under a spend budget and keeping the other guards' "
                "state in this process",
                self._cool_off_s,
            )
        if self._on_failure is not None:
            self._on_failure(error)

    def _recovered(self) -> None:
        with self._lock:
            was_failing, self._retry_at, self._error = self._retry_at is not None, None, None
        if was_failing:
            logger.warning(
                "guard state: the store answers again; guards share its state again "
                "(what was counted in this process meanwhile stays here)"
            )

    def _refused(self, error: StateError) -> StateError:
        refused = StateError(
            f"{error} Calls under a spend budget are refused while it fails "
            '(on_error="refuse"); they go again once the store answers.',
            store=error.store,
        )
        refused.__cause__ = error
        return refused

    # ---- StateBackend (see base.py for what each operation means) ------------------------

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
        return self._run(
            _is_spend(key),
            lambda backend: backend.bucket_take(
                key,
                amount,
                capacity=capacity,
                refill_per_s=refill_per_s,
                now=now,
                allow_debt=allow_debt,
            ),
        )

    def bucket_put(
        self, key: str, amount: float, *, capacity: float, refill_per_s: float, now: float
    ) -> float:
        return self._run(
            _is_spend(key),
            lambda backend: backend.bucket_put(
                key, amount, capacity=capacity, refill_per_s=refill_per_s, now=now
            ),
        )

    def bucket_set(
        self, key: str, level: float, *, capacity: float, refill_per_s: float, now: float
    ) -> None:
        self._run(
            _is_spend(key),
            lambda backend: backend.bucket_set(
                key, level, capacity=capacity, refill_per_s=refill_per_s, now=now
            ),
        )

    def counter_add(
        self, key: str, amount: float, *, limit: float | None, expires_at: float, now: float
    ) -> tuple[bool, float]:
        return self._run(
            _is_spend(key),
            lambda backend: backend.counter_add(
                key, amount, limit=limit, expires_at=expires_at, now=now
            ),
        )

    def counters_get(self, keys: list[str], *, now: float) -> Mapping[str, float]:
        return self._run(
            any(_is_spend(key) for key in keys),
            lambda backend: backend.counters_get(keys, now=now),
        )

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
        return self._run(
            _is_spend(key),
            lambda backend: backend.window_add(
                key,
                amounts,
                slice_index=slice_index,
                slices=slices,
                expires_at=expires_at,
                now=now,
            ),
        )

    def window_get(
        self, key: str, *, width: int, slice_index: int, slices: int, now: float
    ) -> tuple[float, ...]:
        return self._run(
            _is_spend(key),
            lambda backend: backend.window_get(
                key, width=width, slice_index=slice_index, slices=slices, now=now
            ),
        )

    def value_get(self, key: str, *, now: float) -> str | None:
        return self._run(_is_spend(key), lambda backend: backend.value_get(key, now=now))

    def value_cas(
        self,
        key: str,
        expected: str | None,
        value: str | None,
        *,
        expires_at: float | None = None,
        now: float,
    ) -> bool:
        return self._run(
            _is_spend(key),
            lambda backend: backend.value_cas(key, expected, value, expires_at=expires_at, now=now),
        )

    def __repr__(self) -> str:
        return f"FailoverBackend({self.store!r}, on_error={self.on_error!r})"


def _is_spend(key: str) -> bool:
    return key.startswith(_SPEND_PREFIX)


def _op_is_spend(op: Op) -> bool:
    keys = op.args[0]
    if isinstance(keys, str):
        return _is_spend(keys)
    return any(_is_spend(key) for key in keys)  # counters_get reads several
