"""Telemetry through the real clients: what ``Client`` and ``AsyncClient`` (asyncio and trio)
export against FakeProvider, with the SDK's in-memory span exporter and metric reader.

For answers, retries, fallbacks, a breaker opening and closing, streams completed, abandoned
and interrupted, and failures: span names, kinds, attributes and parents (the call span under
the caller's own current span, in threads, asyncio tasks and trio tasks; attempt spans under
the call span), the call span's events, and the metric points. And that no API key reaches
any of it. Figures asserted are counts (attempts, requests, points), never wall time.
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from guardedllm import Policy, Registry
from guardedllm.errors import (
    AllRoutesFailedError,
    AuthenticationError,
    BadRequestError,
    RateLimitedError,
    StreamInterruptedError,
)
from guardedllm.guards import BreakerConfig, SpendBudget
from guardedllm.telemetry import GUARDEDLLM_NAMES
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion, GuardInfo
from support import ENVIRON

from ._recording import Recorded
from ._sessions import Session, VirtualClock, open_session
from .test_privacy import every_string

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
CLAUDE_ID = "claude-3-5-haiku-20241022"
GEMINI_ID = "gemini-2.0-flash"

OpenSession = Callable[..., Session]

# Under trio, closing an AsyncStream early leaves httpx's chain of body generators suspended
# (AsyncStream._generate closes the response, not the iterators reading it); trio warns when
# they are garbage collected. httpx's own generators cannot be closed from outside
# (encode/httpx#3686). See the report for the fix proposed in aclient.py.
UNCLOSED_BODY_WARNING = "Async generator 'http"


@pytest.fixture
def session(driver: str, registry: Registry, recorded: Recorded) -> Iterator[OpenSession]:
    """Opens sessions on the test's driver, recording into ``recorded`` unless given another
    ``telemetry``; closes them after the test."""
    opened: list[Session] = []

    def open_(**client_kwargs: Any) -> Session:
        client_kwargs.setdefault("environ", ENVIRON)
        client_kwargs.setdefault("random", lambda: 0.0)  # backoff sleeps nothing
        client_kwargs.setdefault("telemetry", recorded.telemetry)
        tracer = recorded.tracer_provider.get_tracer("the-application")
        opened.append(open_session(driver, registry, tracer, **client_kwargs))
        return opened[-1]

    yield open_
    for each in opened:
        each.close()


# --------------------------------------------------------------------------- reading spans


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def call_spans(recorded: Recorded) -> list[ReadableSpan]:
    """The spans of logical calls: those whose parent is not another guardedllm span."""
    ours = {s.context.span_id for s in recorded.spans() if _is_ours(s)}
    return [
        s
        for s in recorded.spans()
        if _is_ours(s) and (s.parent is None or s.parent.span_id not in ours)
    ]


def attempts_of(recorded: Recorded, call: ReadableSpan) -> list[ReadableSpan]:
    """The attempt spans under ``call``, in the order they started."""
    children = [
        s
        for s in recorded.spans()
        if s.parent is not None and s.parent.span_id == call.context.span_id
    ]
    return sorted(children, key=lambda s: s.start_time or 0)


def the_call(recorded: Recorded) -> tuple[ReadableSpan, list[ReadableSpan]]:
    calls = call_spans(recorded)
    assert len(calls) == 1, [s.name for s in recorded.spans()]
    return calls[0], attempts_of(recorded, calls[0])


def _is_ours(span: ReadableSpan) -> bool:
    return (
        span.instrumentation_scope is not None and span.instrumentation_scope.name == "guardedllm"
    )


def events(span: ReadableSpan, name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.name, dict(e.attributes or {})) for e in span.events if name is None or e.name == name
    ]


def assert_well_nested(call: ReadableSpan, attempts: Sequence[ReadableSpan]) -> None:
    """Every attempt is a CLIENT child of the call, in its trace, within its time."""
    assert call.kind is SpanKind.CLIENT
    for attempt in attempts:
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.context.trace_id == call.context.trace_id
        assert attempt.parent is not None
        assert attempt.parent.span_id == call.context.span_id
        (call_start, call_end), (start, end) = times(call), times(attempt)
        assert call_start <= start <= end <= call_end


def times(span: ReadableSpan) -> tuple[int, int]:
    """When ``span`` started and ended (ns); it has ended."""
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time, span.end_time


def series(recorded: Recorded, name: str) -> list[tuple[dict[str, Any], float]]:
    """Metric ``name``'s points: (attributes, a counter's or gauge's value / a histogram's
    count)."""
    return [(dict(p.attributes or {}), _amount(p)) for p in recorded.points(name)]


def totals(recorded: Recorded, name: str, *keys: str) -> dict[Any, float]:
    """Metric ``name`` summed by the values of the attributes ``keys`` (one key: its value
    alone; an attribute a point lacks: None)."""
    result: dict[Any, float] = {}
    for attributes, amount in series(recorded, name):
        values = tuple(attributes.get(key) for key in keys)
        group = values[0] if len(keys) == 1 else values
        result[group] = result.get(group, 0) + amount
    return result


def _amount(point: Any) -> float:
    return float(point.value) if hasattr(point, "value") else float(point.count)


def guard_of(response: ChatCompletion) -> GuardInfo:
    assert response.guard is not None
    return response.guard


# --------------------------------------------------------------------------- an answer


def test_an_answer_is_a_call_span_over_one_attempt_span_with_its_metrics(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    response = session().create(
        model="chat", messages=MESSAGES, max_tokens=50, temperature=0.2, seed=7
    )
    guard = guard_of(response)

    call, attempts = the_call(recorded)
    assert [s.name for s in recorded.spans()] == [f"chat {OPENAI_ID}", "chat chat"]
    assert call.parent is None  # no current span: the call starts a trace
    assert_well_nested(call, attempts)
    assert call.status.status_code is StatusCode.UNSET
    usage = response.usage
    assert usage is not None
    assert guard.cost_usd is not None
    server = {"server.address": "127.0.0.1", "server.port": fake_provider.port}
    shared = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stream": False,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": OPENAI_ID,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "guardedllm.deployment": "gpt-4o-mini",
        "guardedllm.cost_usd": pytest.approx(guard.cost_usd),
        **server,
    }
    estimate = guard.estimate
    assert estimate is not None
    assert attrs_of(call) == {
        **shared,
        "gen_ai.request.model": "chat",
        "guardedllm.route": guard.route,
        "guardedllm.route.reason": guard.route_reason,
        "guardedllm.attempt.count": 1,
        "guardedllm.estimate.input_tokens": estimate.input_tokens,
        "guardedllm.estimate.max_output_tokens": 50,
        "guardedllm.estimate.cost_usd_max": pytest.approx(estimate.cost_usd_max),
        "guardedllm.estimate.exact": True,
    }
    assert attrs_of(attempts[0]) == {
        **shared,
        "gen_ai.request.model": OPENAI_ID,
        "guardedllm.provider": "openai",
        "guardedllm.attempt.number": 1,
        "http.response.status_code": 200,
    }
    assert attempts[0].status.status_code is StatusCode.UNSET
    assert events(call) == []  # content is off by default
    assert events(attempts[0]) == []

    call_metric = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "chat",
        "gen_ai.response.model": OPENAI_ID,
        **server,
    }
    assert series(recorded, "gen_ai.client.operation.duration") == [(call_metric, 1)]
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in recorded.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": usage.prompt_tokens, "output": usage.completion_tokens}
    ((cost_attributes, cost),) = series(recorded, "guardedllm.cost")
    assert cost_attributes == {**call_metric, "guardedllm.deployment": "gpt-4o-mini"}
    assert cost == pytest.approx(guard.cost_usd)
    attempt_metric = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": OPENAI_ID,
        "guardedllm.deployment": "gpt-4o-mini",
        "guardedllm.attempt.outcome": "ok",
        **server,
    }
    assert series(recorded, "guardedllm.attempts") == [(attempt_metric, 1)]
    assert series(recorded, "guardedllm.attempt.duration") == [(attempt_metric, 1)]
    for name in ("guardedllm.retries", "guardedllm.fallbacks"):
        assert recorded.points(name) == []
    assert len(fake_provider.requests) == 1


def test_each_vendor_is_named_by_the_conventions_on_both_spans(
    session: OpenSession, recorded: Recorded
) -> None:
    client = session()
    expected = {
        "gpt-4o-mini": ("openai", "openai", OPENAI_ID),
        "azure-4o": ("azure.ai.openai", "azure", "prod-gpt-4o"),
        "llama": ("openai-compatible", "local", "llama-3.1-8b-instruct"),
        "claude-haiku": ("anthropic", "anthropic", CLAUDE_ID),
        "gemini-flash": ("gcp.gemini", "gemini", GEMINI_ID),
    }
    for deployment in expected:
        client.create(model=deployment, messages=MESSAGES, max_tokens=20)

    seen = {}
    for call in call_spans(recorded):
        (attempt,) = attempts_of(recorded, call)
        assert_well_nested(call, [attempt])
        a = attrs_of(attempt)
        assert attrs_of(call)["gen_ai.provider.name"] == a["gen_ai.provider.name"]
        assert attempt.name == f"chat {a['gen_ai.request.model']}"
        seen[attrs_of(call)["gen_ai.request.model"]] = (
            a["gen_ai.provider.name"],
            a["guardedllm.provider"],
            a["gen_ai.request.model"],
        )
    assert seen == expected
    assert totals(recorded, "guardedllm.attempts", "gen_ai.provider.name") == dict.fromkeys(
        [v[0] for v in expected.values()], 1
    )


# --------------------------------------------------------------------------- retry, fallback


def test_a_retry_is_a_second_attempt_span_and_a_retry_event(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=500, times=1)
    response = session().create(model="gpt-4o-mini", messages=MESSAGES)

    call, (failed, retried) = the_call(recorded)
    assert_well_nested(call, [failed, retried])
    assert failed.status.status_code is StatusCode.ERROR
    assert {k: attrs_of(failed).get(k) for k in ("error.type", "http.response.status_code")} == {
        "error.type": "500",
        "http.response.status_code": 500,
    }
    ((_, exception),) = events(failed, "exception")
    assert exception["exception.type"] == "guardedllm.errors.ServerError"
    assert "500" in exception["exception.message"]
    assert attrs_of(retried)["guardedllm.attempt.number"] == 2
    assert attrs_of(retried)["guardedllm.retry.reason"] == "500"
    assert "error.type" not in attrs_of(retried)
    assert retried.status.status_code is StatusCode.UNSET

    assert call.status.status_code is StatusCode.UNSET
    assert attrs_of(call)["guardedllm.attempt.count"] == 2
    assert "error.type" not in attrs_of(call)
    assert events(call) == [
        (
            "guardedllm.retry",
            {
                "guardedllm.deployment": "gpt-4o-mini",
                "guardedllm.attempt.number": 2,
                "guardedllm.retry.reason": "500",
            },
        )
    ]
    assert series(recorded, "guardedllm.retries") == [
        ({"guardedllm.deployment": "gpt-4o-mini", "guardedllm.retry.reason": "500"}, 1)
    ]
    outcomes = totals(recorded, "guardedllm.attempts", "guardedllm.attempt.outcome", "error.type")
    assert outcomes == {("error", "500"): 1, ("ok", None): 1}
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert "error.type" not in duration.attributes  # the call answered
    # One original request deposited 0.2 of a retry and the retry withdrew one from the
    # default reserve of 10 (1/s over 10 s); an untouched deployment shows the whole reserve.
    budgets = totals(recorded, "guardedllm.retry_budget.available", "guardedllm.deployment")
    assert budgets["gpt-4o-mini"] == pytest.approx(9.2)
    assert budgets["azure-4o"] == pytest.approx(10.0)
    assert len(fake_provider.requests) == 2
    assert [a.outcome for a in guard_of(response).attempts] == ["error", "ok"]


def test_a_retry_after_past_the_cap_is_counted(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=999_999, times=1)
    fake_provider.script(model=CLAUDE_ID, status=503, retry_after=1e9, times=1)
    fake_provider.script(model=GEMINI_ID, status=429, retry_after=2, times=1)
    client = session(clock=VirtualClock())
    for deployment in ("gpt-4o-mini", "claude-haiku", "gemini-flash"):
        with pytest.raises(RateLimitedError):
            client.create(model=deployment, messages=MESSAGES, policy=Policy(deadline_s=1))

    # One point per deployment whose vendor asked for more than max_retry_after_s (a 429 or
    # any other status): the 2 s Retry-After was honoured as asked, and is not counted.
    assert series(recorded, "guardedllm.retry_after.capped") == [
        ({"guardedllm.deployment": "gpt-4o-mini"}, 1),
        ({"guardedllm.deployment": "claude-haiku"}, 1),
    ]


def test_a_fallback_moves_to_the_next_deployment_with_a_fallback_event(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    session().create(model="support", messages=MESSAGES)

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    assert [(s.name, s.status.status_code) for s in attempts] == [
        (f"chat {OPENAI_ID}", StatusCode.ERROR),
        (f"chat {OPENAI_ID}", StatusCode.ERROR),
        (f"chat {CLAUDE_ID}", StatusCode.UNSET),
    ]
    moved = attrs_of(attempts[2])
    assert (moved["guardedllm.attempt.number"], moved["guardedllm.fallback.reason"]) == (1, "503")
    assert "guardedllm.retry.reason" not in moved
    assert [name for name, _ in events(call)] == ["guardedllm.retry", "guardedllm.fallback"]
    assert events(call, "guardedllm.fallback")[0][1] == {
        "guardedllm.deployment": "claude-haiku",
        "guardedllm.fallback.from": "gpt-4o-mini",
        "guardedllm.fallback.reason": "503",
    }
    answered = attrs_of(call)
    assert answered["gen_ai.request.model"] == "support"
    assert answered["guardedllm.route"] == "support"
    assert (answered["gen_ai.provider.name"], answered["guardedllm.deployment"]) == (
        "anthropic",
        "claude-haiku",
    )
    assert answered["guardedllm.attempt.count"] == 3
    assert call.status.status_code is StatusCode.UNSET

    assert series(recorded, "guardedllm.fallbacks") == [
        (
            {
                "guardedllm.deployment": "claude-haiku",
                "guardedllm.fallback.from": "gpt-4o-mini",
                "guardedllm.fallback.reason": "503",
            },
            1,
        )
    ]
    attempts_by = totals(
        recorded, "guardedllm.attempts", "guardedllm.deployment", "guardedllm.attempt.outcome"
    )
    assert attempts_by == {("gpt-4o-mini", "error"): 2, ("claude-haiku", "ok"): 1}
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert duration.attributes["gen_ai.provider.name"] == "anthropic"
    assert duration.attributes["gen_ai.request.model"] == "support"
    assert [r.vendor for r in fake_provider.requests] == ["openai", "openai", "anthropic"]


# --------------------------------------------------------------------------- the breaker


def test_a_breaker_opening_skipping_and_closing_is_on_the_spans_and_the_gauge(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    # Opens on two failed attempts (one call: an attempt and its retry), stays open 30 s of
    # virtual time, then lets one probe through and closes on its success.
    clock = VirtualClock()
    client = session(
        virtual=clock,
        breaker=BreakerConfig(
            minimum_calls=2, open_s=30, open_jitter=0, half_open_probes=1, half_open_successes=1
        ),
    )

    def breaker_states() -> dict[str, float]:
        """gpt-4o-mini's breaker gauge, collected now (each series 1 or 0)."""
        metric = Recorded.collect(recorded.reader)["guardedllm.breaker.state"]
        found = {}
        for point in metric.data.data_points:
            attributes = dict(point.attributes or {})
            if attributes["guardedllm.deployment"] == "gpt-4o-mini":
                found[str(attributes["guardedllm.breaker.state"])] = _amount(point)
        return found

    fake_provider.script(model=OPENAI_ID, status=503, times=2)
    client.create(model="support", messages=MESSAGES)  # fails twice on gpt-4o-mini: opens
    opening = call_spans(recorded)[-1]
    assert events(opening, "guardedllm.breaker.transition") == [
        (
            "guardedllm.breaker.transition",
            {
                "guardedllm.deployment": "gpt-4o-mini",
                "guardedllm.breaker.from": "closed",
                "guardedllm.breaker.to": "open",
                "guardedllm.breaker.reason": "failure_rate",
            },
        )
    ]
    assert breaker_states() == {"closed": 0, "open": 1, "half_open": 0}

    recorded.exporter.clear()
    skipped = client.create(model="support", messages=MESSAGES)  # open: passed over unsent
    call, attempts = the_call(recorded)
    assert [s.name for s in attempts] == [f"chat {CLAUDE_ID}"]
    assert events(call, "guardedllm.deployment.skipped") == [
        (
            "guardedllm.deployment.skipped",
            {
                "guardedllm.deployment": "gpt-4o-mini",
                "error.type": "guardedllm.errors.CircuitOpenError",
            },
        )
    ]
    assert attrs_of(attempts[0])["guardedllm.fallback.reason"] == (
        "guardedllm.errors.CircuitOpenError"
    )
    assert guard_of(skipped).deployment == "claude-haiku"
    assert attrs_of(call)["guardedllm.attempt.count"] == 1  # the skip sent nothing
    assert len(fake_provider.requests_for(model=OPENAI_ID)) == 2

    clock.advance(31)
    recorded.exporter.clear()
    client.create(model="support", messages=MESSAGES)  # the probe: answered, closes
    call, attempts = the_call(recorded)
    assert [s.name for s in attempts] == [f"chat {OPENAI_ID}"]
    moves = [
        (e["guardedllm.breaker.from"], e["guardedllm.breaker.to"])
        for _, e in events(call, "guardedllm.breaker.transition")
    ]
    assert moves == [("open", "half_open"), ("half_open", "closed")]
    assert breaker_states() == {"closed": 1, "open": 0, "half_open": 0}
    assert len(fake_provider.requests_for(model=OPENAI_ID)) == 3
    fallbacks = totals(recorded, "guardedllm.fallbacks", "guardedllm.fallback.reason")
    assert fallbacks == {"503": 1, "guardedllm.errors.CircuitOpenError": 1}


