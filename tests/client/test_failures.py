"""How calls fail, through every driver, against FakeProvider's scripted faults: retries,
fallbacks, fail-fast client errors, the one deadline, broken streams and bad bodies."""

from __future__ import annotations

import time

import pytest

from guardedllm import Policy, Registry, defaults
from guardedllm.errors import (
    AllRoutesFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConnectionDroppedError,
    ContextWindowExceededError,
    DeadlineExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitedError,
    ResponseFormatError,
    ServerError,
    StreamInterruptedError,
    TimeoutError,
)
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from session import VirtualClock, open_session
from support import ENVIRON, Call, Streamed, config_text, make_call

# Every guard decision here holds alike on in-process and shared (Redis) state.
pytestmark = pytest.mark.usefixtures("on_both_backends")

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
CLAUDE_ID = "claude-3-5-haiku-20241022"


def outcomes(
    result: ChatCompletion | Streamed | BaseException,
) -> list[tuple[str, str, int | None]]:
    attempts = result.attempts if isinstance(result, BaseException) else result.guard.attempts
    return [(a.deployment, a.outcome, a.status) for a in attempts]


def test_a_5xx_is_retried_on_the_same_deployment(call: Call, fake_provider: FakeProvider) -> None:
    fake_provider.script(model=OPENAI_ID, status=500, times=1)
    response = call(model="gpt-4o-mini", messages=MESSAGES)
    assert outcomes(response) == [
        ("gpt-4o-mini", "error", 500),
        ("gpt-4o-mini", "ok", 200),
    ]
    assert response.guard.attempts[0].error_type == "ServerError"
    assert len(fake_provider.requests) == 2


def test_retries_exhausted_fall_back_down_the_route_across_vendors(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    response = call(model="support", messages=MESSAGES, stream=False)
    assert outcomes(response) == [
        ("gpt-4o-mini", "error", 503),
        ("gpt-4o-mini", "error", 503),
        ("claude-haiku", "ok", 200),
    ]
    assert fake_provider.requests[-1].vendor == "anthropic"


def test_a_missing_model_is_not_retried_and_falls_back(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, not_found=True)
    response = call(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "error", 404), ("claude-haiku", "ok", 200)]
    assert response.guard.attempts[0].error_type == "ModelNotFoundError"


def test_a_missing_model_alone_fails_with_every_attempt_attached(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, not_found=True)
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(caught.value.__cause__, ModelNotFoundError)
    assert caught.value.__cause__.status == 404
    assert outcomes(caught.value) == [("gpt-4o-mini", "error", 404)]
    assert len(fake_provider.requests) == 1


def test_a_client_error_fails_fast_without_retry_or_fallback(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=400, error_message="bad 'messages'")
    with pytest.raises(BadRequestError) as caught:
        call(model="support", messages=MESSAGES)
    assert caught.value.status == 400
    assert "bad 'messages'" in str(caught.value)
    assert "not retried" in str(caught.value)
    assert len(fake_provider.requests) == 1


def test_a_vendor_error_carries_request_id_and_code(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=401, headers={"x-request-id": "req_123"})
    with pytest.raises(AuthenticationError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.request_id == "req_123"
    assert caught.value.code
    assert "req_123" in str(caught.value)


def test_every_deployment_failing_gives_all_routes_failed(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(status=502)
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="support", messages=MESSAGES)
    assert [a.deployment for a in caught.value.attempts] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "claude-haiku",
        "claude-haiku",
        "gemini-flash",
        "gemini-flash",
    ]
    assert isinstance(caught.value.last_error, ServerError)
    assert "support" in str(caught.value)


def test_retry_after_floors_the_backoff(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=0.3, times=1)
    call = make_call(driver, registry)
    started = time.monotonic()
    response = call(model="gpt-4o-mini", messages=MESSAGES)
    first, second = fake_provider.requests
    assert second.received_at - first.received_at >= 0.3
    assert time.monotonic() - started >= 0.3
    assert outcomes(response) == [("gpt-4o-mini", "error", 429), ("gpt-4o-mini", "ok", 200)]


def test_retry_after_past_the_deadline_fails_at_once(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=3600)
    call = make_call(driver, registry, policy=Policy(deadline_s=5))
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert time.monotonic() - started < 2
    # The hour asked for is cut to the cap: that is the wait the deployment is held back.
    assert caught.value.retry_after == defaults.MAX_RETRY_AFTER_S
    assert "asked to wait 3600 s (cut to 60 s" in str(caught.value)
    assert isinstance(caught.value.__cause__, RateLimitedError)
    assert caught.value.__cause__.retry_after == 3600  # the vendor's own figure, kept
    assert len(fake_provider.requests) == 1


