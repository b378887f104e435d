"""An attempt sent, and what the call makes of its success: the send step itself, an answer
once its settlement has run, a stream handed to its tracker, and the finished call's guard
info. Each a function of explicit inputs (the call, the turn, the clock)."""

from __future__ import annotations

from collections.abc import Callable, Generator

from guardedllm.engine._attempt import attempt_send, start_attempt_span
from guardedllm.engine._call import Call, Turn
from guardedllm.engine._guards import Guards, report_transition
from guardedllm.engine._phases import later
from guardedllm.engine._steps import Outcome, Step, StreamStart, StreamStarted
from guardedllm.engine._streaming import start_stream
from guardedllm.estimate import Calibrator
from guardedllm.guards import Permit
from guardedllm.state.flow import Flow
from guardedllm.telemetry import AttemptSpan, CallSpan
from guardedllm.types import ChatCompletion, ChatRequest, CreateEmbeddingResponse

__all__ = ["Answer", "answered", "finished", "send", "stream_started"]

# What a call that is not a stream returns: a chat completion, or an embeddings answer.
Answer = ChatCompletion | CreateEmbeddingResponse


def send(
    call: Call,
    request: ChatRequest,
    attempt: Turn,
    number: int,
    timeout: float,
    *,
    clock: Callable[[], float],
    max_body_bytes: int,
) -> Generator[Step, Outcome | None, tuple[Outcome | None, float, AttemptSpan]]:
    """One HTTP attempt: (its outcome, its latency on ``clock``, its span)."""
    step = attempt_send(call, request, attempt, timeout, max_body_bytes=max_body_bytes)
    attempt_span = start_attempt_span(call, attempt, number, reason=call.reason, now=clock())
    sent_at = clock()
    attempt.sending()
    outcome = yield step
    return outcome, clock() - sent_at, attempt_span


def answered(
    call: Call,
    attempt: Turn,
    *,
    number: int,
    result: Answer,
    status: int | None,
    latency: float,
    attempt_span: AttemptSpan,
    cost: float | None,
    now: float,
) -> Answer:
    """The answer, once the guards have settled it (``_phases.settle_answer``)."""
    call.record(attempt.target, number, status=status, latency=latency)
    call.answered = attempt
    if isinstance(result, ChatCompletion):
        attempt_span.end_ok(result, status=status or 200, cost_usd=cost, now=now)
    else:  # no choices to summarise: the span has the usage
        attempt_span.end_ok(
            None, status=status or 200, usage=result.billed(), cost_usd=cost, now=now
        )
    call.settled(attempt, cost)
    call.bill(cost, worst_usd=attempt.estimate.cost_usd_max)
    return result  # its guard info is added once the call is over (``finished``)


def finished(call: Call, result: Answer, *, now: float) -> Answer:
    """The answer with the whole call's guard info, the call span ended."""
    guard = call.guard_info(cost_usd=call.billed, now=now)
    call.span.end_ok(guard, now=call.started + guard.latency_s)
    # The answer was built by this call's parser and has not reached the caller: its guard is
    # set in place, as a frozen class's own __init__ sets its fields (``attrs.evolve`` would
    # copy the whole answer to change one field nobody has read, ~3 us a call).
    object.__setattr__(result, "guard", guard)
    return result


def stream_started(
    guards: Guards,
    call: Call,
    request: ChatRequest,
    attempt: Turn,
    *,
    number: int,
    outcome: StreamStarted,
    status: int | None,
    latency: float,
    attempt_span: AttemptSpan,
    calibrator: Calibrator,
    clock: Callable[[], float],
    record: Callable[..., None] | None = None,
) -> StreamStart:
    """The committed stream, handed to its tracker. No step may come between the stream's
    first chunk and its tracker: a flow closed there would leave the driver's open response
    to nobody. So the breaker hears of the success off the call's path (the permit taken off
    the turn at once), and the stream's end settles the rest (and, with ``record``, records the
    call: ``_recording.record_call`` for its engine)."""
    permit, attempt.permit = attempt.permit, None
    if permit is not None:
        later(guards, _record_success(guards, attempt, permit, latency, call.span))
    now = clock()
    call.record(attempt.target, number, status=status, latency=latency)
    call.answered = attempt
    call.first_chunk_at = now
    attempt_span.first_chunk(now=now)
    stream = start_stream(
        guards,
        call,
        request,
        attempt,
        outcome=outcome,
        guard=call.guard_info(cost_usd=None, now=now),
        attempt_span=attempt_span,
        calibrator=calibrator,
        clock=clock,
        record=record,
    )
    # From here the stream's tracker settles the reservation, however the stream ends; until
    # here, ``Turn.close`` would release it.
    attempt.handed_over = True
    return stream


def _record_success(
    guards: Guards, attempt: Turn, permit: Permit, latency: float, span: CallSpan
) -> Flow[None]:
    transition = yield from guards.breaker.record_flow(
        attempt.deployment.name, permit, "success", latency, guards.now()
    )
    report_transition(transition, span)
