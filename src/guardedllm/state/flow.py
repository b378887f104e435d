"""Guard operations as data, and how they run: one at a time, or several guards' side by side.

A guard's stateful method is written once, as a generator (a *flow*) in the manner of the
engine: it yields the backend operations it needs and receives their results, deciding in
between. A flow yields one of:

- an ``Op``: it receives the result, or the operation's exception is thrown into it;
- a list of ``Op`` that do not depend on one another: it receives their results in order, or
  the first exception among them is thrown in (the others ran);
- ``Together`` (what ``lockstep(*flows)`` yields): flows to run side by side; it receives
  their return values in order. A flow that raises does not stop the others (what they take
  must reach their callers); once all have ended, the first exception is thrown in.

``run(backend, flow)`` carries a flow out: what a guard's plain method (``breaker.acquire``)
does, so callers and tests see no flow at all. How depends on the backend:

- one that batches (``run_batch``: ``RedisBackend``, one pipeline per batch, and
  ``FailoverBackend`` around it) gets the flows of a ``lockstep`` in rounds: each round, the
  pending operations of every live flow go out as one batch, so a phase of several guards
  costs as many round trips as its deepest flow, not the sum;
- any other (``MemoryBackend``: in process, where a batch saves nothing) gets each operation
  at once, and the flows of a ``lockstep`` one after the other, which keeps the in-process
  path as cheap as plain method calls.

Either way the operations of one batch run in order (a pipeline's commands run in order on
the server), so a flow that must see another's write may rely on coming after it in a batch;
one that must see another's whole result runs after it (``sequence``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar

from guardedllm.state.base import StateBackend

__all__ = [
    "Flow",
    "Op",
    "Together",
    "bucket_put",
    "bucket_set",
    "bucket_take",
    "call",
    "counter_add",
    "counters_get",
    "lockstep",
    "run",
    "run_batch",
    "sequence",
    "value_cas",
    "value_get",
    "window_add",
    "window_get",
]

T = TypeVar("T")


class Op(NamedTuple):
    """One ``StateBackend`` operation: the method's name and its arguments, all in the order
    of its parameters (keyword-only ones too). A bare tuple, since the in-process path builds
    a few per call and must stay cheap: ``apply`` calls the method through a small adapter
    (``_CALLS``) with keywords spelled out, not through a ``**kwargs`` dict."""

    name: str
    args: tuple[Any, ...]

    def apply(self, backend: StateBackend) -> Any:
        return _CALLS[self.name](backend, *self.args)


Flow = Generator["Op | list[Op] | Together", Any, T]


# ---------------------------------------------------------------- operations (see base.py)

# Op(...) runs NamedTuple's Python-level __new__; tuple.__new__ builds the same value in C.
_new = tuple.__new__


def bucket_take(
    key: str,
    amount: float,
    *,
    capacity: float,
    refill_per_s: float,
    now: float,
    allow_debt: bool = False,
) -> Op:
    return _new(Op, ("bucket_take", (key, amount, capacity, refill_per_s, now, allow_debt)))


def bucket_put(key: str, amount: float, *, capacity: float, refill_per_s: float, now: float) -> Op:
    return _new(Op, ("bucket_put", (key, amount, capacity, refill_per_s, now)))


def bucket_set(key: str, level: float, *, capacity: float, refill_per_s: float, now: float) -> Op:
    return _new(Op, ("bucket_set", (key, level, capacity, refill_per_s, now)))


def counter_add(
    key: str, amount: float, *, limit: float | None, expires_at: float, now: float
) -> Op:
    return _new(Op, ("counter_add", (key, amount, limit, expires_at, now)))


def counters_get(keys: list[str], *, now: float) -> Op:
    return _new(Op, ("counters_get", (keys, now)))


def window_add(
    key: str,
    amounts: tuple[float, ...],
    *,
    slice_index: int,
    slices: int,
    expires_at: float,
    now: float,
) -> Op:
    return _new(Op, ("window_add", (key, amounts, slice_index, slices, expires_at, now)))


def window_get(key: str, *, width: int, slice_index: int, slices: int, now: float) -> Op:
    return _new(Op, ("window_get", (key, width, slice_index, slices, now)))


def value_get(key: str, *, now: float) -> Op:
    return _new(Op, ("value_get", (key, now)))


def value_cas(
    key: str,
    expected: str | None,
    value: str | None,
    *,
    expires_at: float | None = None,
    now: float,
) -> Op:
    return _new(Op, ("value_cas", (key, expected, value, expires_at, now)))


def call(target: Any, op: Op) -> Any:
    """``target.<op.name>(...)`` with ``op``'s arguments, keyword-only ones by keyword: a
    backend, or anything with the same signatures (the Redis script builders)."""
    return _CALLS[op.name](target, *op.args)


# Each operation's call with its keyword-only arguments by name (see ``Op``).
_CALLS: dict[str, Callable[..., Any]] = {
    "bucket_take": lambda b, key, amount, capacity, refill_per_s, now, allow_debt: b.bucket_take(
        key, amount, capacity=capacity, refill_per_s=refill_per_s, now=now, allow_debt=allow_debt
    ),
    "bucket_put": lambda b, key, amount, capacity, refill_per_s, now: b.bucket_put(
        key, amount, capacity=capacity, refill_per_s=refill_per_s, now=now
    ),
    "bucket_set": lambda b, key, level, capacity, refill_per_s, now: b.bucket_set(
        key, level, capacity=capacity, refill_per_s=refill_per_s, now=now
    ),
    "counter_add": lambda b, key, amount, limit, expires_at, now: b.counter_add(
        key, amount, limit=limit, expires_at=expires_at, now=now
    ),
    "counters_get": lambda b, keys, now: b.counters_get(keys, now=now),
    "window_add": lambda b, key, amounts, slice_index, slices, expires_at, now: b.window_add(
        key, amounts, slice_index=slice_index, slices=slices, expires_at=expires_at, now=now
    ),
    "window_get": lambda b, key, width, slice_index, slices, now: b.window_get(
        key, width=width, slice_index=slice_index, slices=slices, now=now
    ),
    "value_get": lambda b, key, now: b.value_get(key, now=now),
    "value_cas": lambda b, key, expected, value, expires_at, now: b.value_cas(
        key, expected, value, expires_at=expires_at, now=now
    ),
}


# ---------------------------------------------------------------- running flows


class Together(NamedTuple):
    """What ``lockstep`` yields: flows to run side by side, however the runner does that."""

    flows: tuple[Flow[Any], ...]


def lockstep(*flows: Flow[Any]) -> Together:
    """``flows`` to run side by side (see the module docstring): a flow yields this and
    receives their return values, in order (``a, b = yield lockstep(fa, fb)``). A flow that
    raises does not stop the others; once all have ended, the first exception is raised."""
    return _new(Together, (flows,))  # as for Op: no Python-level __new__


def sequence(*flows: Flow[Any]) -> Flow[list[Any]]:
    """Run ``flows`` one after the other (for one that must see what an earlier one wrote);
    their return values, in order."""
    results = []
    for flow in flows:
        results.append((yield from flow))
    return results


def run_batch(backend: StateBackend, ops: Sequence[Op]) -> list[Any]:
    """Each operation's result, or the exception it raised, in order."""
    batch = getattr(backend, "run_batch", None)
    if batch is not None:
        outcomes: list[Any] = batch(ops)
        return outcomes
    outcomes = []
    for op in ops:
        try:
            outcomes.append(op.apply(backend))
        except Exception as error:  # the flow that asked decides what it means
            outcomes.append(error)
    return outcomes


