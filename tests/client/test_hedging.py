"""Hedging: a slow first attempt is raced by the next deployment of the plan."""

from __future__ import annotations

import time

from guardedllm import Policy, Registry
from guardedllm.guards import RetryBudgetConfig
from guardedllm.testing import FakeProvider
from support import make_call

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"


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
