"""Guard operations as data, and how they run: one at a time, or several guards' side by side.

A guard's stateful method is written once, as a generator (a *flow*) in the manner of the
engine: it yields the backend operations it needs and receives their results, deciding in
between. A flow yields either one ``Op`` (it receives the result, or the operation's exception
is thrown into it) or a list of ``Op`` that do not depend on one another (it receives their
results in order, or the first exception among them is thrown in: the others ran).

- ``run(backend, flow)`` carries a flow out against a backend: what a guard's plain method
  (``breaker.acquire(...)``) does, so callers and tests see no flow at all.
- ``lockstep(*flows)`` is a flow of flows: each round, the pending operations of every live
  flow go out as one batch, so a phase of several guards costs as many batches as its deepest
  flow, not the sum. A flow that raises does not stop the others (what they take must reach
  their callers); once all have ended, the first exception is raised.
- ``run_batch(backend, ops)`` runs one batch: in order, an outcome (result or exception) per
  operation. A backend may do it in one round trip (``RedisBackend.run_batch``: a pipeline);
  any other runs the operations one after the other, in order. Order within a batch is kept
  everywhere, so a flow that must see another's write may rely on being listed after it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, TypeVar

from guardedllm.state.base import StateBackend

__all__ = [
    "Flow",
    "Op",
    "bucket_put",
    "bucket_set",
    "bucket_take",
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
    """One ``StateBackend`` operation: the method's name and its arguments. A tuple, since the
    in-process path builds a few per call and must stay cheap."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def apply(self, backend: StateBackend) -> Any:
        return getattr(backend, self.name)(*self.args, **self.kwargs)


Flow = Generator["Op | list[Op]", Any, T]


# ---------------------------------------------------------------- operations (see base.py)


def bucket_take(
    key: str,
    amount: float,
    *,
    capacity: float,
    refill_per_s: float,
    now: float,
    allow_debt: bool = False,
) -> Op:
    return Op(
        "bucket_take",
        (key, amount),
        {"capacity": capacity, "refill_per_s": refill_per_s, "now": now, "allow_debt": allow_debt},
    )


def bucket_put(key: str, amount: float, *, capacity: float, refill_per_s: float, now: float) -> Op:
    return Op(
        "bucket_put",
        (key, amount),
        {"capacity": capacity, "refill_per_s": refill_per_s, "now": now},
    )


def bucket_set(key: str, level: float, *, capacity: float, refill_per_s: float, now: float) -> Op:
    return Op(
        "bucket_set", (key, level), {"capacity": capacity, "refill_per_s": refill_per_s, "now": now}
    )


def counter_add(
    key: str, amount: float, *, limit: float | None, expires_at: float, now: float
) -> Op:
    return Op("counter_add", (key, amount), {"limit": limit, "expires_at": expires_at, "now": now})


def counters_get(keys: list[str], *, now: float) -> Op:
    return Op("counters_get", (keys,), {"now": now})


def window_add(
    key: str,
    amounts: tuple[float, ...],
    *,
    slice_index: int,
    slices: int,
    expires_at: float,
    now: float,
) -> Op:
    return Op(
        "window_add",
        (key, amounts),
        {"slice_index": slice_index, "slices": slices, "expires_at": expires_at, "now": now},
    )


def window_get(key: str, *, width: int, slice_index: int, slices: int, now: float) -> Op:
    return Op(
        "window_get",
        (key,),
        {"width": width, "slice_index": slice_index, "slices": slices, "now": now},
    )


def value_get(key: str, *, now: float) -> Op:
    return Op("value_get", (key,), {"now": now})


def value_cas(
    key: str,
    expected: str | None,
    value: str | None,
    *,
    expires_at: float | None = None,
    now: float,
) -> Op:
    return Op("value_cas", (key, expected, value), {"expires_at": expires_at, "now": now})


# ---------------------------------------------------------------- running flows


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
    """Carry ``flow`` out against ``backend``; its return value."""
    try:
        request = next(flow)
        while True:
            if isinstance(request, Op):
                try:
                    result = request.apply(backend)
                except Exception as error:
                    request = flow.throw(error)
                    continue
                request = flow.send(result)
            else:
                outcomes = run_batch(backend, request)
                failure = _first_error(outcomes)
                request = flow.throw(failure) if failure is not None else flow.send(outcomes)
    except StopIteration as done:
        value: T = done.value
        return value


def _first_error(outcomes: list[Any]) -> Exception | None:
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            return outcome
    return None


def lockstep(*flows: Flow[Any]) -> Flow[list[Any]]:
    """Run ``flows`` side by side (see the module docstring); their return values, in order."""
    results: list[Any] = [None] * len(flows)
    error: Exception | None = None
    pending: list[tuple[int, Op | list[Op]]] = []
    for index, flow in enumerate(flows):
        try:
            pending.append((index, next(flow)))
        except StopIteration as done:
            results[index] = done.value
        except Exception as raised:
            error = error or raised
    while pending:
        batch: list[Op] = []
        spans: list[tuple[int, int, int, bool]] = []
        for index, request in pending:
            start = len(batch)
            single = isinstance(request, Op)
            if isinstance(request, Op):
                batch.append(request)
            else:
                batch.extend(request)
            spans.append((index, start, len(batch), single))
        outcomes: list[Any] = yield batch
        pending = []
        for index, start, end, single in spans:
            flow = flows[index]
            part = outcomes[start:end]
            failure = _first_error(part)
            try:
                if failure is not None:
                    request = flow.throw(failure)
                else:
                    request = flow.send(part[0] if single else part)
            except StopIteration as done:
                results[index] = done.value
                continue
            except Exception as raised:
                error = error or raised
                continue
            pending.append((index, request))
    if error is not None:
        raise error
    return results


def sequence(*flows: Flow[Any]) -> Flow[list[Any]]:
    """Run ``flows`` one after the other (for one that must see what an earlier one wrote);
    their return values, in order."""
    results = []
    for flow in flows:
        results.append((yield from flow))
    return results