def run(backend: StateBackend, flow: Flow[T]) -> T:
    """Carry ``flow`` out against ``backend``; its return value. A backend that batches
    (``run_batch``: a round trip per batch) gets the flows of a ``lockstep`` in rounds, one
    batch each; any other (in process, where a batch saves nothing) gets each operation at
    once, and the flows of a ``lockstep`` one after the other."""
    return runner(backend)(flow)


def runner(backend: StateBackend) -> Callable[[Flow[T]], T]:
    """``run`` for ``backend``, with the choice between rounds and turns made once."""
    if hasattr(backend, "run_batch"):
        return partial(_run_in_rounds, backend)
    return partial(_run_in_turn, backend)


def _run_in_turn(backend: StateBackend, flow: Flow[T]) -> T:
    # The in-process hot path: ``type() is`` rather than isinstance, no batch bookkeeping.
    try:
        request: Any = next(flow)
        while True:
            kind = type(request)
            if kind is Op:
                name, args = request
                try:
                    result = _CALLS[name](backend, *args)
                except Exception as error:
                    request = flow.throw(error)
                    continue
                request = flow.send(result)
            elif kind is Together:
                results, failure = _each_in_turn(backend, request.flows)
                request = flow.throw(failure) if failure is not None else flow.send(results)
            else:
                outcomes: list[Any] = []
                failure = None
                for name, args in request:
                    try:
                        outcomes.append(_CALLS[name](backend, *args))
                    except Exception as error:
                        outcomes.append(error)
                        failure = failure or error
                request = flow.throw(failure) if failure is not None else flow.send(outcomes)
    except StopIteration as done:
        value: T = done.value
        return value


