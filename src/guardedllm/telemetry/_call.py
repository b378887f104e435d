"""``CallSpan``: what the engine records about one logical call (attempts: ``_attempt.py``).

Rules the recorder keeps:

- Spans start with an explicit parent context and are never made current: the engine is a
  generator resumed across awaits and threads, where attaching a context would leak into
  whatever code runs next. ``CallSpan.context`` / ``AttemptSpan.context`` are there for a driver
  that wants to make an attempt current around its own send (so that an instrumented httpx
  nests under it).
- Every ``end_*`` / ``abandon`` is idempotent: the first one wins, later ones do nothing, so a
  driver can end a stream's spans in a ``finally`` without tracking what already ended them.
  Ending a call ends any attempt still open under it.
- Nothing here raises into the call it observes, and nothing here blocks: recording is in-memory
  work handed to the SDK (which exports elsewhere) or, without an SDK, nothing at all.
- Work is done only for what is recorded: span attributes are built only for a span that
  ``is_recording()``; metrics are recorded unless telemetry is disabled. Durations come from the
  injected monotonic clock (``now`` arguments), so metrics agree with ``GuardInfo`` latencies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from guardedllm.telemetry import _content
from guardedllm.telemetry import _semconv as sc
from guardedllm.telemetry._attempt import NOOP_ATTEMPT, AttemptSpan, record_error
from guardedllm.telemetry._attributes import (
    Attributes,
    operation_of,
    request_attributes,
    summary_attributes,
    usage_attributes,
)
from guardedllm.telemetry._instruments import Instruments
from guardedllm.types import ChatRequest, GuardInfo, Usage

if TYPE_CHECKING:
    from guardedllm.estimate import Estimate

__all__ = ["NOOP_CALL", "CallSpan", "start_span"]

Clock = Callable[[], float]

_log = logging.getLogger("guardedllm.telemetry")


class CallSpan:
    """One logical call: a CLIENT span named ``chat {requested}`` and the call-level metrics.

    Created by ``Telemetry.start_call``; the engine starts one ``AttemptSpan`` per HTTP attempt
    under it and ends it once with ``end_ok``, ``end_error`` or ``abandon``.
    """

    __slots__ = (
        "_answer",
        "_clock",
        "_context",
        "_ended",
        "_first_chunk_at",
        "_instruments",
        "_last",
        "_open",
        "_record_content",
        "_request",
        "_request_attributes",
        "_requested",
        "_span",
        "_started",
        "_tracer",
        "operation",
    )

    def __init__(
        self,
        *,
        span: Span,
        parent: Context | None,
        tracer: Tracer | None,
        instruments: Instruments | None,
        clock: Clock,
        record_content: bool,
        request: ChatRequest | None,
        requested: str,
        started: float,
        ended: bool = False,
    ) -> None:
        self._span = span
        self._context = None if ended else trace.set_span_in_context(span, parent)
        self._tracer = tracer
        self._instruments = instruments
        self._clock = clock
        self._record_content = record_content
        self._request = request
        self._requested = requested
        self.operation = operation_of(request)
        self._started = started
        self._ended = ended
        self._request_attributes: Attributes | None = None
        self._open: list[AttemptSpan] = []
        self._last: AttemptSpan | None = None  # the attempt started last
        self._answer: AttemptSpan | None = None  # the attempt that answered
        self._first_chunk_at: float | None = None

    @property
    def context(self) -> Context:
        """A context whose current span is this call's (the caller's own when disabled)."""
        return self._context if self._context is not None else otel_context.get_current()

    @property
    def is_recording(self) -> bool:
        return self._span.is_recording()

    # ---------------------------------------------------------------- during the call

    def set_estimate(self, estimate: Estimate) -> None:
        """Record the pre-flight estimate (``guardedllm.estimate.*``) on the call span."""
        if self._ended or not self._span.is_recording():
            return
        self._span.set_attributes(_estimate_attributes(estimate))

    def event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Add a span event to the call: a breaker transition, a skipped deployment, a hedge, a
        shadow outcome (names in ``guardedllm.telemetry``: ``EVENT_*``). Retries and fallbacks
        need no event call: ``start_attempt`` with a ``reason`` records them."""
        if self._ended or not self._span.is_recording():
            return
        self._span.add_event(name, attributes)

    def retry_after_capped(self, deployment: str) -> None:
        """A vendor asked ``deployment``'s callers to wait longer than the guards honour
        (``guardedllm.retry_after.capped``)."""
        if self._instruments is not None:
            self._instruments.retry_after_capped.add(1, {sc.GUARDEDLLM_DEPLOYMENT: deployment})

    def cost_overshoot(self, deployment: str, usd: float) -> None:
        """An answer from ``deployment`` cost ``usd`` more than the worst case reserved for it
        (``guardedllm.cost.overshoot``)."""
        if self._instruments is not None:
            self._instruments.cost_overshoot.add(usd, {sc.GUARDEDLLM_DEPLOYMENT: deployment})

    def mark_shadow(self, route: str) -> None:
        """Mark this call as a shadow copy of a call to ``route`` (``guardedllm.shadow.of``)."""
        if not self._ended and self._span.is_recording():
            self._span.set_attribute(sc.GUARDEDLLM_SHADOW_OF, route)

    def start_attempt(
        self,
        *,
        deployment: str,
        provider_kind: str,
        provider_name: str,
        vendor_model: str,
        server_url: str,
        number: int,
        reason: str | None = None,
        now: float | None = None,
    ) -> AttemptSpan:
        """Start the span of one HTTP attempt, as a child of this call.

        ``number`` counts attempts on this deployment from 1. ``reason`` says why the attempt
        happens: None for the call's first attempt; with ``number > 1`` the retry's reason, with
        ``number == 1`` the reason the call fell back to this deployment. Reasons should be low
        cardinality (the failed attempt's ``error.type`` serves well): they label metrics.
        """
        if self._ended:
            return NOOP_ATTEMPT
        started = now if now is not None else self._clock()
        server = sc.server_of(server_url)
        semconv_provider = sc.provider_name(provider_kind, server)
        previous = self._last
        kind = None if reason is None else ("retry" if number > 1 else "fallback")

        span = start_span(
            self._tracer,
            f"{self.operation} {vendor_model}",
            self.context,
            {
                sc.GEN_AI_OPERATION_NAME: self.operation,
                sc.GEN_AI_REQUEST_MODEL: vendor_model,
                sc.GEN_AI_PROVIDER_NAME: semconv_provider,
            },
        )
        if span.is_recording():
            attributes = dict(self._base_attributes())
            attributes[sc.GEN_AI_REQUEST_MODEL] = vendor_model
            attributes[sc.GEN_AI_PROVIDER_NAME] = semconv_provider
            attributes[sc.GUARDEDLLM_DEPLOYMENT] = deployment
            attributes[sc.GUARDEDLLM_PROVIDER] = provider_name
            attributes[sc.GUARDEDLLM_ATTEMPT_NUMBER] = number
            if server is not None:
                attributes[sc.SERVER_ADDRESS], attributes[sc.SERVER_PORT] = server
            if kind == "retry":
                attributes[sc.GUARDEDLLM_RETRY_REASON] = reason or ""
            elif kind == "fallback":
                attributes[sc.GUARDEDLLM_FALLBACK_REASON] = reason or ""
            span.set_attributes(attributes)

        if kind is not None:
            self._note_move(kind, deployment, number, reason or "", previous)
        attempt = AttemptSpan(
            call=self,
            span=span,
            deployment=deployment,
            provider=semconv_provider,
            server=server,
            vendor_model=vendor_model,
            started=started,
        )
        self._open.append(attempt)
        self._last = attempt
        return attempt

    def _note_move(
        self, kind: str, deployment: str, number: int, reason: str, previous: AttemptSpan | None
    ) -> None:
        if kind == "retry":
            if self._span.is_recording():
                self._span.add_event(
                    sc.EVENT_RETRY,
                    {
                        sc.GUARDEDLLM_DEPLOYMENT: deployment,
                        sc.GUARDEDLLM_ATTEMPT_NUMBER: number,
                        sc.GUARDEDLLM_RETRY_REASON: reason,
                    },
                )
            if self._instruments is not None:
                self._instruments.retries.add(
                    1, {sc.GUARDEDLLM_DEPLOYMENT: deployment, sc.GUARDEDLLM_RETRY_REASON: reason}
                )
            return
        moved: dict[str, AttributeValue] = {
            sc.GUARDEDLLM_DEPLOYMENT: deployment,
            sc.GUARDEDLLM_FALLBACK_REASON: reason,
        }
        if previous is not None:
            moved[sc.GUARDEDLLM_FALLBACK_FROM] = previous.deployment
        if self._span.is_recording():
            self._span.add_event(sc.EVENT_FALLBACK, moved)
        if self._instruments is not None:
            self._instruments.fallbacks.add(1, moved)

    # ---------------------------------------------------------------- ending the call

    def end_ok(self, guard: GuardInfo | None = None, *, now: float | None = None) -> None:
        """The call answered: a response returned, or a stream completed. End its attempt
        first (``AttemptSpan.end_ok`` / ``end_stream``); ``guard`` adds the route, the attempt
        count, the estimate and the settled cost."""
        if self._ended:
            return
        ended_at = self._close(now)
        for attempt in tuple(self._open):  # hedges that lost, if the engine left them open
            attempt.abandon(now=ended_at)
        answer = self._answer
        usage = answer.usage if answer is not None else None
        cost = guard.cost_usd if guard is not None and guard.cost_usd is not None else None
        if cost is None and answer is not None:
            cost = answer.cost_usd
        if self._span.is_recording():
            attributes = self._outcome_attributes()
            if answer is not None:
                attributes.update(summary_attributes(answer.summary))
            if usage is not None:
                attributes.update(usage_attributes(usage))
            if cost is not None:
                attributes[sc.GUARDEDLLM_COST_USD] = cost
            if guard is not None:
                attributes.update(_guard_attributes(guard))
            self._span.set_attributes(attributes)
            self._add_content(answer)
        self._span.end()
        self._record_call(ended_at, error=None, usage=usage, cost=cost)

    def end_error(self, error: BaseException, *, now: float | None = None) -> None:
        """The call failed with ``error`` (what the caller receives)."""
        if self._ended:
            return
        ended_at = self._close(now)
        for attempt in tuple(self._open):
            attempt.end_error(error, now=ended_at)
        kind = sc.error_type(error)
        if self._span.is_recording():
            attributes = self._outcome_attributes()
            attributes[sc.ERROR_TYPE] = kind
            self._span.set_attributes(attributes)
            record_error(self._span, error)
            self._add_content(None)
        self._span.end()
        self._record_call(ended_at, error=kind, usage=None, cost=None)

    def abandon(self, *, now: float | None = None) -> None:
        """The caller stopped reading a stream before it ended. Not an error: the span ends
        with its status unset and ``guardedllm.stream.outcome = "abandoned"``. The operation
        duration is not recorded (it measures how long the caller read, not the model), nor are
        tokens or cost (the vendor's usage arrives at the end of the stream)."""
        if self._ended:
            return
        ended_at = self._close(now)
        for attempt in tuple(self._open):
            attempt.abandon(now=ended_at)
        if self._span.is_recording():
            attributes = self._outcome_attributes()
            attributes[sc.GUARDEDLLM_STREAM_OUTCOME] = "abandoned"
            self._span.set_attributes(attributes)
        self._span.end()
        if self._instruments is not None and self._first_chunk_at is not None:
            self._instruments.time_to_first_chunk.record(
                self._first_chunk_at - self._started, self._metric_attributes(None)
            )

    # ---------------------------------------------------------------- pieces

    def _close(self, now: float | None) -> float:
        self._ended = True
        return now if now is not None else self._clock()

    def _base_attributes(self) -> Attributes:
        if self._request_attributes is None:
            request = self._request
            self._request_attributes = request_attributes(request) if request is not None else {}
        return self._request_attributes

    def _outcome_attributes(self) -> Attributes:
        """The call span's provider, server and time to first chunk, from its attempts."""
        attributes: Attributes = {}
        source = self._answer or self._last
        if source is not None:
            attributes[sc.GEN_AI_PROVIDER_NAME] = source.provider
            attributes[sc.GUARDEDLLM_DEPLOYMENT] = source.deployment
            if source.server is not None:
                attributes[sc.SERVER_ADDRESS], attributes[sc.SERVER_PORT] = source.server
        if self._first_chunk_at is not None:
            attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (
                self._first_chunk_at - self._started
            )
        return attributes

    def _metric_attributes(self, error: str | None) -> Attributes:
        # The conventions' metric attributes: the operation, the provider that answered (or was
        # tried last), what was requested (the alias or route: the call's gen_ai.request.model),
        # the model that responded, the server, and error.type when the call failed.
        attributes: Attributes = {
            sc.GEN_AI_OPERATION_NAME: self.operation,
            sc.GEN_AI_REQUEST_MODEL: self._requested,
        }
        source = self._answer or self._last
        if source is not None:
            attributes[sc.GEN_AI_PROVIDER_NAME] = source.provider
            if source.server is not None:
                attributes[sc.SERVER_ADDRESS], attributes[sc.SERVER_PORT] = source.server
        if self._answer is not None and self._answer.summary.response_model:
            attributes[sc.GEN_AI_RESPONSE_MODEL] = self._answer.summary.response_model
        if error is not None:
            attributes[sc.ERROR_TYPE] = error
        return attributes

    def _record_call(
        self, ended_at: float, *, error: str | None, usage: Usage | None, cost: float | None
    ) -> None:
        instruments = self._instruments
        if instruments is None:
            return
        attributes = self._metric_attributes(error)
        instruments.operation_duration.record(ended_at - self._started, attributes)
        if self._first_chunk_at is not None:
            instruments.time_to_first_chunk.record(self._first_chunk_at - self._started, attributes)
        if usage is not None:
            instruments.token_usage.record(
                usage.prompt_tokens, {**attributes, sc.GEN_AI_TOKEN_TYPE: "input"}
            )
            instruments.token_usage.record(
                usage.completion_tokens, {**attributes, sc.GEN_AI_TOKEN_TYPE: "output"}
            )
        if cost is not None and self._answer is not None:
            instruments.cost.add(
                cost, {**attributes, sc.GUARDEDLLM_DEPLOYMENT: self._answer.deployment}
            )

    def _add_content(self, answer: AttemptSpan | None) -> None:
        if not self._record_content or self._request is None:
            return
        details: dict[str, AttributeValue] = {
            sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT,
            sc.GEN_AI_REQUEST_MODEL: self._requested,
        }
        try:
            details[sc.GEN_AI_INPUT_MESSAGES] = _content.input_messages(self._request.messages)
            output = answer.output_messages() if answer is not None else None
        except Exception:  # a message shape we do not know must not fail the call it records
            _log.warning(
                "guardedllm telemetry: could not record the content of a call to %r; the span "
                "has no messages. Please report the message shape.",
                self._requested,
                exc_info=True,
            )
            return
        if output is not None:
            details[sc.GEN_AI_OUTPUT_MESSAGES] = output
        self._span.add_event(sc.EVENT_OPERATION_DETAILS, details)

    # Called by attempts.
    def _attempt_ended(self, attempt: AttemptSpan, *, answered: bool) -> None:
        if attempt in self._open:
            self._open.remove(attempt)
        if answered:
            self._answer = attempt

    def _first_chunk(self, at: float) -> None:
        if self._first_chunk_at is None:
            self._first_chunk_at = at


