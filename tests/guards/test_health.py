"""DeploymentHealth: the resilience guards of one deployment read together."""

from __future__ import annotations

from collections.abc import Callable

from guardedllm.guards import (
    BreakerConfig,
    CircuitBreaker,
    RateLimiter,
    RetryAfter,
    RetryBudget,
    RetryBudgetConfig,
    UnavailableMarks,
    deployment_health,
)
from guardedllm.state import StateBackend


def test_health_combines_breaker_budget_and_mark_without_changing_them(
    new_backend: Callable[[], StateBackend],
) -> None:
    backend = new_backend()
    breaker = CircuitBreaker(
        backend, BreakerConfig(minimum_calls=1, open_s=10.0, open_jitter=0.0), random=lambda: 0.0
    )
    budget = RetryBudget(backend, RetryBudgetConfig(min_retries_per_s=1.0, ttl_s=10.0))
    marks = UnavailableMarks(backend)

    healthy = deployment_health("d", 0.0, breaker=breaker, budget=budget, marks=marks)
    assert healthy.available
    assert healthy.breaker.state == "closed"
    assert healthy.retry_balance == 10.0
    assert healthy.unavailable is None

    permit = breaker.acquire("d", 0.0)
    breaker.record("d", permit, "failure", 0.1, 0.0)
    assert budget.try_withdraw("d", 0.0)
    tripped = deployment_health("d", 1.0, breaker=breaker, budget=budget, marks=marks)
    assert not tripped.available
    assert (tripped.breaker.state, tripped.breaker.failure_rate) == ("open", 1.0)
    assert tripped.retry_balance == 9.0

    marks.mark("e", until=60.0, reason="404", now=0.0)
    missing = deployment_health("e", 1.0, breaker=breaker, budget=budget, marks=marks)
    assert missing.breaker.state == "closed"
    assert not missing.available
    # Reading twice changes nothing: the open breaker is not moved to half-open by a read.
    later = deployment_health("d", 11.0, breaker=breaker, budget=budget, marks=marks)
    assert later.breaker.state == "half_open"
    assert later.available
    assert breaker.acquire("d", 11.0).transition is not None


def test_health_shows_a_vendor_retry_after_holding_calls_back(
    new_backend: Callable[[], StateBackend],
) -> None:
    backend = new_backend()
    guards = {
        "breaker": CircuitBreaker(backend, BreakerConfig(), random=lambda: 0.0),
        "budget": RetryBudget(backend, RetryBudgetConfig()),
        "marks": UnavailableMarks(backend),
        "limiter": RateLimiter(backend),
    }
    asked = RetryAfter.honour(86_400.0, cap_s=60.0)
    assert asked is not None
    guards["limiter"].pause("d", asked, now=0.0)

    held = deployment_health("d", 59.0, **guards)
    assert not held.available
    assert held.paused is not None
    assert (held.paused.until, held.paused.retry_after.asked_s) == (60.0, 86_400.0)
    assert held.paused.retry_after.wait_s == 60.0
    assert held.paused.retry_after.capped
    assert held.breaker.state == "closed"
    assert held.unavailable is None
    assert deployment_health("d", 60.0, **guards).available
    assert deployment_health("d", 60.0, **guards).paused is None
    assert deployment_health("other", 1.0, **guards).available
