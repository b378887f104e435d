"""The sans-IO engine, driven by hand on virtual time: no sockets, no sleeps."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Generator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm import Policy, Registry, defaults
from guardedllm._request import chat_request
from guardedllm.engine import (
    Answered,
    Engine,
    Failed,
    Race,
    Raced,
    Send,
    Sleep,
    Stated,
    StateStep,
    StreamStart,
    StreamStarted,
    classify,
)
from guardedllm.errors import (
    AllRoutesFailedError,
    BadRequestError,
    ConnectError,
    DeadlineExceededError,
    GuardedLLMError,
    ModelNotFoundError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    StateError,
    StreamInterruptedError,
)
from guardedllm.guards import SpendBudget
from guardedllm.state import MemoryBackend
from guardedllm.types import ChatCompletion

CONFIG = """
[defaults]
deadline_s = 30
max_attempts = 3

[providers.a]
kind = "openai"
base_url = "http://a.invalid/v1"

[providers.b]
kind = "openai"
base_url = "http://b.invalid/v1"

[models.first]
provider = "a"
model = "m1"
tokenizer = "o200k_base"
context_window = 1000
max_output_tokens = 100
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[models.second]
provider = "b"
model = "m2"
tokenizer = "o200k_base"
context_window = 1000
max_output_tokens = 100
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[routes.both]
fallback = ["first", "second"]
"""

OK_BODY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }
).encode()


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def error_answer(status: int, headers: dict[str, str] | None = None) -> Answered:
    body = json.dumps({"error": {"message": "nope", "type": "x", "code": None}}).encode()
    return Answered(status=status, headers=httpx.Headers(headers or {}), body=body)


def ok_answer() -> Answered:
    return Answered(status=200, headers=httpx.Headers(), body=OK_BODY)


def drive(
    flow: Generator[Send | Sleep, Any, ChatCompletion | StreamStart],
    answer: Any,
    clock: VirtualClock,
    *,
    per_send_s: float = 0.1,
) -> tuple[list[Send | Sleep], ChatCompletion | StreamStart | GuardedLLMError]:
    """Run the engine to its end; ``answer(send)`` gives each attempt's outcome."""
    steps: list[Send | Sleep] = []
    try:
        step = next(flow)
        while True:
            steps.append(step)
            if isinstance(step, Sleep):
                clock.now += step.seconds
                step = flow.send(None)
            else:
                clock.now += per_send_s
                step = flow.send(answer(step))
    except StopIteration as done:
        return steps, done.value
    except GuardedLLMError as exc:
        return steps, exc


def engine(clock: VirtualClock, random: float = 1.0) -> Engine:
    return Engine(
        Registry.from_toml_text(CONFIG), clock=clock, wall_clock=lambda: 1e9, random=lambda: random
    )


def request(model: str = "first") -> Any:
    return chat_request(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=10)


def sleeps(steps: list[Send | Sleep]) -> list[float]:
    return [s.seconds for s in steps if isinstance(s, Sleep)]


def sends(steps: list[Send | Sleep]) -> list[str]:
    return [s.target.deployment for s in steps if isinstance(s, Send)]


def test_success_prices_the_reported_usage() -> None:
    clock = VirtualClock()
    steps, result = drive(engine(clock).run(request()), lambda _: ok_answer(), clock)
    assert isinstance(result, ChatCompletion)
    assert result.guard is not None
    # 1000 input tokens at $1/Mtok + 500 output at $2/Mtok
    assert result.guard.cost_usd == pytest.approx(0.002)
    assert result.guard.latency_s == pytest.approx(0.1)
    assert sends(steps) == ["first"]


def test_backoff_is_exponential_full_jitter_capped() -> None:
    clock = VirtualClock()
    flow = engine(clock, random=1.0).run(request(), Policy(max_attempts=6, deadline_s=1000))
    steps, result = drive(flow, lambda _: error_answer(503), clock)
    assert isinstance(result, AllRoutesFailedError)
    assert sleeps(steps) == [0.5, 1.0, 2.0, 4.0, 8.0]  # random()=1.0 gives each ceiling


def test_jitter_scales_the_wait() -> None:
    clock = VirtualClock()
    steps, _ = drive(engine(clock, random=0.25).run(request()), lambda _: error_answer(500), clock)
    assert sleeps(steps) == [0.125, 0.25]


