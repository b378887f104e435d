"""``AttemptSpan``: one HTTP attempt of a call, and how a failure is put on a span.

See ``_call.py`` for the rules both spans keep (explicit parents, idempotent ends, work only for
what records, durations from the injected clock).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from guardedllm.errors import scrub_secrets
from guardedllm.telemetry import _content
from guardedllm.telemetry import _semconv as sc
from guardedllm.telemetry._attributes import (
    Attributes,
    ResponseSummary,
    summarize_chunks,
    summarize_completion,
    summary_attributes,
    usage_attributes,
)
from guardedllm.types import ChatCompletion, ChatCompletionChunk, Usage

if TYPE_CHECKING:
    from guardedllm.telemetry._call import CallSpan

__all__ = ["NOOP_ATTEMPT", "AttemptSpan", "record_error"]

# Longest error description put on a span status: enough for our one-paragraph messages.
_STATUS_DESCRIPTION_CHARS = 500


class AttemptSpan:
    """One HTTP attempt on one deployment: a CLIENT span named ``chat {vendor model}``.

    A non-streaming attempt ends with ``end_ok`` or ``end_error``. A streaming one calls
    ``first_chunk`` when its first chunk arrives (and ``next_chunk`` for each later chunk, if
    the driver wants the per-chunk latency metric), then ends with ``end_stream`` when the
    vendor's terminal event arrives, ``end_error`` when it breaks, or ``abandon`` when the
    caller stops reading.
    """

    __slots__ = (
        "_call",
        "_ended",
        "_first_chunk_at",
        "_last_chunk_at",
        "_metric_attributes_cache",
        "_output",
        "_span",
        "_started",
        "cost_usd",
        "deployment",
        "provider",
        "server",
        "summary",
        "usage",
        "vendor_model",
    )

    def __init__(
        self,
        *,
        call: CallSpan | None,
        span: Span,
        deployment: str,
        provider: str,
        server: tuple[str, int] | None,
        vendor_model: str,
        started: float,
        ended: bool = False,
    ) -> None:
        self._call = call
        self._span = span
        self.deployment = deployment
        self.provider = provider  # the gen_ai.provider.name value
        self.server = server
        self.vendor_model = vendor_model
        self._started = started
        self._ended = ended
        self._first_chunk_at: float | None = None
        self._last_chunk_at: float | None = None
        self._metric_attributes_cache: Attributes | None = None
        self._output: ChatCompletion | Sequence[ChatCompletionChunk] | None = None
        self.summary = ResponseSummary()
        self.usage: Usage | None = None
        self.cost_usd: float | None = None

    @property
    def context(self) -> Context:
        """A context whose current span is this attempt's (the caller's own when disabled)."""
        if self._call is None:
            return otel_context.get_current()
        return trace.set_span_in_context(self._span, self._call.context)

    def inject(self, carrier: MutableMapping[str, str]) -> None:
        """Write this attempt's trace context into ``carrier`` (HTTP headers) with the
        application's configured propagators, for a gateway or proxy that continues traces."""
        if self._call is not None:
            # Imported here: opentelemetry.propagate loads the configured propagators' entry
            # points when imported, a cost only a driver that injects should pay.
            from opentelemetry import propagate

            propagate.inject(carrier, context=self.context)

    # ---------------------------------------------------------------- streams

    def first_chunk(self, *, now: float | None = None) -> None:
        """The stream's first chunk arrived (time to first chunk is measured to here)."""
        if self._ended or self._first_chunk_at is not None or self._call is None:
            return
        at = now if now is not None else self._call._clock()
        self._first_chunk_at = self._last_chunk_at = at
        self._call._first_chunk(at)
        if self._span.is_recording():
            self._span.set_attribute(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, at - self._started)

    @property
    def times_chunks(self) -> bool:
        """Whether ``next_chunk`` records anything (a metrics SDK is installed): a stream
        with nobody measuring it need not call it per chunk."""
        return not self._ended and self._call is not None and self._call._instruments is not None

    def next_chunk(self, *, now: float | None = None) -> None:
        """Another chunk arrived: records ``gen_ai.client.operation.time_per_output_chunk``."""
        call = self._call
        if self._ended or call is None or call._instruments is None:
            return
        at = now if now is not None else call._clock()
        if self._last_chunk_at is None:
            self.first_chunk(now=at)
            return
        call._instruments.time_per_output_chunk.record(
            at - self._last_chunk_at, self._metric_attributes(None)
        )
        self._last_chunk_at = at

    # ---------------------------------------------------------------- ending the attempt

    def end_ok(
        self,
        response: ChatCompletion | None,
        *,
        status: int,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        now: float | None = None,
    ) -> None:
        """A complete answer: ``response`` parsed from a ``status`` response. ``usage``
        defaults to the response's; ``cost_usd`` is the actual cost of this attempt."""
        if self._ended:
            return
        if usage is None and response is not None:
            usage = response.usage
        summary = summarize_completion(response) if response is not None else ResponseSummary()
        self._finish(summary, usage, cost_usd, output=response, status=status, now=now)

    def end_stream(
        self,
        chunks: Sequence[ChatCompletionChunk],
        *,
        usage: Usage | None,
        cost_usd: float | None = None,
        now: float | None = None,
    ) -> None:
        """The stream completed: ``chunks`` is everything it delivered, ``usage`` what the
        vendor reported at its end."""
        if self._ended:
            return
        summary = summarize_chunks(chunks, detailed=self._span.is_recording())
        if self._span.is_recording():
            self._span.set_attribute(sc.GUARDEDLLM_STREAM_OUTCOME, "completed")
        self._finish(summary, usage, cost_usd, output=chunks, status=None, now=now)

    def end_error(
        self, error: BaseException, *, status: int | None = None, now: float | None = None
    ) -> None:
        """The attempt failed: an error status (``status``), a transport failure, a body that
        did not parse, or a stream that broke after its first chunk."""
        call = self._call
        if self._ended or call is None:
            return
        self._ended = True
        at = now if now is not None else call._clock()
        call._attempt_ended(self, answered=False)
        kind = sc.error_type(error, status)
        if self._span.is_recording():
            attributes: Attributes = {sc.ERROR_TYPE: kind}
            if status is not None:
                attributes[sc.HTTP_RESPONSE_STATUS_CODE] = status
            if self._first_chunk_at is not None:
                attributes[sc.GUARDEDLLM_STREAM_OUTCOME] = "interrupted"
            self._span.set_attributes(attributes)
            record_error(self._span, error)
        self._span.end()
        self._record_attempt(at, outcome="error", error=kind)

    def abandon(self, *, now: float | None = None) -> None:
        """The caller stopped reading this attempt's stream (or the call ended around it).
        Counted in ``guardedllm.attempts`` as "abandoned"; no duration is recorded."""
        self._drop("abandoned")

    def cancel(self, *, now: float | None = None) -> None:
        """A hedged attempt lost the race and was cancelled (or its late answer dropped).
        Counted in ``guardedllm.attempts`` as "cancelled"; no duration is recorded."""
        self._drop("cancelled")

    def _drop(self, outcome: str) -> None:
        call = self._call
        if self._ended or call is None:
            return
        self._ended = True
        call._attempt_ended(self, answered=False)
        if self._span.is_recording():
            if outcome == "abandoned":
                self._span.set_attribute(sc.GUARDEDLLM_STREAM_OUTCOME, "abandoned")
            self._span.set_attribute(sc.GUARDEDLLM_ATTEMPT_OUTCOME, outcome)
        self._span.end()
        if call._instruments is not None:
            attributes = {
                **self._metric_attributes(None),
                sc.GUARDEDLLM_ATTEMPT_OUTCOME: outcome,
            }
            call._instruments.attempts.add(1, attributes)

    def output_messages(self) -> str | None:
        """The answer as ``gen_ai.output.messages`` JSON (for ``record_content``)."""
        if isinstance(self._output, ChatCompletion):
            return _content.output_messages_of_completion(self._output)
        if self._output is not None:
            return _content.output_messages_of_chunks(self._output)
        return None

    # ---------------------------------------------------------------- pieces

    def _finish(
        self,
        summary: ResponseSummary,
        usage: Usage | None,
        cost_usd: float | None,
        *,
        output: ChatCompletion | Sequence[ChatCompletionChunk] | None,
        status: int | None,
        now: float | None,
    ) -> None:
        call = self._call
        if call is None:
            return
        self._ended = True
        at = now if now is not None else call._clock()
        self.summary, self.usage, self.cost_usd = summary, usage, cost_usd
        if call._record_content:  # kept only to be recorded; otherwise dropped with the span
            self._output = output
        call._attempt_ended(self, answered=True)
        if self._span.is_recording():
            attributes = summary_attributes(summary)
            if status is not None:
                attributes[sc.HTTP_RESPONSE_STATUS_CODE] = status
            if usage is not None:
                attributes.update(usage_attributes(usage))
            if cost_usd is not None:
                attributes[sc.GUARDEDLLM_COST_USD] = cost_usd
            self._span.set_attributes(attributes)
        self._span.end()
        self._record_attempt(at, outcome="ok", error=None)

    def _metric_attributes(self, error: str | None) -> Attributes:
        cached = self._metric_attributes_cache
        if cached is None:
            cached = {
                sc.GEN_AI_OPERATION_NAME: (
                    self._call.operation if self._call is not None else sc.OPERATION_CHAT
                ),
                sc.GEN_AI_PROVIDER_NAME: self.provider,
                sc.GEN_AI_REQUEST_MODEL: self.vendor_model,
                sc.GUARDEDLLM_DEPLOYMENT: self.deployment,
            }
            if self.server is not None:
                cached[sc.SERVER_ADDRESS], cached[sc.SERVER_PORT] = self.server
            self._metric_attributes_cache = cached
        return cached if error is None else {**cached, sc.ERROR_TYPE: error}

    def _record_attempt(self, at: float, *, outcome: str, error: str | None) -> None:
        call = self._call
        if call is None or call._instruments is None:
            return
        attributes = {**self._metric_attributes(error), sc.GUARDEDLLM_ATTEMPT_OUTCOME: outcome}
        call._instruments.attempt_duration.record(at - self._started, attributes)
        call._instruments.attempts.add(1, attributes)


def record_error(span: Span, error: BaseException) -> None:
    # The exception as the conventions record it, by hand rather than span.record_exception:
    # the message is scrubbed of anything shaped like a key first (a transport error quotes
    # httpx, whose messages may quote a URL), and no stack trace is formatted per failure.
    message = scrub_secrets(str(error))
    span.add_event(
        sc.EVENT_EXCEPTION,
        {sc.EXCEPTION_TYPE: sc.qualified_name(type(error)), sc.EXCEPTION_MESSAGE: message},
    )
    span.set_status(Status(StatusCode.ERROR, message[:_STATUS_DESCRIPTION_CHARS]))


# What a disabled Telemetry's calls hand out: an attempt born ended, so every method returns at
# its first line and nothing is allocated per attempt.
NOOP_ATTEMPT = AttemptSpan(
    call=None,
    span=trace.INVALID_SPAN,
    deployment="",
    provider="",
    server=None,
    vendor_model="",
    started=0.0,
    ended=True,
)
