"""Hedging: a slow first attempt is raced by the next deployment of the plan (by a second
attempt on the same deployment when none follows it), and a stream on its first chunk."""

from __future__ import annotations

import time

import anyio
import pytest

from guardedllm import Policy, Registry
from guardedllm.guards import RetryBudgetConfig, SpendBudget
from guardedllm.testing import FakeProvider
from session import open_session
from support import make_call

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
HAIKU_ID = "claude-3-5-haiku-20241022"


def outcomes(response: object) -> list[tuple[str, str]]:
    return [(a.deployment, a.outcome) for a in response.guard.attempts]  # type: ignore[attr-defined]


def test_a_slow_first_attempt_is_beaten_by_the_hedge(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=3.0)
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.2))
    started = time.monotonic()
    response = call(model="support", messages=MESSAGES)
    elapsed = time.monotonic() - started
    assert response.guard.deployment == "claude-haiku"
    assert outcomes(response) == [("gpt-4o-mini", "cancelled"), ("claude-haiku", "ok")]
    assert elapsed < 2.5  # the hedge answered; nobody waited for the 3 s attempt
    assert [r.vendor for r in fake_provider.requests][:2] == ["openai", "anthropic"]
    # the hedge went out after its delay (less the time the first request took to arrive)
    assert fake_provider.requests[1].received_at - fake_provider.requests[0].received_at >= 0.1


def test_a_fast_first_attempt_sends_no_hedge(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.5))
    response = call(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "ok")]
    assert len(fake_provider.requests) == 1


def test_a_fast_failure_is_retried_not_hedged(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503, times=1)
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.5))
    response = call(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "error"), ("gpt-4o-mini", "ok")]


def test_hedges_draw_on_the_retry_budget(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=0.4)
    empty = RetryBudgetConfig(percent_can_retry=0.0, min_retries_per_s=0.0)
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.05), retry_budget=empty)
    response = call(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "ok")]
    assert len(fake_provider.requests) == 1


def test_a_p95_hedge_waits_for_enough_history(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=0.3)
    call = make_call(driver, registry, policy=Policy(hedge_after_s="p95"))
    response = call(model="support", messages=MESSAGES)
    assert outcomes(response) == [("gpt-4o-mini", "ok")]  # no p95 yet: no hedge


def test_a_hedge_that_never_went_gives_back_its_retry(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    # One retry in the budget: fast calls with hedging on must not use it up.
    budget = RetryBudgetConfig(percent_can_retry=0.0, min_retries_per_s=0.1)
    fake_provider.script(model=OPENAI_ID, status=503, times=1)
    call = make_call(
        driver, registry, policy=Policy(hedge_after_s=0.5, max_attempts=2), retry_budget=budget
    )
    response = call(model="support", messages=MESSAGES)
    # the first answer failed fast (no hedge went), and the retry still had its budget
    assert outcomes(response) == [("gpt-4o-mini", "error"), ("gpt-4o-mini", "ok")]


def test_a_one_deployment_plan_is_hedged_by_a_second_attempt_on_it(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=3.0, content="slow", times=1)
    fake_provider.script(model=OPENAI_ID, content="fast")
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.2))
    response = call(model="gpt-4o-mini", messages=MESSAGES)
    assert response.choices[0].message.content == "fast"
    assert outcomes(response) == [("gpt-4o-mini", "cancelled"), ("gpt-4o-mini", "ok")]
    assert [r.vendor for r in fake_provider.requests] == ["openai", "openai"]


def test_a_stream_is_hedged_on_its_first_chunk_and_the_loser_is_closed(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, first_chunk_delay=3.0, content="slow side")
    fake_provider.script(model=HAIKU_ID, content="fast side")
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.2))
    streamed = call(model="support", messages=MESSAGES, stream=True)
    assert streamed.completed
    assert streamed.content == "fast side"  # every chunk from the winner, none from the loser
    assert streamed.guard.deployment == "claude-haiku"
    assert outcomes(streamed) == [("gpt-4o-mini", "cancelled"), ("claude-haiku", "ok")]
    assert [r.vendor for r in fake_provider.requests] == ["openai", "anthropic"]


def test_a_fast_stream_sends_no_hedge(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    call = make_call(driver, registry, policy=Policy(hedge_after_s=1.0))
    streamed = call(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert streamed.completed
    assert outcomes(streamed) == [("gpt-4o-mini", "ok")]
    assert len(fake_provider.requests) == 1


@pytest.mark.usefixtures("on_both_backends")
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_hedged_call_settles_every_guard_it_held(
    driver: str, registry: Registry, fake_provider: FakeProvider, stream: bool
) -> None:
    """Both sides reserved their worst case; once the call is over nothing is held, and the
    budget spent what the call says it cost (the loser at its worst case)."""
    fake_provider.script(model=OPENAI_ID, latency=1.0, first_chunk_delay=1.0, times=1)
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    with open_session(
        driver, registry, budgets=[budget], policy=Policy(hedge_after_s=0.1)
    ) as session:
        result = session.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=stream
        )
        [status] = session.spend()
    assert outcomes(result) == [("gpt-4o-mini", "cancelled"), ("gpt-4o-mini", "ok")]
    assert status.reserved_usd == 0
    assert result.guard.cost_usd is not None
    assert status.spent_usd == pytest.approx(result.guard.cost_usd, abs=1e-9)


@pytest.mark.usefixtures("on_both_backends")
@pytest.mark.parametrize("driver", ["asyncio", "trio"])
def test_a_cancelled_hedged_stream_gives_back_what_both_sides_held(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, hang=True)
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    with open_session(
        driver, registry, budgets=[budget], policy=Policy(hedge_after_s=0.05)
    ) as session:

        async def run() -> None:
            with anyio.fail_after(10), anyio.CancelScope() as scope:
                async with anyio.create_task_group() as group:

                    async def cancel_when_both_sent() -> None:
                        while len(fake_provider.requests) < 2:
                            await anyio.sleep(0.005)
                        scope.cancel()

                    group.start_soon(cancel_when_both_sent)
                    await session.client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, stream=True
                    )
            assert scope.cancelled_caught, "the call ended before it could be cancelled"

        session.run_async(run)
        deadline = time.monotonic() + 5  # a shared store lets go in the background
        while session.spend()[0].reserved_usd and time.monotonic() < deadline:
            time.sleep(0.01)
        [status] = session.spend()
    assert len(fake_provider.requests) == 2
    assert status.reserved_usd == 0
    assert status.spent_usd == 0