# A Retry-After no client should honour, as sent: a wait of eleven days, a date in year 9999.
ENDLESS_WAITS = {
    "seconds": 999_999,
    "year-9999": "Fri, 31 Dec 9999 23:59:59 GMT",
}


@pytest.mark.virtual_time
@pytest.mark.parametrize("asked", list(ENDLESS_WAITS.values()), ids=list(ENDLESS_WAITS))
def test_an_endless_retry_after_holds_the_deployment_back_for_the_cap_only(
    driver: str, registry: Registry, fake_provider: FakeProvider, asked: float | str
) -> None:
    clock = VirtualClock()
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=asked, times=1)
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        limited = session.outcome(model="gpt-4o-mini", messages=MESSAGES)
        held = session.client.health()["gpt-4o-mini"]
        refused = session.outcome(model="gpt-4o-mini", messages=MESSAGES)
        clock.advance(defaults.MAX_RETRY_AFTER_S)
        freed = session.client.health()["gpt-4o-mini"]
        answered = session.create(model="gpt-4o-mini", messages=MESSAGES)

    # The 10 s deadline cannot hold the 60 s kept: the call fails at once, with that wait.
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == defaults.MAX_RETRY_AFTER_S
    # health() says the deployment is held back, by the vendor, how long, and that it was cut.
    assert not held.available
    assert held.paused is not None
    assert held.paused.until == pytest.approx(clock.now())
    assert held.paused.retry_after.wait_s == defaults.MAX_RETRY_AFTER_S
    assert held.paused.retry_after.asked_s > 900_000
    assert held.paused.retry_after.capped
    assert held.breaker.state == "closed"
    assert held.unavailable is None
    # Meanwhile calls are refused locally; once the cap has passed, the deployment answers.
    assert isinstance(refused, RateLimitedError)
    assert "Retry-After" in str(refused)
    assert freed.available
    assert freed.paused is None
    assert [a.outcome for a in answered.guard.attempts] == ["ok"]
    assert len(fake_provider.requests) == 2
    assert clock.sleeps == []


@pytest.mark.parametrize("asked", ["inf", "nan", "-5", "1e400"])
def test_a_retry_after_that_is_no_wait_is_ignored(
    driver: str, registry: Registry, fake_provider: FakeProvider, asked: str
) -> None:
    clock = VirtualClock()
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=asked, times=1)
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        response = session.create(model="gpt-4o-mini", messages=MESSAGES)
        health = session.client.health()["gpt-4o-mini"]

    # Retried after the engine's own backoff (no jitter in these tests: nothing to sleep).
    assert outcomes(response) == [("gpt-4o-mini", "error", 429), ("gpt-4o-mini", "ok", 200)]
    assert clock.sleeps == [0.0]
    assert health.available
    assert health.paused is None


@pytest.mark.virtual_time
def test_the_retry_after_cap_is_a_default_of_the_config(
    driver: str, fake_provider: FakeProvider
) -> None:
    text = config_text(fake_provider).replace(
        "timeout_s = 5\n", "timeout_s = 5\nmax_retry_after_s = 2.5\n", 1
    )
    registry = Registry.from_toml_text(text)
    assert registry.defaults.max_retry_after_s == 2.5
    clock = VirtualClock()
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=3600, times=1)
    with open_session(driver, registry, **clock.client_kwargs(driver)) as session:
        response = session.create(model="gpt-4o-mini", messages=MESSAGES)

    # 2.5 s fit the 10 s deadline: slept, and the retry answered.
    assert clock.sleeps == [2.5]
    assert outcomes(response) == [("gpt-4o-mini", "error", 429), ("gpt-4o-mini", "ok", 200)]


def test_a_hang_is_cut_by_the_deadline(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, hang=True)
    call = make_call(driver, registry, policy=Policy(deadline_s=1.0))
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.6
    assert caught.value.attempts[0].error_type == "TimeoutError"
    assert caught.value.deadline_s == 1.0


def test_a_timed_out_attempt_falls_back(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, hang=True)
    call = make_call(driver, registry, policy=Policy(timeout_s=0.3, max_attempts=1))
    response = call(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "error", None), ("claude-haiku", "ok", 200)]
    assert response.guard.attempts[0].error_type == TimeoutError.__name__