def _guard_attributes(guard: GuardInfo) -> Attributes:
    attributes: Attributes = {
        sc.GUARDEDLLM_ROUTE: guard.route,
        sc.GUARDEDLLM_ROUTE_REASON: guard.route_reason,
        sc.GUARDEDLLM_ATTEMPT_COUNT: sum(1 for a in guard.attempts if a.outcome != "skipped"),
    }
    if guard.deployment is not None:
        attributes[sc.GUARDEDLLM_DEPLOYMENT] = guard.deployment
    if guard.estimate is not None:
        attributes.update(_estimate_attributes(guard.estimate))
    return attributes


def _estimate_attributes(estimate: Estimate) -> Attributes:
    return {
        sc.GUARDEDLLM_ESTIMATE_INPUT_TOKENS: estimate.input_tokens,
        sc.GUARDEDLLM_ESTIMATE_MAX_OUTPUT_TOKENS: estimate.max_output_tokens,
        sc.GUARDEDLLM_ESTIMATE_COST_USD_MAX: estimate.cost_usd_max,
        sc.GUARDEDLLM_ESTIMATE_EXACT: estimate.exact,
    }


def start_span(tracer: Tracer | None, name: str, parent: Context, attributes: Attributes) -> Span:
    """A CLIENT span under ``parent``; with no tracer (no tracing installed), a non-recording
    span that carries the parent's identity, as the API's no-op tracer would, for less."""
    if tracer is None:
        return NonRecordingSpan(trace.get_current_span(parent).get_span_context())
    return tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attributes)


def _noop_clock() -> float:
    return 0.0


# What a disabled Telemetry hands out: a call born ended, so every method returns at its first
# line and nothing is allocated per call.
NOOP_CALL = CallSpan(
    span=trace.INVALID_SPAN,
    parent=None,
    tracer=None,
    instruments=None,
    clock=_noop_clock,
    record_content=False,
    request=None,
    requested="",
    started=0.0,
    ended=True,
)