# --------------------------------------------------------------------------- hedging


def hedged_call(session: OpenSession, fake: FakeProvider) -> ChatCompletion:
    """A call whose slow first attempt (gpt-4o-mini) is beaten by its hedge (claude-haiku)."""
    fake.script(model=OPENAI_ID, latency=0.6, times=1)
    return session().create(model="support", messages=MESSAGES, policy=Policy(hedge_after_s=0.05))


def test_a_hedge_is_an_event_and_a_second_attempt_span_racing_the_first(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    response = hedged_call(session, fake_provider)

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    assert [s.name for s in attempts] == [f"chat {OPENAI_ID}", f"chat {CLAUDE_ID}"]
    loser, winner = attempts
    assert events(call) == [
        (
            "guardedllm.hedge",
            {
                "guardedllm.deployment": "claude-haiku",
                "guardedllm.hedge.for": "gpt-4o-mini",
                "guardedllm.hedge.delay_s": 0.05,
            },
        )
    ]
    assert loser.status.status_code is StatusCode.UNSET  # cancelled, not failed
    assert "error.type" not in attrs_of(loser)
    assert attrs_of(winner)["http.response.status_code"] == 200
    assert attrs_of(call)["guardedllm.deployment"] == guard_of(response).deployment
    assert attrs_of(call)["guardedllm.deployment"] == "claude-haiku"
    assert attrs_of(call)["guardedllm.attempt.count"] == 2
    assert call.status.status_code is StatusCode.UNSET
    outcomes = totals(
        recorded, "guardedllm.attempts", "guardedllm.deployment", "guardedllm.attempt.outcome"
    )
    assert outcomes[("claude-haiku", "ok")] == 1
    assert sum(n for (deployment, _), n in outcomes.items() if deployment == "gpt-4o-mini") == 1
    assert ("gpt-4o-mini", "ok") not in outcomes
    assert ("gpt-4o-mini", "error") not in outcomes  # losing a race is not a failure
    assert recorded.points("guardedllm.fallbacks") == []  # a hedge is not a fallback


def test_a_hedges_loser_is_labelled_cancelled_as_in_guard_info(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    response = hedged_call(session, fake_provider)

    _, (loser, _) = the_call(recorded)
    assert [a.outcome for a in guard_of(response).attempts] == ["cancelled", "ok"]
    assert "guardedllm.stream.outcome" not in attrs_of(loser)  # it was no stream
    outcomes = totals(
        recorded, "guardedllm.attempts", "guardedllm.deployment", "guardedllm.attempt.outcome"
    )
    assert outcomes[("gpt-4o-mini", "cancelled")] == 1


# --------------------------------------------------------------------------- streams


def test_a_completed_stream_ends_its_spans_when_its_last_chunk_is_read(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=4)
    stream = session().open_stream(
        model="chat", messages=MESSAGES, stream_options={"include_usage": True}
    )
    first = stream.next_chunk()
    assert first is not None
    assert recorded.spans() == []  # the call goes on while the caller reads
    received = [first]
    for _ in range(100):  # four pieces, and the vendor's opening, closing and usage chunks
        chunk = stream.next_chunk()
        if chunk is None:
            break
        received.append(chunk)
    stream.close()

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    (attempt,) = attempts
    usage = received[-1].usage
    assert usage is not None
    a, c = attrs_of(attempt), attrs_of(call)
    assert a["guardedllm.stream.outcome"] == "completed"
    assert a["guardedllm.stream.chunks"] == len(received)
    assert a["gen_ai.request.stream"] is True
    assert c["gen_ai.request.stream"] is True
    for span in (a, c):
        assert span["gen_ai.usage.input_tokens"] == usage.prompt_tokens
        assert span["gen_ai.usage.output_tokens"] == usage.completion_tokens
        assert span["gen_ai.response.finish_reasons"] == ("stop",)
        assert span["guardedllm.cost_usd"] == pytest.approx(stream.guard.cost_usd)
        assert 0 <= span["gen_ai.response.time_to_first_chunk"] < 10
    assert "guardedllm.stream.outcome" not in c
    assert call.status.status_code is attempt.status.status_code is StatusCode.UNSET

    assert len(recorded.points("gen_ai.client.operation.time_to_first_chunk")) == 1
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert "error.type" not in duration.attributes
    assert totals(recorded, "guardedllm.attempts", "guardedllm.attempt.outcome") == {"ok": 1}
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in recorded.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": usage.prompt_tokens, "output": usage.completion_tokens}


def test_a_stream_records_the_time_per_output_chunk(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=4)
    streamed = session().stream(model="chat", messages=MESSAGES)
    assert streamed.completed
    (point,) = recorded.points("gen_ai.client.operation.time_per_output_chunk")
    assert point.count >= 3  # one per chunk after the first


@pytest.mark.filterwarnings(f"ignore:{UNCLOSED_BODY_WARNING}:ResourceWarning")
def test_an_abandoned_stream_ends_its_spans_unerrored_and_counts_the_attempt_abandoned(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=6)
    streamed = session().stream(model="chat", messages=MESSAGES, read=1)  # break, close
    assert len(streamed.chunks) == 1
    assert not streamed.completed

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    (attempt,) = attempts
    for span in (call, attempt):
        assert span.status.status_code is StatusCode.UNSET
        assert attrs_of(span)["guardedllm.stream.outcome"] == "abandoned"
        assert "error.type" not in attrs_of(span)
        assert events(span, "exception") == []
    assert totals(recorded, "guardedllm.attempts", "guardedllm.attempt.outcome") == {"abandoned": 1}
    # How long the caller read is not the model's latency, and no usage arrived.
    for name in (
        "gen_ai.client.operation.duration",
        "guardedllm.attempt.duration",
        "gen_ai.client.token.usage",
        "guardedllm.cost",
    ):
        assert recorded.points(name) == [], name
    assert len(recorded.points("gen_ai.client.operation.time_to_first_chunk")) == 1


def test_closing_a_stream_early_leaves_no_generator_unclosed(
    session: OpenSession, fake_provider: FakeProvider, driver: str, request: pytest.FixtureRequest
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=6)
    client = session()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            client.stream(model="chat", messages=MESSAGES, read=1)
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []


def test_an_interrupted_stream_fails_both_spans_with_the_error_the_caller_gets(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=6, cut_after_chunks=2)
    with pytest.raises(StreamInterruptedError) as caught:
        session().stream(model="chat", messages=MESSAGES)

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    (attempt,) = attempts
    kind = "guardedllm.errors.StreamInterruptedError"
    for span in (call, attempt):
        assert span.status.status_code is StatusCode.ERROR
        assert attrs_of(span)["error.type"] == kind
        ((_, exception),) = events(span, "exception")
        assert exception == {"exception.type": kind, "exception.message": str(caught.value)}
    assert attrs_of(attempt)["guardedllm.stream.outcome"] == "interrupted"
    assert attrs_of(attempt)["http.response.status_code"] == 200
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == kind
    outcomes = totals(recorded, "guardedllm.attempts", "guardedllm.attempt.outcome", "error.type")
    assert outcomes == {("error", kind): 1}
    assert len(recorded.points("gen_ai.client.operation.time_to_first_chunk")) == 1
    assert recorded.points("gen_ai.client.token.usage") == []
    assert len(fake_provider.requests) == 1  # committed: never retried


# --------------------------------------------------------------------------- failures


def test_a_client_error_fails_the_call_span_at_once(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=400, error_message="max_tokens is too large")
    with pytest.raises(BadRequestError) as caught:
        session().create(model="support", messages=MESSAGES)

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    assert len(attempts) == 1
    for span in (call, *attempts):
        assert span.status.status_code is StatusCode.ERROR
        assert attrs_of(span)["error.type"] == "400"
        assert span.status.description == str(caught.value)
        ((_, exception),) = events(span, "exception")
        assert exception["exception.type"] == "guardedllm.errors.BadRequestError"
    assert attrs_of(attempts[0])["http.response.status_code"] == 400
    assert events(call, "guardedllm.retry") == events(call, "guardedllm.fallback") == []
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "400"
    assert recorded.points("gen_ai.client.token.usage") == recorded.points("guardedllm.cost") == []
    assert len(fake_provider.requests) == 1


def test_every_deployment_failing_is_one_failed_call_over_every_attempt(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    for model in (OPENAI_ID, CLAUDE_ID, GEMINI_ID):
        fake_provider.script(model=model, status=503)
    with pytest.raises(AllRoutesFailedError):
        session().create(model="support", messages=MESSAGES)

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    assert [
        (attrs_of(s)["guardedllm.deployment"], attrs_of(s)["error.type"]) for s in attempts
    ] == [
        ("gpt-4o-mini", "503"),
        ("gpt-4o-mini", "503"),
        ("claude-haiku", "503"),
        ("claude-haiku", "503"),
        ("gemini-flash", "503"),
        ("gemini-flash", "503"),
    ]
    assert attrs_of(call)["error.type"] == "guardedllm.errors.AllRoutesFailedError"
    assert attrs_of(call)["guardedllm.deployment"] == "gemini-flash"  # tried last
    assert [name for name, _ in events(call) if name != "exception"] == [
        "guardedllm.retry",
        "guardedllm.fallback",
        "guardedllm.retry",
        "guardedllm.fallback",
        "guardedllm.retry",
    ]
    assert totals(recorded, "guardedllm.attempts", "guardedllm.attempt.outcome") == {"error": 6}
    assert totals(recorded, "guardedllm.retries", "guardedllm.deployment") == {
        "gpt-4o-mini": 1,
        "claude-haiku": 1,
        "gemini-flash": 1,
    }
    assert totals(recorded, "guardedllm.fallbacks", "guardedllm.deployment") == {
        "claude-haiku": 1,
        "gemini-flash": 1,
    }
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "guardedllm.errors.AllRoutesFailedError"
    assert len(fake_provider.requests) == 6


def test_a_call_refused_before_sending_has_no_attempt_span(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    with pytest.raises(AuthenticationError):  # no key set for the provider
        session(environ={}).create(model="chat", messages=MESSAGES)

    call, attempts = the_call(recorded)
    assert attempts == []
    assert call.status.status_code is StatusCode.ERROR
    assert attrs_of(call)["error.type"] == "guardedllm.errors.AuthenticationError"
    ((_, skipped),) = events(call, "guardedllm.deployment.skipped")
    assert skipped == {
        "guardedllm.deployment": "gpt-4o-mini",
        "error.type": "guardedllm.errors.AuthenticationError",
    }
    assert recorded.points("guardedllm.attempts") == []
    (duration,) = recorded.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "guardedllm.errors.AuthenticationError"
    assert fake_provider.requests == []


def test_a_timed_out_attempt_is_an_error_span_of_the_timeout(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, hang=True)
    with pytest.raises(AllRoutesFailedError):
        session().create(
            model="chat", messages=MESSAGES, timeout=0.2, policy=Policy(max_attempts=1)
        )

    call, attempts = the_call(recorded)
    assert_well_nested(call, attempts)
    (attempt,) = attempts
    assert attrs_of(attempt)["error.type"] == "guardedllm.errors.TimeoutError"
    assert "http.response.status_code" not in attrs_of(attempt)
    assert attrs_of(call)["error.type"] == "guardedllm.errors.AllRoutesFailedError"
    assert totals(recorded, "guardedllm.attempts", "error.type") == {
        "guardedllm.errors.TimeoutError": 1
    }


# --------------------------------------------------------------------------- parents


def test_the_callers_current_span_is_the_call_spans_parent_in_each_thread_or_task(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=0.05)  # the calls overlap
    names = ["handler-a", "handler-b", "handler-c"]
    seen = session().in_user_spans(names, model="chat", messages=MESSAGES)

    calls = call_spans(recorded)
    assert len(calls) == 3
    for name in names:
        user = seen[name].user
        assert seen[name].current_after == user  # guardedllm made none of its spans current
        (call,) = [c for c in calls if c.parent is not None and c.parent.span_id == user.span_id]
        assert call.context.trace_id == user.trace_id
        (attempt,) = attempts_of(recorded, call)
        assert_well_nested(call, [attempt])
    assert len({seen[name].user.trace_id for name in names}) == 3  # three separate traces


def test_a_stream_read_after_the_callers_span_ended_stays_under_it(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=4, latency=0.05)
    names = ["handler-a", "handler-b"]
    seen = session().in_user_spans(names, stream=True, model="chat", messages=MESSAGES)

    users = {s.context.span_id: s for s in recorded.spans() if s.name in names}
    calls = call_spans(recorded)
    assert len(calls) == 2
    for name in names:
        user = seen[name].user
        assert seen[name].current_after == user
        (call,) = [c for c in calls if c.parent is not None and c.parent.span_id == user.span_id]
        (attempt,) = attempts_of(recorded, call)
        assert_well_nested(call, [attempt])
        assert attrs_of(attempt)["guardedllm.stream.outcome"] == "completed"
        # The stream was read after the caller's span ended; its spans end when it does.
        user_span = users[user.span_id]
        assert times(user_span)[1] <= times(call)[1]


# --------------------------------------------------------------------------- content, keys


def test_content_recording_puts_the_messages_and_answer_on_the_call_span(
    session: OpenSession, recorded_content: Recorded, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, content="It ships today.")
    session(telemetry=recorded_content.telemetry).create(model="chat", messages=MESSAGES)

    call, _ = the_call(recorded_content)
    ((_, details),) = events(call, "gen_ai.client.inference.operation.details")
    assert "Where is my parcel?" in details["gen_ai.input.messages"]
    assert "It ships today." in details["gen_ai.output.messages"]


def run_every_kind_of_call(client: Session, fake: FakeProvider) -> None:
    """Answers from each vendor, a 401 whose vendor message quotes the key, a retry, a fallback,
    and streams completed, abandoned and interrupted."""
    keyed = {
        "gpt-4o-mini": (OPENAI_ID, "TEST_OPENAI_KEY"),
        "claude-haiku": (CLAUDE_ID, "TEST_ANTHROPIC_KEY"),
        "gemini-flash": (GEMINI_ID, "TEST_GEMINI_KEY"),
    }
    for deployment in ("gpt-4o-mini", "azure-4o", "llama", "claude-haiku", "gemini-flash"):
        client.create(model=deployment, messages=MESSAGES)
    for deployment, (model, variable) in keyed.items():
        fake.script(
            model=model,
            status=401,
            error_message=f"Incorrect API key provided: {ENVIRON[variable]}.",
            times=1,
        )
        with pytest.raises(AuthenticationError):
            client.create(model=deployment, messages=MESSAGES)
    fake.script(model=OPENAI_ID, status=500, times=1)
    client.create(model="chat", messages=MESSAGES)
    fake.script(model=OPENAI_ID, status=503, times=2)
    client.create(model="support", messages=MESSAGES)
    client.stream(model="support", messages=MESSAGES)
    client.stream(model="support", messages=MESSAGES, read=1)
    fake.script(model=OPENAI_ID, cut_after_chunks=1, times=1)
    with pytest.raises(StreamInterruptedError):
        client.stream(model="support", messages=MESSAGES)


@pytest.mark.filterwarnings(f"ignore:{UNCLOSED_BODY_WARNING}:ResourceWarning")
def test_no_api_key_reaches_any_span_event_metric_or_log(
    session: OpenSession,
    recorded_content: Recorded,
    fake_provider: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    run_every_kind_of_call(session(telemetry=recorded_content.telemetry), fake_provider)

    exported = list(every_string(recorded_content))
    assert any("Incorrect API key provided" in text for text in exported)  # the scan saw them
    assert any("Where is my parcel?" in text for text in exported)
    texts = exported + [record.getMessage() for record in caplog.records]
    leaks = [(name, text) for name, key in ENVIRON.items() for text in texts if key in text]
    assert leaks == []


def test_a_key_of_any_shape_quoted_by_a_vendor_is_not_recorded(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    key = ENVIRON["TEST_AZURE_KEY"]  # Azure keys are 32 hex digits: no tell-tale prefix
    fake_provider.script(model="prod-gpt-4o", status=401, error_message=f"Invalid key {key}.")
    with pytest.raises(AuthenticationError):
        session().create(model="azure-4o", messages=MESSAGES)
    assert [text for text in every_string(recorded) if key in text] == []


def exported_names(recorded: Recorded) -> set[str]:
    """Every attribute, event and metric name exported."""
    names: set[str] = set()
    for span in recorded.spans():
        names.update(attrs_of(span))
        for name, attributes in events(span):
            names.add(name)
            names.update(attributes)
    for name, metric in recorded.metrics().items():
        names.add(name)
        for point in metric.data.data_points:
            names.update(dict(point.attributes or {}))
    return names


@pytest.mark.filterwarnings(f"ignore:{UNCLOSED_BODY_WARNING}:ResourceWarning")
def test_every_guardedllm_name_exported_is_a_published_name(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    # GUARDEDLLM_NAMES is the list dashboards and alerts may rely on: a hedge, a breaker
    # opening and every kind of call must export nothing outside it.
    hedged_call(session, fake_provider)
    run_every_kind_of_call(session(), fake_provider)
    fake_provider.script(model="prod-gpt-4o", status=503, times=2)
    with pytest.raises(AllRoutesFailedError):  # and opens azure-4o's breaker
        session(breaker=BreakerConfig(minimum_calls=2)).create(model="azure-4o", messages=MESSAGES)

    names = exported_names(recorded)
    assert {"guardedllm.hedge", "guardedllm.breaker.transition"} <= names  # the scan saw them
    assert (
        sorted(n for n in names if n.startswith("guardedllm.") and n not in GUARDEDLLM_NAMES) == []
    )


# --------------------------------------------------------------------------- clocks, budgets


def test_durations_use_the_clients_injected_clock(
    session: OpenSession, recorded: Recorded, fake_provider: FakeProvider
) -> None:
    # A monotonic clock with another epoch than time.monotonic (as a test's virtual clock or
    # an application's own clock has): every duration must still be measured on it alone.
    def shifted() -> float:
        return time.monotonic() + 10_000.0

    client = session(clock=shifted)
    client.create(model="chat", messages=MESSAGES)
    client.stream(model="chat", messages=MESSAGES)
    fake_provider.script(model=OPENAI_ID, status=400, times=1)
    with pytest.raises(BadRequestError):
        client.create(model="chat", messages=MESSAGES)

    for name, kinds in (
        ("guardedllm.attempt.duration", 2),  # ok, error
        ("gen_ai.client.operation.duration", 2),  # answered, failed
        ("gen_ai.client.operation.time_to_first_chunk", 1),
    ):
        points = recorded.points(name)
        assert len(points) == kinds, name
        for point in points:
            assert 0 <= point.min <= point.max < 10, (name, dict(point.attributes))
    for span in recorded.spans():
        first = attrs_of(span).get("gen_ai.response.time_to_first_chunk")
        assert first is None or 0 <= first < 10, span.name


def test_a_spend_budget_reports_what_it_has_left(session: OpenSession, recorded: Recorded) -> None:
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0, name="daily")
    response = session(budgets=[budget]).create(model="chat", messages=MESSAGES)

    cost = guard_of(response).cost_usd
    assert cost is not None
    assert cost > 0
    ((attributes, remaining),) = series(recorded, "guardedllm.spend_budget.remaining")
    assert remaining == pytest.approx(1.0 - cost)
    assert attributes == {"guardedllm.budget": "daily"}  # the budget's name, as configured
