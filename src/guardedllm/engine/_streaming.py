"""Handing a committed stream over to its tracker, and settling the call when it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import attrs

from guardedllm.engine._call import Call, Turn
from guardedllm.engine._outcomes import account, learn, stream_cost
from guardedllm.engine._steps import StreamStart, StreamStarted
from guardedllm.engine._stream import StreamEnd, StreamTracker
from guardedllm.state._background import run_logged
from guardedllm.state.flow import sequence
from guardedllm.telemetry import AttemptSpan
from guardedllm.types import ChatCompletionChunk, ChatRequest, GuardInfo, Usage

if TYPE_CHECKING:
    from guardedllm.engine._guards import Guards
    from guardedllm.estimate import Calibrator

__all__ = ["start_stream"]


def start_stream(
    guards: Guards,
    call: Call,
    request: ChatRequest,
    attempt: Turn,
    *,
    outcome: StreamStarted,
    guard: GuardInfo,
    attempt_span: AttemptSpan,
    calibrator: Calibrator,
    clock: Callable[[], float],
    record: Callable[..., None] | None = None,
) -> StreamStart:
    """The committed stream's tracker, whose settlement (called once, however the stream
    ends) accounts the usage (teaching ``calibrator``), ends the attempt's and the call's
    spans (on ``clock``) and, with ``record`` (``_recording.record_call`` for the engine),
    records the call. The call's cost is the stream's plus what the call was billed before
    it (a hedge's loser, at its worst case unless it reported usage)."""
    billed_before = call.billed

    def settle(
        how: StreamEnd,
        usage: Usage | None,
        received: Sequence[ChatCompletionChunk],
        error: BaseException | None,
        info: GuardInfo,
    ) -> tuple[float | None, Callable[[], None] | None]:
        now = clock()

        def settle_guards() -> float | None:
            settlement = account(guards, calibrator, attempt, usage)
            learning = learn(guards, attempt, outcome)
            if learning is None:
                cost: float | None = guards.run(settlement)
            else:  # after the usage correction, as for an answer
                cost = guards.run(sequence(settlement, learning))[0]
            return cost

        if guards.shared:  # the driver runs it off its event loop
            cost = stream_cost(attempt.deployment, usage)
            pending: Callable[[], None] | None = partial(run_logged, settle_guards)
        else:
            cost, pending = settle_guards(), None
        own = cost
        worst = attempt.estimate.cost_usd_max
        if own is not None and own > worst:  # billed beyond its worst case: counted
            call.span.cost_overshoot(attempt.deployment.name, own - worst)
        if cost is not None and billed_before is not None:
            cost += billed_before
        if how == "completed":
            attempt_span.end_stream(received, usage=usage, cost_usd=own, now=now)
            call.span.end_ok(attrs.evolve(info, cost_usd=cost), now=now)
        elif how == "interrupted" and error is not None:
            attempt_span.end_error(error, status=200, now=now)
            call.span.end_error(error, now=now)
        else:
            attempt_span.abandon(now=now)
            call.span.abandon(now=now)
        if call.draft is not None and record is not None:
            record(
                call.draft,
                request,
                call,
                status="ok" if how == "completed" else "error" if error else "abandoned",
                error=error,
                chunks=received,
                usage=usage,
                cost_usd=cost,
                latency_s=now - call.started,
                answered=True,
            )
        return cost, pending

    tracker = StreamTracker(
        guard=guard,
        target=attempt.target,
        decoder=outcome.decoder,
        include_usage=request.stream_include_usage,
        clock=clock,
        settle=settle,
        on_chunk=(lambda now: attempt_span.next_chunk(now=now))
        if attempt_span.times_chunks
        else None,
    )
    return StreamStart(handle=outcome.handle, first_chunks=outcome.first_chunks, tracker=tracker)
