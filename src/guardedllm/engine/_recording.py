"""Handing a call's record to the client's ``Recorder`` (``guardedllm.record``) as it ends.

A call is sampled once, before it is planned (``draft_for``); only a sampled call carries a
``Draft`` and is recorded. Every way a call ends passes here exactly once, alongside its span:
an answer (``Engine._finish``), a failure or a cancellation (``Engine.run``), a stream's end
(``_streaming.settle``), and a shadow copy's pair (``_routing.shadow_flow``). Here, on the
call's thread, the record's values are taken from what the call already holds: names and
numbers, and tuples of them, nothing that changes later or that the garbage collector keeps
tracking (a ``content="full"`` body is serialized here: its messages are the caller's dicts).
Writing its line (``record._build``'s template) and the file are the writer thread's. Nothing
here raises into the call: a record that cannot be built (a bug) is logged and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from guardedllm.record._build import (
    attempt_counts,
    body_of,
    call_line,
    finish_reason_of,
    params_of,
    shadow_line,
)
from guardedllm.types import ChatCompletion, ChatCompletionChunk, ChatRequest, Usage

if TYPE_CHECKING:
    from guardedllm.engine._call import Call
    from guardedllm.engine._engine import Engine
    from guardedllm.engine._routing import ShadowResult
    from guardedllm.registry import Deployment
    from guardedllm.routing import RouteFeatures
    from guardedllm.telemetry import CallSpan

__all__ = ["Draft", "draft_for", "record_call", "record_shadow"]

_log = logging.getLogger("guardedllm.record")


class Draft:
    """A sampled call's record, begun: its id, when it began (wall clock) and, for a shadow
    copy, the id of the call it copies."""

    __slots__ = ("id", "shadow_of", "time")

    def __init__(self, id: str, time: float, shadow_of: str | None) -> None:
        self.id = id
        self.time = time
        self.shadow_of = shadow_of


def draft_for(engine: Engine, features: RouteFeatures, copy_of: str | None) -> Draft | None:
    """The record of a call about to be planned, if the call is in the sample. A shadow copy
    (``copy_of``: the recorded call it copies) is recorded exactly when its call is."""
    recorder = engine.recorder
    assert recorder is not None
    if copy_of is None and not recorder.samples(features.key, engine.random):
        return None
    return Draft(recorder.new_id(), engine.wall_clock(), copy_of)


def record_call(
    engine: Engine,
    draft: Draft,
    request: ChatRequest,
    call: Call | None,
    *,
    status: str,
    error: BaseException | None = None,
    completion: ChatCompletion | None = None,
    chunks: Sequence[ChatCompletionChunk] = (),
    usage: Usage | None = None,
    cost_usd: float | None = None,
    latency_s: float,
    answered: bool,
) -> None:
    """Hand the record of a call that ended with ``status`` ("ok", "error", "abandoned") to
    the recorder. ``call`` is None when the call failed before it had a plan; ``answered``
    says whether the call's answering deployment is the record's (an answer, a stream)."""
    recorder = engine.recorder
    assert recorder is not None
    try:
        route: str | None = None
        split: tuple[str, str] | None = None
        deployment: Deployment | None = None
        counts: tuple[tuple[str, int, bool], ...] = ()
        sent = retries = fallbacks = 0
        escalated = False
        first_chunk_s: float | None = None
        if call is not None:  # else it failed before it had a plan
            plan = call.plan
            route, split, counts = plan.route, plan.split, _counts(call)
            if answered and call.answered is not None:
                deployment = call.answered.deployment
            sent, retries, fallbacks = attempt_counts(call.attempts)
            escalated = call.escalated
            if call.first_chunk_at is not None:
                first_chunk_s = call.first_chunk_at - call.started
        if usage is None and completion is not None:
            usage = completion.usage
        # call_line's arguments are positional, in the record's order.
        recorder.submit(
            call_line,
            draft.id,
            draft.time,
            engine.registry.env,
            request.model,
            route,
            split,
            draft.shadow_of,
            deployment.name if deployment is not None else None,
            deployment.model if deployment is not None else None,
            len(request.messages),
            counts,
            len(request.tools) if request.tools else 0,
            request.max_tokens,
            request.stream,
            tuple(params_of(request).items()),
            body_of(request) if recorder.full else None,
            status,
            type(error).__name__ if error is not None else None,
            sent,
            retries,
            fallbacks,
            escalated,
            latency_s,
            first_chunk_s,
            usage.prompt_tokens if usage is not None else None,
            usage.completion_tokens if usage is not None else None,
            cost_usd,
            finish_reason_of(completion, chunks),
        )
    except Exception:  # a bug here must not fail the call it records
        _log.warning(
            "guardedllm record: could not build the record of a call to %r; it is left out. "
            "Please report this.",
            request.model,
            exc_info=True,
        )


def _counts(call: Call) -> tuple[tuple[str, int, bool], ...]:
    """The prompt's counts the plan made, (tokenizer, tokens, exact) each, with the answering
    (else the first) deployment's tokenizer counted if the plan had not counted it (a call
    refused before any estimate)."""
    plan = call.plan
    counted = plan.counts.counted()
    deployment = call.answered.deployment if call.answered is not None else plan.deployments[0]
    if deployment.tokenizer not in counted:
        try:
            counted[deployment.tokenizer] = plan.counts.of(deployment.tokenizer)
        except Exception:  # a prompt that cannot be counted is refused elsewhere: no count
            _log.debug("guardedllm record: the prompt could not be counted", exc_info=True)
    return tuple([(name, count.tokens, count.exact) for name, count in counted.items()])


def record_shadow(engine: Engine, record_id: str, result: ShadowResult) -> None:
    """Hand a shadow pair (the recorded call ``record_id`` and its copy) to the recorder."""
    recorder = engine.recorder
    assert recorder is not None
    recorder.submit(
        shadow_line,
        record_id,
        engine.wall_clock(),
        result.route,
        result.candidate,
        result.primary_deployment,
        result.primary_ok,
        result.primary_latency_s,
        result.primary_cost_usd,
        result.ok,
        result.error_type,
        result.latency_s,
        result.cost_usd,
        result.same_content,
    )


def record_answer(engine: Engine, call: Call, result: ChatCompletion) -> None:
    """Hand an answered call's record (its answer finished, with its guard info) to the
    recorder."""
    assert call.draft is not None
    assert result.guard is not None
    record_call(
        engine,
        call.draft,
        call.plan.request,
        call,
        status="ok",
        completion=result,
        cost_usd=result.guard.cost_usd,
        latency_s=result.guard.latency_s,
        answered=True,
    )


def end_unanswered(
    engine: Engine,
    span: CallSpan,
    draft: Draft | None,
    request: ChatRequest,
    call: Call | None,
    *,
    started: float,
    error: BaseException | None,
) -> None:
    """End a call that failed with ``error``, or that its driver abandoned (None): its span,
    and its record if it is recorded."""
    ended = engine.clock()
    if error is None:
        span.abandon(now=ended)
    else:
        span.end_error(error, now=ended)
    if draft is not None:
        record_call(
            engine,
            draft,
            request,
            call,
            status="error" if error is not None else "abandoned",
            error=error,
            latency_s=ended - started,
            answered=False,
        )