def test_retry_after_is_a_floor() -> None:
    clock = VirtualClock()
    answers = iter([error_answer(429, {"retry-after": "3"}), ok_answer()])
    steps, result = drive(engine(clock).run(request()), lambda _: next(answers), clock)
    assert sleeps(steps) == [3.0]
    assert isinstance(result, ChatCompletion)


def test_retry_after_as_http_date_is_resolved_against_the_wall_clock() -> None:
    clock = VirtualClock()
    when = "Sun, 09 Sep 2001 01:46:45 GMT"  # 1e9 + 5 s
    answers = iter([error_answer(503, {"retry-after": when}), ok_answer()])
    steps, _ = drive(engine(clock).run(request()), lambda _: next(answers), clock)
    assert sleeps(steps) == [pytest.approx(5.0)]


def test_retry_after_beyond_the_deadline_fails_at_once_with_the_wait() -> None:
    clock = VirtualClock()
    flow = engine(clock).run(request(), Policy(deadline_s=5))
    steps, result = drive(flow, lambda _: error_answer(429, {"retry-after": "60"}), clock)
    assert isinstance(result, RateLimitedError)
    assert result.retry_after == 60
    assert sends(steps) == ["first"]
    assert sleeps(steps) == []


def test_retry_after_beyond_the_deadline_falls_back_when_it_can() -> None:
    clock = VirtualClock()
    flow = engine(clock).run(request("both"), Policy(deadline_s=5))

    def answer(send: Send) -> Answered:
        if send.target.deployment == "first":
            return error_answer(429, {"retry-after": "60"})
        return ok_answer()

    steps, result = drive(flow, answer, clock)
    assert sends(steps) == ["first", "second"]
    assert isinstance(result, ChatCompletion)


def test_no_step_is_yielded_after_the_deadline() -> None:
    clock = VirtualClock()
    flow = engine(clock, random=1.0).run(request("both"), Policy(deadline_s=2, max_attempts=10))
    steps, result = drive(flow, lambda _: error_answer(500), clock, per_send_s=0.4)
    # A backoff that would cross the deadline is not slept: the plan moves on, and ends
    # when nothing more fits.
    assert isinstance(result, AllRoutesFailedError)
    assert sends(steps) == ["first", "first", "second"]
    assert clock.now <= 2.0
    # each attempt's timeout is what remained of the deadline
    timeouts = [s.timeout_s for s in steps if isinstance(s, Send)]
    assert all(t <= 2.0 for t in timeouts)
    assert timeouts == sorted(timeouts, reverse=True)


def test_a_deadline_spent_in_an_attempt_ends_the_call() -> None:
    clock = VirtualClock()
    flow = engine(clock).run(request("both"), Policy(deadline_s=2))
    steps, result = drive(flow, lambda _: error_answer(500), clock, per_send_s=2.5)
    assert isinstance(result, DeadlineExceededError)
    assert sends(steps) == ["first"]
    assert result.attempts[0].status == 500


def test_client_errors_fail_fast_and_404_falls_back_without_retry() -> None:
    clock = VirtualClock()
    steps, result = drive(engine(clock).run(request("both")), lambda _: error_answer(400), clock)
    assert isinstance(result, BadRequestError)
    assert sends(steps) == ["first"]

    clock = VirtualClock()

    def answer(send: Send) -> Answered:
        return error_answer(404) if send.target.deployment == "first" else ok_answer()

    steps, result = drive(engine(clock).run(request("both")), answer, clock)
    assert sends(steps) == ["first", "second"]
    assert isinstance(result, ChatCompletion)


def test_transport_failures_and_bad_bodies_are_retried() -> None:
    clock = VirtualClock()
    answers = iter(
        [
            Failed(error=ConnectError("refused")),
            Answered(status=200, headers=httpx.Headers(), body=b"{not json"),
            ok_answer(),
        ]
    )
    _steps, result = drive(engine(clock).run(request()), lambda _: next(answers), clock)
    assert isinstance(result, ChatCompletion)
    assert result.guard is not None
    assert [a.error_type for a in result.guard.attempts] == [
        "ConnectError",
        "ResponseFormatError",
        None,
    ]


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (ServerError("x", status=500), "retry"),
        (ServerError("x", status=503), "retry"),
        (RateLimitedError("x", status=429), "retry"),
        (BadRequestError("x", status=400), "fail"),
        (BadRequestError("x", status=422), "fail"),
        (ModelNotFoundError("x", status=404), "fallback"),
        (ConnectError("x"), "retry"),
        (ResponseFormatError("x"), "retry"),
    ],
)
def test_classification_table(error: GuardedLLMError, verdict: str) -> None:
    assert classify(error) == verdict


