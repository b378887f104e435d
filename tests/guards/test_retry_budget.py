"""RetryBudget on virtual time: Finagle's semantics, its windowed invariant, an outage
simulation, and real threads racing for one budget."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardedllm import defaults
from guardedllm.guards import RetryBudget, RetryBudgetConfig
from guardedllm.state import MemoryBackend, StateBackend


def budget(new_backend: Callable[[], StateBackend], **config: float) -> RetryBudget:
    return RetryBudget(new_backend(), RetryBudgetConfig(**config))  # type: ignore[arg-type]


def withdraw_all(b: RetryBudget, now: float, key: str = "d") -> int:
    granted = 0
    while b.try_withdraw(key, now):
        granted += 1
    return granted


# --------------------------------------------------------------------------- config


def test_defaults_come_from_defaults_module() -> None:
    config = RetryBudgetConfig()
    assert config.percent_can_retry == defaults.RETRY_BUDGET_PERCENT
    assert config.min_retries_per_s == defaults.RETRY_BUDGET_MIN_PER_S
    assert config.ttl_s == defaults.RETRY_BUDGET_TTL_S
    assert config.reserve == defaults.RETRY_BUDGET_MIN_PER_S * defaults.RETRY_BUDGET_TTL_S


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("percent_can_retry", -0.1),
        ("percent_can_retry", float("nan")),
        ("min_retries_per_s", -1.0),
        ("min_retries_per_s", float("inf")),
        ("ttl_s", 0.0),
        ("slices", 0),
    ],
)
def test_config_rejects_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"RetryBudgetConfig.{field} must be"):
        RetryBudgetConfig(**{field: value})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- behaviour


def test_a_fresh_budget_holds_the_reserve_only(new_backend: Callable[[], StateBackend]) -> None:
    b = budget(new_backend, percent_can_retry=0.2, min_retries_per_s=1.0, ttl_s=10.0)
    assert b.balance("d", 0.0) == 10.0
    assert withdraw_all(b, 0.0) == 10
    assert b.balance("d", 0.0) == 0.0


def test_each_request_deposits_a_share_of_a_retry(new_backend: Callable[[], StateBackend]) -> None:
    b = budget(new_backend, percent_can_retry=0.2, min_retries_per_s=0.0, ttl_s=10.0)
    assert not b.try_withdraw("d", 0.0)
    for _ in range(4):
        b.deposit("d", 0.0)
    assert not b.try_withdraw("d", 0.0)  # 0.8 of a retry is not one
    assert b.balance("d", 0.0) == pytest.approx(0.8)
    b.deposit("d", 0.0)
    assert b.try_withdraw("d", 0.0)  # five deposits of 0.2 make one, despite rounding
    assert not b.try_withdraw("d", 0.0)


def test_budgets_are_per_key(new_backend: Callable[[], StateBackend]) -> None:
    b = budget(new_backend, percent_can_retry=1.0, min_retries_per_s=0.0)
    b.deposit("a", 0.0)
    assert not b.try_withdraw("b", 0.0)
    assert b.try_withdraw("a", 0.0)


def test_deposits_expire_after_ttl_and_one_slice_at_most(
    new_backend: Callable[[], StateBackend],
) -> None:
    b = budget(new_backend, percent_can_retry=1.0, min_retries_per_s=0.0, ttl_s=10.0, slices=10)
    b.deposit("d", 0.5)  # slice 0 = [0, 1)
    assert b.balance("d", 10.9) == 1.0  # slices 0..10 are still in the window
    assert b.balance("d", 11.0) == 0.0
    assert not b.try_withdraw("d", 11.0)


def test_a_refused_withdrawal_leaves_the_budget_as_it_was(
    new_backend: Callable[[], StateBackend],
) -> None:
    b = budget(new_backend, percent_can_retry=0.5, min_retries_per_s=0.0)
    b.deposit("d", 0.0)
    assert not b.try_withdraw("d", 0.0)
    b.deposit("d", 0.0)
    assert b.try_withdraw("d", 0.0)


def test_withdrawals_expire_too_so_the_reserve_comes_back(
    new_backend: Callable[[], StateBackend],
) -> None:
    b = budget(new_backend, percent_can_retry=0.0, min_retries_per_s=1.0, ttl_s=10.0, slices=10)
    assert withdraw_all(b, 0.0) == 10
    assert withdraw_all(b, 10.5) == 0
    assert withdraw_all(b, 11.0) == 10


def test_zero_percent_and_zero_floor_never_retries(new_backend: Callable[[], StateBackend]) -> None:
    b = budget(new_backend, percent_can_retry=0.0, min_retries_per_s=0.0)
    for _ in range(100):
        b.deposit("d", 0.0)
    assert not b.try_withdraw("d", 0.0)
    assert b.balance("d", 0.0) == 0.0


# --------------------------------------------------------------------------- the invariant

# Times and slice widths are dyadic (multiples of 1/4) so that slice arithmetic is exact and
# the test checks the design, not floating-point luck.
CONFIGS = st.sampled_from(
    [
        RetryBudgetConfig(percent_can_retry=0.2, min_retries_per_s=1.0, ttl_s=10.0, slices=10),
        RetryBudgetConfig(percent_can_retry=0.1, min_retries_per_s=0.0, ttl_s=4.0, slices=4),
        RetryBudgetConfig(percent_can_retry=1.5, min_retries_per_s=0.5, ttl_s=2.0, slices=8),
        RetryBudgetConfig(percent_can_retry=0.25, min_retries_per_s=2.0, ttl_s=8.0, slices=1),
        RetryBudgetConfig(percent_can_retry=0.0, min_retries_per_s=3.0, ttl_s=3.0, slices=2),
    ]
)
EVENTS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=12), st.booleans()), min_size=1, max_size=150
)


@settings(max_examples=150, deadline=None)
@given(config=CONFIGS, events=EVENTS)
def test_retries_in_any_ttl_up_to_a_retry_are_bounded_by_recent_requests(
    new_backend: Callable[[], StateBackend],
    config: RetryBudgetConfig,
    events: list[tuple[int, bool]],
) -> None:
    """For every granted retry at t: retries in [t - ttl, t] <= percent * requests in
    [t - ttl - slice, t] + floor * ttl (the slack documented in retry_budget.py)."""
    b = RetryBudget(new_backend(), config)
    now = 0.0
    deposits: list[float] = []
    granted: list[float] = []
    for step, is_request in events:
        now += step / 4
        if is_request:
            b.deposit("d", now)
            deposits.append(now)
        elif b.try_withdraw("d", now):
            granted.append(now)
            retries = sum(1 for t in granted if t >= now - config.ttl_s)
            requests = sum(1 for t in deposits if t >= now - config.ttl_s - config.slice_s)
            assert retries <= config.percent_can_retry * requests + config.reserve + 1e-9


@settings(max_examples=100, deadline=None)
@given(config=CONFIGS, events=EVENTS)
def test_balance_is_what_can_be_withdrawn(
    new_backend: Callable[[], StateBackend],
    config: RetryBudgetConfig,
    events: list[tuple[int, bool]],
) -> None:
    b = RetryBudget(new_backend(), config)
    now = 0.0
    for step, is_request in events:
        now += step / 4
        if is_request:
            b.deposit("d", now)
        else:
            b.try_withdraw("d", now)
    balance = b.balance("d", now)
    assert balance >= 0
    assert withdraw_all(b, now) == int(balance + 1e-9)


@pytest.mark.parametrize("percent", [0.1, 0.2])
@pytest.mark.parametrize("floor", [0.0, 1.0, 10.0])
def test_a_full_outage_costs_about_one_attempt_per_call(
    new_backend: Callable[[], StateBackend], percent: float, floor: float
) -> None:
    """200 calls over 20 s, each wanting 3 attempts, every attempt failing."""
    b = budget(new_backend, percent_can_retry=percent, min_retries_per_s=floor, ttl_s=10.0)
    calls, duration, attempts = 200, 20.0, 0
    for i in range(calls):
        now = i * duration / calls
        b.deposit("d", now)
        attempts += 1
        for _retry in range(2):
            if not b.try_withdraw("d", now):
                break
            attempts += 1
    assert attempts <= (1 + percent) * calls + floor * duration + 1e-9
    # ...and the budget is not stingier than that: it grants what recent traffic earned.
    assert attempts >= (1 + percent) * calls + floor * duration - 2


# --------------------------------------------------------------------------- concurrency


def test_threads_racing_for_one_budget_never_overdraw_it(
    new_backend: Callable[[], StateBackend],
) -> None:
    config = RetryBudgetConfig(percent_can_retry=0.2, min_retries_per_s=1.0, ttl_s=10.0)
    b = RetryBudget(new_backend(), config)
    # Fewer rounds on Redis, where each is up to seven round trips (150: about 1.3 s there).
    threads, rounds = 8, 400 if new_backend is MemoryBackend else 150
    granted = [0] * threads
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        start.wait()
        for i in range(rounds):
            now = 5.0 + (i % 97) / 100  # all within slice 5: the exact case
            b.deposit("d", now)
            for _ in range(3):
                if b.try_withdraw("d", now):
                    granted[n] += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    earned = config.percent_can_retry * threads * rounds + config.reserve
    assert sum(granted) <= earned + 1e-9
    assert sum(granted) >= earned - 1  # every earned retry was handed out