def _each_in_turn(
    backend: StateBackend, flows: tuple[Flow[Any], ...]
) -> tuple[list[Any], Exception | None]:
    results: list[Any] = []
    failure: Exception | None = None
    for flow in flows:
        try:
            results.append(_run_in_turn(backend, flow))
        except Exception as error:
            results.append(None)
            failure = failure or error
    return results, failure


def _first_error(outcomes: list[Any]) -> Exception | None:
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            return outcome
    return None


# A flow as rounds: each round, a list of operations out and their outcomes (a result or an
# exception each) back.
Rounds = Generator[list[Op], list[Any], T]


def _run_in_rounds(backend: StateBackend, flow: Flow[T]) -> T:
    rounds = _rounds(flow)
    try:
        batch = next(rounds)
        while True:
            batch = rounds.send(run_batch(backend, batch))
    except StopIteration as done:
        value: T = done.value
        return value


def _rounds(flow: Flow[T]) -> Rounds[T]:
    """``flow`` as rounds: its operations as they come, a ``lockstep``'s flows side by side."""
    try:
        request = next(flow)
        while True:
            failure: Exception | None
            if isinstance(request, Op):
                (outcome,) = yield [request]
                failure = outcome if isinstance(outcome, Exception) else None
                sent: Any = outcome
            elif isinstance(request, Together):
                try:
                    sent = yield from _side_by_side([_rounds(each) for each in request.flows])
                    failure = None
                except Exception as error:
                    failure = error
            else:
                sent = yield request
                failure = _first_error(sent)
            request = flow.throw(failure) if failure is not None else flow.send(sent)
    except StopIteration as done:
        value: T = done.value
        return value


def _side_by_side(flows: list[Rounds[Any]]) -> Rounds[list[Any]]:
    """Each round, the pending operations of every live flow as one batch."""
    results: list[Any] = [None] * len(flows)
    error: Exception | None = None
    pending: list[tuple[int, list[Op]]] = []
    for index, flow in enumerate(flows):
        try:
            pending.append((index, next(flow)))
        except StopIteration as done:
            results[index] = done.value
        except Exception as raised:
            error = error or raised
    while pending:
        batch: list[Op] = []
        spans: list[tuple[int, int, int]] = []
        for index, ops in pending:
            spans.append((index, len(batch), len(batch) + len(ops)))
            batch.extend(ops)
        outcomes: list[Any] = yield batch
        pending = []
        for index, start, end in spans:
            try:
                pending.append((index, flows[index].send(outcomes[start:end])))
            except StopIteration as done:
                results[index] = done.value
            except Exception as raised:
                error = error or raised
    if error is not None:
        raise error
    return results
