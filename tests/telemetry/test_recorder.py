"""The recorder driven the way the engine drives it, exported through the OpenTelemetry SDK:
span names, kinds, attributes, parents, events and statuses, and metric points with their bucket
boundaries, for a call that succeeds, retries, falls back, fails, streams, or is abandoned."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from guardedllm.errors import (
    AllRoutesFailedError,
    ContextWindowExceededError,
    ModelNotFoundError,
    ServerError,
    StreamInterruptedError,
    TimeoutError,
)
from guardedllm.estimate import Estimate
from guardedllm.telemetry import EVENT_BREAKER_TRANSITION, GUARDEDLLM_NAMES, AttemptSpan, CallSpan
from guardedllm.telemetry._semconv import DURATION_BUCKETS, TOKEN_BUCKETS
from guardedllm.types import Attempt, GuardInfo, Usage

from ._recording import ANTHROPIC_URL, OPENAI_URL, Recorded, chat_request, chunks, completion

ESTIMATE = Estimate(
    deployment="gpt-4o-mini",
    input_tokens=31,
    max_output_tokens=200,
    cost_usd_max=0.000125,
    cost_usd_expected=0.00005,
    fits_context=True,
    exact=True,
    tokenizer="o200k_base",
)


def start(recorded: Recorded, **request: object) -> CallSpan:
    return recorded.telemetry.start_call(
        requested="support", request=chat_request(**request), now=0.0
    )


def openai_attempt(
    call: CallSpan, number: int = 1, reason: str | None = None, now: float = 0.0
) -> AttemptSpan:
    return call.start_attempt(
        deployment="gpt-4o-mini",
        provider_kind="openai",
        provider_name="openai-main",
        vendor_model="gpt-4o-mini-2024-07-18",
        server_url=OPENAI_URL,
        number=number,
        reason=reason,
        now=now,
    )


def anthropic_attempt(call: CallSpan, reason: str | None = None, now: float = 0.0) -> AttemptSpan:
    return call.start_attempt(
        deployment="claude-haiku",
        provider_kind="anthropic",
        provider_name="anthropic",
        vendor_model="claude-3-5-haiku-20241022",
        server_url=ANTHROPIC_URL,
        number=1,
        reason=reason,
        now=now,
    )


def guard(
    deployment: str = "gpt-4o-mini", *attempts: Attempt, cost: float = 0.0000117
) -> GuardInfo:
    return GuardInfo(
        requested="support",
        route="support",
        route_reason="route 'support'",
        deployment=deployment,
        attempts=attempts
        or (Attempt(deployment=deployment, provider="openai", number=1, outcome="ok"),),
        estimate=ESTIMATE,
        cost_usd=cost,
    )


def events(span: ReadableSpan) -> list[tuple[str, dict[str, object]]]:
    return [(event.name, dict(event.attributes or {})) for event in span.events]


def children_of(recorded: Recorded, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        s
        for s in recorded.spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


# --------------------------------------------------------------------------- one attempt


def test_a_successful_call_is_a_call_span_over_one_attempt_span(recorded: Recorded) -> None:
    call = start(recorded)
    attempt = openai_attempt(call, now=0.05)
    attempt.end_ok(completion(), status=200, cost_usd=0.0000117, now=1.2)
    call.end_ok(guard(), now=1.25)

    call_span = recorded.span("chat support")
    attempt_span = recorded.span("chat gpt-4o-mini-2024-07-18")
    assert call_span.kind is SpanKind.CLIENT
    assert attempt_span.kind is SpanKind.CLIENT
    assert call_span.parent is None
    assert children_of(recorded, call_span) == [attempt_span]
    assert attempt_span.context.trace_id == call_span.context.trace_id
    assert call_span.status.status_code is StatusCode.UNSET
    assert attempt_span.status.status_code is StatusCode.UNSET

    assert dict(call_span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "support",
        "gen_ai.request.max_tokens": 200,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stream": False,
        "gen_ai.provider.name": "openai",
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.usage.cache_read.input_tokens": 10,
        "guardedllm.cost_usd": 0.0000117,
        "guardedllm.deployment": "gpt-4o-mini",
        "guardedllm.route": "support",
        "guardedllm.route.reason": "route 'support'",
        "guardedllm.attempt.count": 1,
        "guardedllm.estimate.input_tokens": 31,
        "guardedllm.estimate.max_output_tokens": 200,
        "guardedllm.estimate.cost_usd_max": 0.000125,
        "guardedllm.estimate.exact": True,
    }
    assert dict(attempt_span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.request.max_tokens": 200,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stream": False,
        "gen_ai.provider.name": "openai",
        "server.address": "api.openai.com",
        "server.port": 443,
        "guardedllm.deployment": "gpt-4o-mini",
        "guardedllm.provider": "openai-main",
        "guardedllm.attempt.number": 1,
        "http.response.status_code": 200,
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.usage.cache_read.input_tokens": 10,
        "guardedllm.cost_usd": 0.0000117,
    }
    assert events(call_span) == []


def test_a_successful_call_records_the_conventions_metrics(recorded: Recorded) -> None:
    call = start(recorded)
    attempt = openai_attempt(call, now=0.05)
    attempt.end_ok(completion(), status=200, cost_usd=0.0000117, now=1.2)
    call.end_ok(guard(), now=1.25)

    call_attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "support",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "server.address": "api.openai.com",
        "server.port": 443,
    }
    duration = recorded.point("gen_ai.client.operation.duration")
    assert dict(duration.attributes) == call_attributes
    assert (duration.count, duration.sum) == (1, pytest.approx(1.25))
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS
    assert recorded.metrics()["gen_ai.client.operation.duration"].unit == "s"

    tokens = recorded.metrics()["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    given = recorded.point("gen_ai.client.token.usage", gen_ai__token__type="input")
    taken = recorded.point("gen_ai.client.token.usage", gen_ai__token__type="output")
    assert dict(given.attributes) == {**call_attributes, "gen_ai.token.type": "input"}
    assert (given.sum, taken.sum) == (30, 12)
    assert tuple(given.explicit_bounds) == TOKEN_BUCKETS

    cost = recorded.point("guardedllm.cost")
    assert cost.value == pytest.approx(0.0000117)
    assert cost.attributes["guardedllm.deployment"] == "gpt-4o-mini"
    assert recorded.metrics()["guardedllm.cost"].unit == "{USD}"

    attempts = recorded.point("guardedllm.attempts")
    assert attempts.value == 1
    assert dict(attempts.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini-2024-07-18",
        "guardedllm.deployment": "gpt-4o-mini",
        "server.address": "api.openai.com",
        "server.port": 443,
        "guardedllm.attempt.outcome": "ok",
    }
    attempt_duration = recorded.point("guardedllm.attempt.duration")
    assert attempt_duration.sum == pytest.approx(1.15)
    # Not a stream: no chunk metrics; no retry or fallback happened.
    for name in (
        "gen_ai.client.operation.time_to_first_chunk",
        "guardedllm.retries",
        "guardedllm.fallbacks",
    ):
        assert recorded.points(name) == []


# --------------------------------------------------------------------------- retries and fallbacks


def test_a_retry_adds_an_error_attempt_an_event_and_a_counted_reason(recorded: Recorded) -> None:
    call = start(recorded)
    first = openai_attempt(call, number=1, now=0.0)
    first.end_error(ServerError("upstream said 503", status=503), status=503, now=0.3)
    second = openai_attempt(call, number=2, reason="503", now=0.8)
    second.end_ok(completion(), status=200, cost_usd=0.0000117, now=1.5)
    call.end_ok(guard(), now=1.5)

    call_span = recorded.span("chat support")
    failed, answered = sorted(children_of(recorded, call_span), key=lambda s: s.start_time or 0)
    assert failed.status.status_code is StatusCode.ERROR
    assert "upstream said 503" in (failed.status.description or "")
    assert failed.attributes is not None
    assert answered.attributes is not None
    assert failed.attributes["error.type"] == "503"
    assert failed.attributes["http.response.status_code"] == 503
    assert events(failed) == [
        (
            "exception",
            {
                "exception.type": "guardedllm.errors.ServerError",
                "exception.message": "upstream said 503",
            },
        )
    ]
    assert answered.attributes["guardedllm.attempt.number"] == 2
    assert answered.attributes["guardedllm.retry.reason"] == "503"
    assert "error.type" not in answered.attributes
    assert call_span.status.status_code is StatusCode.UNSET
    assert events(call_span) == [
        (
            "guardedllm.retry",
            {
                "guardedllm.deployment": "gpt-4o-mini",
                "guardedllm.attempt.number": 2,
                "guardedllm.retry.reason": "503",
            },
        )
    ]

    retry = recorded.point("guardedllm.retries")
    assert retry.value == 1
    assert dict(retry.attributes) == {
        "guardedllm.deployment": "gpt-4o-mini",
        "guardedllm.retry.reason": "503",
    }
    assert recorded.point("guardedllm.attempts", guardedllm__attempt__outcome="error").value == 1
    assert recorded.point("guardedllm.attempts", guardedllm__attempt__outcome="ok").value == 1
    errored = recorded.point("guardedllm.attempt.duration", error__type="503")
    assert errored.sum == pytest.approx(0.3)
    # The call succeeded: its duration carries no error.type, and covers both attempts.
    duration = recorded.point("gen_ai.client.operation.duration")
    assert "error.type" not in duration.attributes
    assert duration.sum == pytest.approx(1.5)


def test_a_fallback_names_both_deployments_and_the_call_reports_the_one_that_answered(
    recorded: Recorded,
) -> None:
    call = start(recorded)
    missing = openai_attempt(call, now=0.0)
    missing.end_error(
        ModelNotFoundError("gpt-4o-mini: model not found", status=404), status=404, now=0.1
    )
    answered = anthropic_attempt(call, reason="404", now=0.1)
    answered.end_ok(completion(model="claude-3-5-haiku-20241022"), status=200, now=0.9)
    call.end_ok(now=1.0)

    call_span = recorded.span("chat support")
    claude = recorded.span("chat claude-3-5-haiku-20241022")
    assert claude.parent is not None
    assert claude.parent.span_id == call_span.context.span_id
    assert claude.attributes is not None
    assert claude.attributes["gen_ai.provider.name"] == "anthropic"
    assert claude.attributes["guardedllm.fallback.reason"] == "404"
    assert claude.attributes["guardedllm.attempt.number"] == 1
    assert events(call_span) == [
        (
            "guardedllm.fallback",
            {
                "guardedllm.deployment": "claude-haiku",
                "guardedllm.fallback.from": "gpt-4o-mini",
                "guardedllm.fallback.reason": "404",
            },
        )
    ]
    assert call_span.attributes is not None
    assert call_span.attributes["gen_ai.provider.name"] == "anthropic"
    assert call_span.attributes["server.address"] == "api.anthropic.com"
    assert call_span.attributes["guardedllm.deployment"] == "claude-haiku"

    fallback = recorded.point("guardedllm.fallbacks")
    assert fallback.value == 1
    assert dict(fallback.attributes) == {
        "guardedllm.deployment": "claude-haiku",
        "guardedllm.fallback.from": "gpt-4o-mini",
        "guardedllm.fallback.reason": "404",
    }
    duration = recorded.point("gen_ai.client.operation.duration")
    assert duration.attributes["gen_ai.provider.name"] == "anthropic"
    assert duration.attributes["gen_ai.response.model"] == "claude-3-5-haiku-20241022"
    assert recorded.points("guardedllm.retries") == []


# --------------------------------------------------------------------------- failures


def test_a_failed_call_has_error_status_and_error_type_everywhere(recorded: Recorded) -> None:
    call = start(recorded)
    attempt = openai_attempt(call, now=0.0)
    timeout = TimeoutError("gpt-4o-mini: openai timed out (ReadTimeout).")
    attempt.end_error(timeout, now=5.0)
    failure = AllRoutesFailedError("'support': every deployment failed (gpt-4o-mini).")
    call.end_error(failure, now=5.0)

    call_span = recorded.span("chat support")
    attempt_span = recorded.span("chat gpt-4o-mini-2024-07-18")
    assert call_span.status.status_code is StatusCode.ERROR
    assert call_span.status.description == str(failure)
    assert call_span.attributes is not None
    assert attempt_span.attributes is not None
    assert call_span.attributes["error.type"] == "guardedllm.errors.AllRoutesFailedError"
    assert call_span.attributes["gen_ai.provider.name"] == "openai"  # the provider tried last
    assert attempt_span.attributes["error.type"] == "guardedllm.errors.TimeoutError"
    assert "http.response.status_code" not in attempt_span.attributes
    assert [name for name, _ in events(call_span)] == ["exception"]

    duration = recorded.point("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "guardedllm.errors.AllRoutesFailedError"
    assert "gen_ai.response.model" not in duration.attributes
    assert recorded.points("gen_ai.client.token.usage") == []
    assert recorded.points("guardedllm.cost") == []
    failed = recorded.point("guardedllm.attempts")
    assert failed.attributes["guardedllm.attempt.outcome"] == "error"
    assert failed.attributes["error.type"] == "guardedllm.errors.TimeoutError"


def test_a_call_refused_before_any_attempt_still_ends_its_span(recorded: Recorded) -> None:
    call = start(recorded)
    refusal = ContextWindowExceededError("too long", input_tokens=200_000, context_window=128_000)
    call.end_error(refusal, now=0.001)

    call_span = recorded.span("chat support")
    assert recorded.spans() == [call_span]
    assert call_span.attributes is not None
    assert call_span.attributes["error.type"] == "guardedllm.errors.ContextWindowExceededError"
    assert "gen_ai.provider.name" not in call_span.attributes
    assert recorded.point("gen_ai.client.operation.duration").count == 1


def test_ending_a_call_ends_the_attempts_left_open_under_it(recorded: Recorded) -> None:
    call = start(recorded)
    openai_attempt(call)
    call.end_error(KeyboardInterrupt(), now=0.2)  # thrown into the engine mid-attempt

    attempt_span = recorded.span("chat gpt-4o-mini-2024-07-18")
    assert attempt_span.end_time is not None
    assert attempt_span.attributes is not None
    assert attempt_span.attributes["error.type"] == "KeyboardInterrupt"


# --------------------------------------------------------------------------- streams


def test_a_completed_stream_records_time_to_first_chunk_and_per_chunk_latency(
    recorded: Recorded,
) -> None:
    call = start(recorded, stream=True)
    attempt = anthropic_attempt(call, now=0.1)
    attempt.first_chunk(now=0.4)
    attempt.next_chunk(now=0.5)
    attempt.next_chunk(now=0.75)
    streamed = chunks("Your parcel ", "ships today.")
    attempt.end_stream(streamed, usage=Usage.of(40, 8), cost_usd=0.000064, now=1.0)
    call.end_ok(guard("claude-haiku", cost=0.000064), now=1.0)

    call_span = recorded.span("chat support")
    attempt_span = recorded.span("chat claude-3-5-haiku-20241022")
    assert call_span.attributes is not None
    assert attempt_span.attributes is not None
    assert call_span.attributes["gen_ai.request.stream"] is True
    assert call_span.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.4)
    assert attempt_span.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.3)
    assert attempt_span.attributes["guardedllm.stream.outcome"] == "completed"
    assert attempt_span.attributes["guardedllm.stream.chunks"] == 3
    assert attempt_span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attempt_span.attributes["gen_ai.response.id"] == "chatcmpl-s"
    assert attempt_span.attributes["gen_ai.usage.output_tokens"] == 8
    assert "http.response.status_code" not in attempt_span.attributes
    assert call_span.attributes["gen_ai.usage.input_tokens"] == 40

    first = recorded.point("gen_ai.client.operation.time_to_first_chunk")
    assert first.sum == pytest.approx(0.4)
    assert tuple(first.explicit_bounds) == DURATION_BUCKETS
    assert first.attributes["gen_ai.request.model"] == "support"
    assert first.attributes["gen_ai.provider.name"] == "anthropic"
    per_chunk = recorded.point("gen_ai.client.operation.time_per_output_chunk")
    assert (per_chunk.count, per_chunk.sum) == (2, pytest.approx(0.35))
    assert recorded.point("gen_ai.client.operation.duration").sum == pytest.approx(1.0)
    assert recorded.point("gen_ai.client.token.usage", gen_ai__token__type="output").sum == 8
    assert recorded.point("guardedllm.cost").value == pytest.approx(0.000064)


def test_an_abandoned_stream_ends_both_spans_without_an_error(recorded: Recorded) -> None:
    call = start(recorded, stream=True)
    attempt = openai_attempt(call, now=0.0)
    attempt.first_chunk(now=0.2)
    call.abandon(now=0.3)  # the caller closed the stream: the driver's finally ends the call

    call_span = recorded.span("chat support")
    attempt_span = recorded.span("chat gpt-4o-mini-2024-07-18")
    for span in (call_span, attempt_span):
        assert span.end_time is not None
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes is not None
        assert span.attributes["guardedllm.stream.outcome"] == "abandoned"
        assert "error.type" not in span.attributes

    assert recorded.point("gen_ai.client.operation.time_to_first_chunk").sum == pytest.approx(0.2)
    abandoned = recorded.point("guardedllm.attempts")
    assert abandoned.attributes["guardedllm.attempt.outcome"] == "abandoned"
    # No duration (it would measure the caller's reading), no tokens, no cost (usage never came).
    for name in (
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "guardedllm.cost",
        "guardedllm.attempt.duration",
    ):
        assert recorded.points(name) == []


def test_a_stream_that_breaks_after_its_first_chunk_is_an_interrupted_error(
    recorded: Recorded,
) -> None:
    call = start(recorded, stream=True)
    attempt = openai_attempt(call, now=0.0)
    attempt.first_chunk(now=0.2)
    broken = StreamInterruptedError("gpt-4o-mini: the stream broke after 3 chunks")
    attempt.end_error(broken, status=200, now=0.6)
    call.end_error(broken, now=0.6)

    attempt_span = recorded.span("chat gpt-4o-mini-2024-07-18")
    assert attempt_span.attributes is not None
    assert attempt_span.attributes["guardedllm.stream.outcome"] == "interrupted"
    assert attempt_span.attributes["error.type"] == "guardedllm.errors.StreamInterruptedError"
    assert attempt_span.attributes["http.response.status_code"] == 200
    duration = recorded.point("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "guardedllm.errors.StreamInterruptedError"
    assert recorded.point("gen_ai.client.operation.time_to_first_chunk").count == 1


# --------------------------------------------------------------------------- the protocol


def test_every_end_is_idempotent_and_the_first_one_wins(recorded: Recorded) -> None:
    call = start(recorded, stream=True)
    attempt = openai_attempt(call)
    attempt.first_chunk(now=0.1)
    attempt.end_stream(chunks("hi"), usage=Usage.of(5, 1), now=0.5)
    call.end_ok(now=0.5)
    # A driver's finally runs after a completed stream; nothing changes.
    attempt.abandon(now=0.9)
    attempt.end_error(RuntimeError("late"), now=0.9)
    call.abandon(now=0.9)
    call.end_error(RuntimeError("late"), now=0.9)
    call.event(EVENT_BREAKER_TRANSITION, {"guardedllm.deployment": "x"})
    late = openai_attempt(call, number=2, reason="late")

    assert len(recorded.spans()) == 2
    call_span = recorded.span("chat support")
    assert call_span.status.status_code is StatusCode.UNSET
    assert call_span.attributes is not None
    assert "guardedllm.stream.outcome" not in call_span.attributes
    assert events(call_span) == []
    assert late.context is not None  # an attempt on an ended call is inert, not an error
    assert recorded.point("gen_ai.client.operation.duration").count == 1
    assert recorded.points("guardedllm.retries") == []


def test_a_losing_hedge_is_abandoned_when_the_call_ends(recorded: Recorded) -> None:
    call = start(recorded)
    slow = openai_attempt(call, now=0.0)
    call.event("guardedllm.hedge", {"guardedllm.deployment": "claude-haiku"})
    fast = anthropic_attempt(call, now=0.5)  # a hedge is neither a retry nor a fallback
    fast.end_ok(completion(model="claude-3-5-haiku-20241022"), status=200, now=0.9)
    call.end_ok(now=0.9)

    slow_span = recorded.span("chat gpt-4o-mini-2024-07-18")
    assert slow_span.attributes is not None
    assert slow_span.attributes["guardedllm.stream.outcome"] == "abandoned"
    assert slow.context is not None
    call_span = recorded.span("chat support")
    assert call_span.attributes is not None
    assert call_span.attributes["gen_ai.provider.name"] == "anthropic"
    assert [name for name, _ in events(call_span)] == ["guardedllm.hedge"]
    assert recorded.points("guardedllm.fallbacks") == []


def test_the_call_span_is_a_child_of_the_context_given_and_never_becomes_current(
    recorded: Recorded,
) -> None:
    app = recorded.tracer_provider.get_tracer("app")
    with app.start_as_current_span("handle request") as request_span:
        captured = otel_context.get_current()
    before = otel_context.get_current()
    call = recorded.telemetry.start_call(
        requested="support", request=chat_request(), parent_context=captured
    )
    assert otel_context.get_current() is before
    attempt = openai_attempt(call)
    assert otel_context.get_current() is before
    attempt.end_ok(completion(), status=200)
    call.end_ok()

    call_span = recorded.span("chat support")
    assert call_span.parent is not None
    assert call_span.parent.span_id == request_span.get_span_context().span_id
    assert trace.get_current_span(call.context).get_span_context() == call_span.context
    assert trace.get_current_span(attempt.context).get_span_context().span_id == (
        recorded.span("chat gpt-4o-mini-2024-07-18").context.span_id
    )


def test_without_a_parent_context_the_current_one_is_the_parent(recorded: Recorded) -> None:
    app = recorded.tracer_provider.get_tracer("app")
    with app.start_as_current_span("job") as job:
        call = recorded.telemetry.start_call(requested="support", request=chat_request())
    call.end_ok()
    call_span = recorded.span("chat support")
    assert call_span.parent is not None
    assert call_span.parent.span_id == job.get_span_context().span_id


def test_inject_writes_the_attempt_as_the_traceparent(recorded: Recorded) -> None:
    call = start(recorded)
    attempt = openai_attempt(call)
    headers: dict[str, str] = {}
    attempt.inject(headers)
    attempt.end_ok(completion(), status=200)
    call.end_ok()
    span_id = format(recorded.span("chat gpt-4o-mini-2024-07-18").context.span_id, "016x")
    assert headers["traceparent"].split("-")[2] == span_id


def test_durations_use_the_injected_clock_when_no_time_is_given() -> None:
    times = iter([10.0, 10.5, 12.0, 12.5])
    recorded = Recorded()
    recorded.telemetry = type(recorded.telemetry)(
        recorded.tracer_provider, recorded.meter_provider, clock=lambda: next(times)
    )
    call = recorded.telemetry.start_call(requested="support", request=chat_request())
    attempt = openai_attempt_without_time(call)
    attempt.end_ok(completion(), status=200)
    call.end_ok()
    assert recorded.point("guardedllm.attempt.duration").sum == pytest.approx(1.5)
    assert recorded.point("gen_ai.client.operation.duration").sum == pytest.approx(2.5)


def openai_attempt_without_time(call: CallSpan) -> AttemptSpan:
    return call.start_attempt(
        deployment="gpt-4o-mini",
        provider_kind="openai",
        provider_name="openai",
        vendor_model="gpt-4o-mini-2024-07-18",
        server_url=OPENAI_URL,
        number=1,
    )


def test_set_estimate_and_events_land_on_the_call_span(recorded: Recorded) -> None:
    call = start(recorded)
    call.set_estimate(ESTIMATE)
    call.event(
        EVENT_BREAKER_TRANSITION,
        {"guardedllm.deployment": "gpt-4o-mini", "guardedllm.breaker.state": "open"},
    )
    call.end_error(RuntimeError("no deployment left"))
    call_span = recorded.span("chat support")
    assert call_span.attributes is not None
    assert call_span.attributes["guardedllm.estimate.cost_usd_max"] == 0.000125
    assert events(call_span)[0] == (
        "guardedllm.breaker.transition",
        {"guardedllm.deployment": "gpt-4o-mini", "guardedllm.breaker.state": "open"},
    )


def test_request_parameters_map_to_the_conventions_attributes(recorded: Recorded) -> None:
    call = start(
        recorded,
        stop=("END",),
        seed=7,
        top_p=None,
        extra={"n": 2, "frequency_penalty": 0.5, "presence_penalty": 0, "logit_bias": {}},
        response_format={"type": "json_schema", "json_schema": {"name": "x"}},
    )
    call.end_ok()
    attributes = dict(recorded.span("chat support").attributes or {})
    assert attributes["gen_ai.request.stop_sequences"] == ("END",)
    assert attributes["gen_ai.request.seed"] == 7
    assert attributes["gen_ai.request.choice.count"] == 2
    assert attributes["gen_ai.request.frequency_penalty"] == 0.5
    assert attributes["gen_ai.request.presence_penalty"] == 0.0
    assert attributes["gen_ai.output.type"] == "json"
    assert "gen_ai.request.top_p" not in attributes


def test_every_guardedllm_name_emitted_is_a_documented_constant(recorded: Recorded) -> None:
    call = start(recorded, stream=True)
    first = openai_attempt(call)
    first.end_error(ServerError("busy", status=503), status=503)
    retry = openai_attempt(call, number=2, reason="503")
    retry.end_error(ModelNotFoundError("gone", status=404), status=404)
    answer = anthropic_attempt(call, reason="404")
    answer.first_chunk()
    answer.next_chunk()
    answer.end_stream(chunks("ok"), usage=Usage.of(3, 1), cost_usd=0.1)
    call.event(EVENT_BREAKER_TRANSITION, {"guardedllm.deployment": "gpt-4o-mini"})
    call.end_ok(guard())
    abandoned = start(recorded, stream=True)
    openai_attempt(abandoned).first_chunk()
    abandoned.abandon()
    recorded.telemetry.observe_breakers(lambda: [("gpt-4o-mini", "open")])
    recorded.telemetry.observe_retry_budgets(lambda: [("gpt-4o-mini", 1.0)])
    recorded.telemetry.observe_spend_budgets(lambda: [("daily", 1.0)])

    emitted = set(recorded.metrics())
    for span in recorded.spans():
        emitted |= set(span.attributes or {})
        for event in span.events:
            emitted |= {event.name, *(event.attributes or {})}
    for metric in recorded.metrics().values():
        for point in metric.data.data_points:
            emitted |= set(point.attributes or {})
    ours = {name for name in emitted if name.startswith("guardedllm.")}
    assert ours <= GUARDEDLLM_NAMES
    assert len(ours) > 25  # the scenario reached most of them