@given(
    statuses=st.lists(st.sampled_from([200, 429, 500, 502, 503, 529]), min_size=1, max_size=12),
    attempts=st.integers(min_value=1, max_value=4),
    deadline=st.floats(min_value=0.5, max_value=30),
)
def test_attempts_never_exceed_the_budget_of_the_plan(
    statuses: list[int], attempts: int, deadline: float
) -> None:
    clock = VirtualClock()
    replies = iter(statuses + [500] * 20)
    flow = engine(clock, random=0.5).run(
        request("both"), Policy(max_attempts=attempts, deadline_s=deadline)
    )

    def answer(_: Send) -> Answered:
        status = next(replies)
        return ok_answer() if status == 200 else error_answer(status)

    steps, result = drive(flow, answer, clock)
    assert len(sends(steps)) <= 2 * attempts
    assert clock.now <= deadline + 0.1  # one in-flight send may end after the deadline
    if isinstance(result, ChatCompletion):
        assert result.guard is not None
        assert result.guard.attempts[-1].outcome == "ok"
    else:
        assert isinstance(result, GuardedLLMError)
        assert result.attempts


@pytest.mark.parametrize("retries", [0, 1], ids=["first-attempt", "retry"])
def test_a_flow_closed_mid_attempt_gives_its_rate_limit_tokens_back(retries: int) -> None:
    # What a cancelled task or a KeyboardInterrupt does to the engine: the driver closes the
    # flow while an attempt is out. Its tokens come back; its request slot, sent, stays taken.
    clock = VirtualClock()
    limited = CONFIG.replace(
        "output_usd_per_mtok = 2.0\n", "output_usd_per_mtok = 2.0\nrpm = 60\ntpm = 1000\n", 1
    )
    state = MemoryBackend()
    engine_ = Engine(
        Registry.from_toml_text(limited), clock=clock, wall_clock=lambda: 1e9, state=state,
        random=lambda: 0.0,
    )  # fmt: skip
    flow = engine_.run(request())
    step = next(flow)
    for _ in range(retries):  # a 500, then the retry goes out
        assert isinstance(step, Send)
        step = flow.send(error_answer(500))
        if isinstance(step, Sleep):
            step = flow.send(None)
    assert isinstance(step, Send)
    flow.close()

    def level(kind: str, limit: int) -> float:
        key = f"ratelimit:first:{kind}"
        return state.bucket_take(key, 0, capacity=limit, refill_per_s=limit / 60, now=0).remaining

    assert level("tokens", 1000) == 1000
    assert level("requests", 60) == 60 - (1 + retries)


CHUNK_EVENT = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"more"},"finish_reason":null}]}\n\n'
)


def test_a_stream_that_never_stops_holds_a_bounded_amount_of_memory() -> None:
    # max_tokens=10: a stream may carry STREAM_CHUNKS_PER_TOKEN * 10 + STREAM_CHUNK_SLACK
    # chunks. One that goes on is cut there, having kept no more than that, however long the
    # vendor would have gone on sending.
    clock = VirtualClock()
    flow = engine(clock).run(
        chat_request(
            model="first", messages=[{"role": "user", "content": "hi"}], max_tokens=10, stream=True
        )
    )

    def first_chunk(send: Send) -> StreamStarted:
        assert send.decoder is not None
        chunks = send.decoder.feed(CHUNK_EVENT)
        return StreamStarted(first_chunks=tuple(chunks), handle=None, decoder=send.decoder)

    _, start = drive(flow, first_chunk, clock)
    assert isinstance(start, StreamStart)
    tracker = start.tracker
    tracker.first(start.first_chunks)  # as the drivers do: the caller has the first chunk
    fed = 0

    def feed_forever() -> None:
        nonlocal fed
        while fed < 100_000:  # bounded: a tracker that never refuses fails the test
            fed += 1
            tracker.feed(CHUNK_EVENT)

    tracemalloc.start()
    try:
        with pytest.raises(StreamInterruptedError) as caught:
            feed_forever()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = defaults.STREAM_CHUNKS_PER_TOKEN * 10 + defaults.STREAM_CHUNK_SLACK
    assert isinstance(caught.value.__cause__, ResponseFormatError)
    assert len(caught.value.received) == bound  # the first chunk and every chunk fed in bound
    assert fed == bound  # the first, then every chunk to the bound; the next one is refused
    assert peak < 1_000_000  # a few hundred small chunks, not a hundred thousand
    assert tracker.ended == "interrupted"