def test_a_dropped_connection_is_retried(call: Call, fake_provider: FakeProvider) -> None:
    fake_provider.script(model=OPENAI_ID, drop=True, times=1)
    response = call(model="gpt-4o-mini", messages=MESSAGES)
    assert response.guard.attempts[0].error_type == ConnectionDroppedError.__name__
    assert response.guard.attempts[1].outcome == "ok"


@pytest.mark.parametrize(
    "body", [b'{"id": "x", "choices": [', b"<html>502 Bad Gateway</html>", b""]
)
def test_a_malformed_body_is_a_typed_error(
    call: Call, fake_provider: FakeProvider, body: bytes
) -> None:
    fake_provider.script(model=OPENAI_ID, body=body)
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(caught.value.last_error, ResponseFormatError)
    assert "gpt-4o-mini" in str(caught.value.last_error)


def test_an_oversized_body_is_refused(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, oversized=2_000_000)
    call = make_call(driver, registry, policy=Policy(max_attempts=1), max_response_bytes=1_000_000)
    with pytest.raises(AllRoutesFailedError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(caught.value.last_error, ResponseFormatError)
    assert "larger than 1000000 bytes" in str(caught.value.last_error)


def test_a_stream_cut_after_chunks_raises_with_what_arrived(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=CLAUDE_ID, content="a b c d e f g h", chunks=4, cut_after_chunks=2)
    with pytest.raises(StreamInterruptedError) as caught:
        call(model="claude-haiku", messages=MESSAGES, stream=True)
    assert caught.value.received
    assert caught.value.partial_content
    assert "a b c d e f g h".startswith(caught.value.partial_content)
    assert len(fake_provider.requests) == 1  # never retried once chunks reached the caller


def test_a_stream_cut_before_its_first_chunk_is_retried(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, cut_after_chunks=0, times=1)
    result = call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert result.completed
    assert outcomes(result) == [("gpt-4o-mini", "error", None), ("gpt-4o-mini", "ok", 200)]


def test_a_malformed_chunk_mid_stream_interrupts(call: Call, fake_provider: FakeProvider) -> None:
    # chunk_delay puts the garbage in a later read than the first chunk, which has then
    # reached the caller; garbage in the very first read is retried like any bad answer.
    fake_provider.script(model=OPENAI_ID, malformed_chunk=True, chunks=4, chunk_delay=0.05)
    with pytest.raises(StreamInterruptedError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(caught.value.__cause__, ResponseFormatError)


def test_a_stream_error_status_falls_back_before_any_chunk(
    call: Call, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=529)
    result = call(model="support", messages=MESSAGES, stream=True)
    assert result.completed
    assert result.guard.deployment == "claude-haiku"


def test_a_missing_api_key_is_refused_before_sending(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    call = make_call(driver, registry, environ={})
    with pytest.raises(AuthenticationError) as caught:
        call(model="gpt-4o-mini", messages=MESSAGES)
    assert "TEST_OPENAI_KEY" in str(caught.value)
    assert fake_provider.requests == []


def test_context_window_and_cost_cap_refuse_before_sending(
    call: Call, fake_provider: FakeProvider
) -> None:
    long = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(ContextWindowExceededError) as too_long:
        call(model="llama", messages=long)
    assert too_long.value.context_window == 8192
    with pytest.raises(BudgetExceededError) as too_dear:
        call(model="support", messages=MESSAGES, max_tokens=8000, policy=Policy(max_cost_usd=1e-4))
    assert too_dear.value.limit_usd == 1e-4
    assert [a.outcome for a in too_dear.value.attempts] == ["skipped"] * 3
    assert fake_provider.requests == []


def test_a_cost_cap_skips_to_a_cheaper_deployment(call: Call, fake_provider: FakeProvider) -> None:
    # gpt-4o-mini's worst case at 4000 output tokens is $0.0024; claude-haiku's is $0.016.
    response = call(
        model="support",
        messages=MESSAGES,
        max_tokens=4000,
        policy=Policy(max_cost_usd=0.002, fallback=["claude-haiku", "gemini-flash"]),
    )
    assert outcomes(response) == [("claude-haiku", "skipped", None), ("gemini-flash", "ok", 200)]


def test_bad_arguments_are_typed_errors_before_sending(
    call: Call, fake_provider: FakeProvider
) -> None:
    bad_calls = [
        {"model": "chat", "messages": "hello"},
        {"model": "chat", "messages": []},
        {"model": "chat", "messages": [{"content": "no role"}]},
        {"model": "chat", "messages": MESSAGES, "temperature": 7},
        {"model": "chat", "messages": MESSAGES, "max_tokens": 0},
        {"model": "chat", "messages": MESSAGES, "frobnicate": True},
        {"model": "chat", "messages": MESSAGES, "extra_headers": {"Authorization": "Bearer x"}},
    ]
    for kwargs in bad_calls:
        with pytest.raises(InvalidRequestError):
            call(**kwargs)
    with pytest.raises(ModelNotFoundError, match="did you mean"):
        call(model="chta", messages=MESSAGES)
    assert fake_provider.requests == []


def test_a_parameter_a_vendor_cannot_express_falls_to_one_that_can(
    call: Call, fake_provider: FakeProvider
) -> None:
    # Anthropic has no seed: the plan skips it, says why, and Gemini serves the call.
    response = call(
        model="support",
        messages=MESSAGES,
        seed=7,
        policy=Policy(fallback=["claude-haiku", "gemini-flash"]),
    )
    assert outcomes(response)[0] == ("claude-haiku", "skipped", None)
    assert "seed" in (response.guard.attempts[0].error or "")
    assert response.guard.deployment == "gemini-flash"


def test_a_slow_first_chunk_fails_the_attempt_and_is_retried(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, first_chunk_delay=0.6, times=1)
    call = make_call(driver, registry, policy=Policy(first_chunk_timeout_s=0.2))
    result = call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert result.completed
    assert outcomes(result) == [("gpt-4o-mini", "error", None), ("gpt-4o-mini", "ok", 200)]
    assert result.guard.attempts[0].error_type == "TimeoutError"
    assert "first chunk" in (result.guard.attempts[0].error or "")


def test_a_stream_closed_before_reading_settles_its_call(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    from guardedllm import Client
    from guardedllm.guards import SpendBudget

    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    with Client(registry, environ=ENVIRON, budgets=[budget]) as client:
        with client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=1000, stream=True
        ) as stream:
            pass
        (status,) = client.spend()
    assert stream.response.is_closed
    assert status.reserved_usd == 0  # settled (at its worst case: no usage was read)
    assert status.spent_usd > 0


def test_a_key_with_a_newline_is_refused_without_leaking(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    environ = {**ENVIRON, "TEST_ANTHROPIC_KEY": "sk-ant-secret-value-123\n"}
    call = make_call(driver, registry, environ=environ)
    with pytest.raises(AuthenticationError) as caught:
        call(model="claude-haiku", messages=MESSAGES)
    assert "secret-value" not in str(caught.value)
    assert "whitespace" in str(caught.value)
    assert fake_provider.requests == []


def test_a_provider_can_say_what_its_statuses_mean(
    driver: str, fake_provider: FakeProvider
) -> None:
    from support import config_text

    # This gateway answers 404 while a model warms up: retry it there instead of falling back.
    text = config_text(fake_provider).replace(
        'api_key_env = "TEST_OPENAI_KEY"\n',
        'api_key_env = "TEST_OPENAI_KEY"\noutcomes = { "404" = "retry", "500" = "fail" }\n',
        1,
    )
    registry = Registry.from_toml_text(text)
    assert registry.providers["openai"].outcomes == {404: "retry", 500: "fail"}
    fake_provider.script(model=OPENAI_ID, not_found=True, times=1)
    response = make_call(driver, registry)(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "error", 404), ("gpt-4o-mini", "ok", 200)]
    fake_provider.script(model=OPENAI_ID, status=500, times=1)
    with pytest.raises(ServerError):
        make_call(driver, registry)(model="support", messages=MESSAGES)


def test_an_outcomes_table_is_validated() -> None:
    from guardedllm.errors import ConfigError
    from support import CONFIG

    text = CONFIG.format(
        openai="http://x/v1", azure="http://x", anthropic="http://x", gemini="http://x"
    )
    text = text.replace(
        'api_key_env = "TEST_OPENAI_KEY"\n',
        'api_key_env = "TEST_OPENAI_KEY"\noutcomes = { "200" = "retry", "503" = "retyr" }\n',
        1,
    )
    with pytest.raises(ConfigError) as caught:
        Registry.from_toml_text(text)
    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"providers.openai.outcomes.200", "providers.openai.outcomes.503"}
    assert "did you mean" in str(caught.value)


def test_a_failed_call_names_what_became_of_each_deployment(
    call: Call, fake_provider: FakeProvider
) -> None:
    """Sent and failed, or never sent and why: a deployment the cap ruled out is not said to
    have failed."""
    fake_provider.script(model=OPENAI_ID, status=503)
    fake_provider.script(model="gemini-2.0-flash", status=500)
    with pytest.raises(AllRoutesFailedError) as info:
        call(model="support", messages=MESSAGES, policy=Policy(max_cost_usd=0.02))
    lines = str(info.value).splitlines()
    assert lines[0] == "'support': no deployment answered:"
    assert lines[1].startswith("  - gpt-4o-mini: sent 2 time(s), failed (OverloadedError, HTTP 503")
    assert lines[2].startswith(
        "  - claude-haiku: not sent (BudgetExceededError: worst-case cost $0.0"
    )
    assert lines[2].endswith("over the $0.020000 cap (max_cost_usd).)")
    assert lines[3].startswith("  - gemini-flash: sent 2 time(s), failed (ServerError, HTTP 500")


def test_a_call_refused_everywhere_gives_each_deployments_own_reason(
    call: Call, fake_provider: FakeProvider
) -> None:
    with pytest.raises(BudgetExceededError) as info:
        call(model="support", messages=MESSAGES, policy=Policy(max_cost_usd=1e-7))
    story = str(info.value).split("Every deployment of the plan:\n")[1].splitlines()
    assert [line.split(":")[0] for line in story] == [
        "  - gpt-4o-mini",
        "  - claude-haiku",
        "  - gemini-flash",
    ]
    assert all("not sent (BudgetExceededError: worst-case cost" in line for line in story)
    assert fake_provider.requests == []


OPENAI_TOO_LONG = (
    b'{"error": {"message": "This model\'s maximum context length is 128000 tokens. However, '
    b'your messages resulted in 130021 tokens.", "type": "invalid_request_error", '
    b'"param": "messages", "code": "context_length_exceeded"}}'
)


def test_a_vendors_context_length_400_moves_on_to_a_larger_window(
    call: Call, fake_provider: FakeProvider
) -> None:
    """Not retried where it cannot fit, not a failed call: the next deployment with a larger
    window (claude-haiku, 200k) answers; one no larger (azure-4o, 128k) is passed over."""
    fake_provider.script(model=OPENAI_ID, status=400, body=OPENAI_TOO_LONG)
    response = call(
        model="support",
        messages=MESSAGES,
        policy=Policy(fallback=["gpt-4o-mini", "azure-4o", "claude-haiku"]),
    )
    assert outcomes(response) == [
        ("gpt-4o-mini", "error", 400),
        ("azure-4o", "skipped", None),
        ("claude-haiku", "ok", 200),
    ]
    first, skipped, _ = response.guard.attempts
    assert first.error_type == "ContextLengthExceededError"
    assert skipped.error_type == "ContextWindowExceededError"
    assert "no larger than the 128000 tokens" in (skipped.error or "")


def test_a_context_length_400_on_the_only_deployment_is_not_retried(
    call: Call, fake_provider: FakeProvider
) -> None:
    """As a missing model alone: the call fails with the vendor's error as its cause."""
    fake_provider.script(model=OPENAI_ID, status=400, body=OPENAI_TOO_LONG)
    with pytest.raises(AllRoutesFailedError) as info:
        call(model="gpt-4o-mini", messages=MESSAGES)
    cause = info.value.__cause__
    assert isinstance(cause, ContextWindowExceededError)
    assert isinstance(cause, BadRequestError)
    assert len(fake_provider.requests) == 1  # never retried where it cannot fit


def test_the_first_chunk_timeout_holds_on_every_driver(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    """A stream whose first chunk is 3 s late fails its attempt at the 0.3 s limit (with
    slack for a loaded machine), not when the chunk comes: the sync driver's sockets are
    capped at the attempt's limit as the async drivers' cancel scopes are."""
    fake_provider.script(model=OPENAI_ID, first_chunk_delay=3.0)
    call = make_call(driver, registry, policy=Policy(first_chunk_timeout_s=0.3, max_attempts=1))
    started = time.monotonic()
    with pytest.raises((AllRoutesFailedError, TimeoutError)) as info:
        call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    took = time.monotonic() - started
    (attempt,) = info.value.attempts
    assert attempt.error_type == "TimeoutError"
    assert attempt.latency_s < 1.5
    assert took < 2.5