# --------------------------------------------------------------------------- shared state


class SharedMemory(MemoryBackend):
    """A backend that says it is shared (its operations are I/O) and keeps its own clock: the
    engine must yield its operations as steps and read every guard's time from it."""

    shared = True

    def __init__(self, store_clock: VirtualClock, *, fail: bool = False) -> None:
        super().__init__()
        self.store_clock = store_clock
        self.fail = fail

    def clock(self) -> float:
        return 1_000_000.0 + self.store_clock.now

    def counter_add(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise StateError("the store is down", store="test")
        return super().counter_add(*args, **kwargs)


def drive_shared(
    flow: Generator[Any, Any, Any], answer: Any, clock: VirtualClock
) -> tuple[list[Any], Any]:
    """``drive``, carrying out state steps as the sync driver does."""
    steps: list[Any] = []
    try:
        step = next(flow)
        while True:
            steps.append(step)
            if isinstance(step, StateStep):
                try:
                    value = step.run()
                except Exception as exc:
                    step = flow.throw(exc)
                    continue
                step = flow.send(Stated(value=value))
            elif isinstance(step, Sleep):
                clock.now += step.seconds
                step = flow.send(None)
            else:
                clock.now += 0.1
                step = flow.send(answer(step))
    except StopIteration as done:
        return steps, done.value
    except GuardedLLMError as exc:
        return steps, exc


LIMITED = CONFIG.replace(
    "output_usd_per_mtok = 2.0\n", "output_usd_per_mtok = 2.0\nrpm = 60\ntpm = 1000\n", 1
)


def shared_engine(clock: VirtualClock, state: MemoryBackend, **kwargs: Any) -> Engine:
    return Engine(
        Registry.from_toml_text(LIMITED), clock=clock, wall_clock=lambda: 1e9, state=state,
        random=lambda: 0.0,
        budgets=[SpendBudget(name="all", scope="global", window="day", limit_usd=1.0)],
        **kwargs,
    )  # fmt: skip


def test_an_in_process_backend_answers_every_guard_operation_inline() -> None:
    clock = VirtualClock()
    engine_ = shared_engine(clock, MemoryBackend())
    steps, result = drive_shared(engine_.run(request()), lambda _: ok_answer(), clock)
    assert isinstance(result, ChatCompletion)
    assert not [step for step in steps if isinstance(step, StateStep)]


def test_a_shared_backend_gets_a_call_s_guard_operations_as_a_few_steps() -> None:
    clock = VirtualClock()
    engine_ = shared_engine(clock, SharedMemory(clock))
    steps, result = drive_shared(engine_.run(request()), lambda _: ok_answer(), clock)
    assert isinstance(result, ChatCompletion)
    kinds = [type(step).__name__ for step in steps]
    # admit, reserve (with the retry budget's deposit), rate-limit acquire, send, settle
    assert kinds == ["StateStep", "StateStep", "StateStep", "Send", "StateStep"]
    (status,) = engine_.guards.ledger.statuses(wall_now=1_000_000.0 + clock.now)
    assert status.spent_usd == pytest.approx(0.002)
    assert status.reserved_usd == 0


def test_a_shared_backend_s_clock_is_every_guard_s_clock() -> None:
    # The engine's clock is near 0; the store's is a million seconds on. A 404's mark (from
    # the second: defaults.UNAVAILABLE_STRIKES) is dated on the store's clock, so every
    # process reading the store sees when it ends.
    clock = VirtualClock()
    state = SharedMemory(clock)
    engine_ = shared_engine(clock, state)
    body = json.dumps(
        {"error": {"message": "The model `m1` does not exist", "code": "model_not_found"}}
    ).encode()
    gone = Answered(status=404, headers=httpx.Headers(), body=body)
    for _ in range(defaults.UNAVAILABLE_STRIKES):
        drive_shared(engine_.run(request()), lambda _: gone, clock)
    mark = engine_.guards.marks.unavailable("first", state.clock())
    assert mark is not None
    assert mark.until == pytest.approx(state.clock() + defaults.UNAVAILABLE_S, abs=1.0)


def test_a_state_step_s_failure_comes_back_into_the_flow() -> None:
    # The store refuses the spend reservation; under "refuse" that fails the call, after the
    # breaker permit the admission took was let go of.
    clock = VirtualClock()
    state = SharedMemory(clock, fail=True)
    engine_ = shared_engine(clock, state, state_on_error="refuse")
    steps, result = drive_shared(engine_.run(request()), lambda _: ok_answer(), clock)
    assert isinstance(result, StateError)
    assert not [step for step in steps if isinstance(step, Send)]
    assert isinstance(steps[-1], StateStep)  # the permit let go of, as a step of its own
    state.fail = False
    assert engine_.guards.breaker.snapshot("first", state.clock()).state == "closed"


def test_a_flow_closed_on_a_shared_backend_lets_go_through_the_background_runner() -> None:
    # A cancelled task's flow is closed: it cannot yield a state step, so the engine hands
    # the cleanup to the driver's runner (never the event loop), which gives the tokens back.
    clock = VirtualClock()
    state = SharedMemory(clock)
    engine_ = shared_engine(clock, state)
    later: list[Any] = []
    engine_.run_later = later.append
    flow = engine_.run(request())
    step = next(flow)
    while isinstance(step, StateStep):
        step = flow.send(Stated(value=step.run()))
    assert isinstance(step, Send)
    flow.close()
    (status,) = engine_.guards.ledger.statuses(wall_now=state.clock())
    assert status.reserved_usd > 0  # held until the runner lets go of it
    assert len(later) == 1
    later[0]()
    (status,) = engine_.guards.ledger.statuses(wall_now=state.clock())
    assert status.reserved_usd == 0
    tokens = state.bucket_take(
        "ratelimit:first:tokens", 0, capacity=1000, refill_per_s=1000 / 60, now=state.clock()
    )
    assert tokens.remaining == 1000


@pytest.mark.parametrize("won_by", ["primary", "hedge"])
def test_a_hedged_stream_is_handed_over_with_no_step_after_its_first_chunk(won_by: str) -> None:
    # A step between a stream's first chunk and its tracker could be the last: a flow closed
    # there leaves the open response to nobody. What the other side holds goes back through
    # the background runner instead, exactly once.
    clock = VirtualClock()
    state = SharedMemory(clock)
    engine_ = shared_engine(clock, state)
    later: list[Any] = []
    engine_.run_later = later.append
    streamed = chat_request(
        model="both", messages=[{"role": "user", "content": "hi"}], max_tokens=10, stream=True
    )
    flow = engine_.run(streamed, Policy(hedge_after_s=0.5))
    step = next(flow)
    while isinstance(step, StateStep):
        step = flow.send(Stated(value=step.run()))
    assert isinstance(step, Race)
    side = step.first if won_by == "primary" else step.second
    assert side.decoder is not None
    started = StreamStarted(
        first_chunks=tuple(side.decoder.feed(CHUNK_EVENT)), handle=None, decoder=side.decoder
    )
    raced = Raced(
        outcomes=(started, None) if won_by == "primary" else (None, started),
        latencies=(0.1, 0.1),
        winner=0 if won_by == "primary" else 1,
        launched=won_by == "hedge",
    )
    with pytest.raises(StopIteration) as done:
        flow.send(raced)
    start = done.value.value
    assert isinstance(start, StreamStart)
    assert start.tracker.guard.deployment == ("first" if won_by == "primary" else "second")
    (status,) = engine_.guards.ledger.statuses(wall_now=state.clock())
    both = status.reserved_usd
    for run in later:
        run()
    (status,) = engine_.guards.ledger.statuses(wall_now=state.clock())
    if won_by == "primary":  # the hedge never went: its reservation is released
        assert status.reserved_usd == pytest.approx(both / 2)
        assert status.spent_usd == 0
    else:  # the primary was sent: it settles at its worst case
        assert status.reserved_usd == pytest.approx(both / 2)
        assert status.spent_usd == pytest.approx(both / 2)
