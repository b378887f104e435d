"""Spend budgets, cost caps, context-window refusals and actual costs, through every driver,
against FakeProvider: the worst case is reserved before sending, settled to the vendor's usage
after, and a refused call sends nothing.

Figures come from counts (requests the fake received, calls answered and refused) and from the
budget's own counters (``client.spend()``), never from wall time.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from guardedllm import Client, Policy, Registry
from guardedllm.errors import BudgetExceededError, ContextWindowExceededError, GuardedLLMError
from guardedllm.estimate import Estimate
from guardedllm.guards import SpendBudget, SpendStatus
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from session import Result, Session, open_session
from support import ENVIRON, Streamed

# Every guard decision here holds alike on in-process and shared (Redis) state.
pytestmark = pytest.mark.usefixtures("on_both_backends")

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
MAX_TOKENS = 100
OPENAI_ID = "gpt-4o-mini-2024-07-18"
VENDOR_IDS = {
    "gpt-4o-mini": OPENAI_ID,
    "azure-4o": "prod-gpt-4o",
    "claude-haiku": "claude-3-5-haiku-20241022",
    "gemini-flash": "gemini-2.0-flash",
}

CALLS = 500
# With every actual cost equal to its reservation, exactly this many calls fit the budget.
FITTING = 120

# Spend counters hold whole nano-dollars; sums of float costs agree with them to well within this.
USD = 1e-9


def worst_case(registry: Registry, model: str, **kwargs: Any) -> Estimate:
    """The pre-flight estimate for ``model`` (pure for these requests: nothing is sent)."""
    with Client(registry, environ=ENVIRON) as client:
        return client.estimate(model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, **kwargs)


def bill_the_worst_case(fake: FakeProvider, model: str, estimate: Estimate) -> None:
    """Make the fake report exactly the tokens reserved, so every call costs its worst case."""
    fake.script(
        model=VENDOR_IDS[model],
        usage={
            "prompt_tokens": estimate.input_tokens,
            "completion_tokens": estimate.max_output_tokens,
        },
    )


def answered(results: list[Result]) -> list[ChatCompletion]:
    return [r for r in results if isinstance(r, ChatCompletion)]


def refused(results: list[Result]) -> list[BudgetExceededError]:
    return [r for r in results if isinstance(r, BudgetExceededError)]


def only_status(session: Session, **kwargs: Any) -> SpendStatus:
    (status,) = session.spend(**kwargs)
    return status


def cost_of(result: ChatCompletion | Streamed) -> float:
    cost = result.guard.cost_usd
    assert cost is not None, "the fake reports usage, so every answered call has a cost"
    return cost


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("billed", ["worst case", "a fifth of the worst case"])
def test_many_concurrent_calls_never_overspend_a_global_budget(
    driver: str, registry: Registry, fake_provider: FakeProvider, billed: str
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    if billed == "worst case":
        bill_the_worst_case(fake_provider, "gpt-4o-mini", estimate)
        limit = FITTING * estimate.cost_usd_max
    else:
        # 20 output tokens of the 100 reserved: (12 x 0.15 + 20 x 0.60) / 1e6 = $0.0000138.
        fake_provider.script(
            model=OPENAI_ID,
            usage={"prompt_tokens": estimate.input_tokens, "completion_tokens": 20},
        )
        limit = 200 * (estimate.input_tokens * 0.15 + 20 * 0.60) / 1e6
    budget = SpendBudget(scope="global", window="day", limit_usd=limit)
    samples: list[SpendStatus] = []

    with open_session(driver, registry, budgets=[budget]) as session:
        results = session.many(
            CALLS,
            during=lambda: samples.append(only_status(session)),
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
        )
        final = only_status(session)

    ok, no = answered(results), refused(results)
    assert len(ok) + len(no) == CALLS, [r for r in results if isinstance(r, GuardedLLMError)][:3]
    assert no, "the budget is meant to refuse some of the calls"
    # A refused call sent nothing: the fake saw exactly the answered calls.
    assert len(fake_provider.requests) == len(ok)
    for error in no:
        assert error.limit_usd == limit
        assert error.cost_usd == pytest.approx(estimate.cost_usd_max)
        assert [(a.outcome, a.error_type) for a in error.attempts] == [
            ("skipped", "BudgetExceededError")
        ]
        assert "Nothing was sent" in str(error)
    # Settled spend never exceeds the limit, at any moment sampled nor at the end; every
    # reservation was settled or released.
    assert samples, "the budget was sampled while the calls ran"
    for status in samples:
        assert status.spent_usd <= limit
        assert status.spent_usd + status.reserved_usd <= limit + USD
    assert final.reserved_usd == 0
    assert final.spent_usd <= limit
    assert final.spent_usd == pytest.approx(sum(cost_of(r) for r in ok), abs=len(ok) * USD)
    if billed == "worst case":
        assert len(ok) == FITTING
        assert final.remaining_usd == pytest.approx(0, abs=USD)
    else:
        # At least the calls whose worst cases fit at once; at most what the actual costs allow.
        assert math.floor(limit / estimate.cost_usd_max) <= len(ok) <= 200


# --------------------------------------------------------------------------- keys and routes


def test_a_key_budget_counts_each_tenant_apart(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    bill_the_worst_case(fake_provider, "gpt-4o-mini", estimate)
    budget = SpendBudget(scope="key", window="day", limit_usd=3 * estimate.cost_usd_max)
    tenant_a, tenant_b = Policy(budget_key="tenant-a"), Policy(budget_key="tenant-b")
    call = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    with open_session(driver, registry, budgets=[budget]) as session:
        for _ in range(3):
            session.create(**call, policy=tenant_a)
        fourth = session.outcome(**call, policy=tenant_a)
        assert isinstance(fourth, BudgetExceededError)
        assert "each key per day (key 'tenant-a')" in str(fourth)
        assert len(fake_provider.requests) == 3
        # Another tenant has a counter of its own; a call without a key is not counted.
        for _ in range(3):
            session.create(**call, policy=tenant_b)
        for _ in range(4):
            session.create(**call)
        assert isinstance(session.outcome(**call, policy=tenant_b), BudgetExceededError)
        statuses = session.spend(keys=["tenant-a", "tenant-b", "tenant-c"])

    assert len(fake_provider.requests) == 10
    assert [(s.subject, s.reserved_usd) for s in statuses] == [
        ("tenant-a", 0),
        ("tenant-b", 0),
        ("tenant-c", 0),
    ]
    assert [s.spent_usd for s in statuses] == pytest.approx(
        [3 * estimate.cost_usd_max, 3 * estimate.cost_usd_max, 0], abs=3 * USD
    )


def test_the_clients_budget_key_applies_until_a_call_names_another(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    bill_the_worst_case(fake_provider, "gpt-4o-mini", estimate)
    # Only tenant-a is capped; the global budget, twice as large, counts every call.
    budgets = [
        SpendBudget(scope="key", window="day", match="tenant-a", limit_usd=estimate.cost_usd_max),
        SpendBudget(scope="global", window="day", limit_usd=3 * estimate.cost_usd_max),
    ]
    call = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    with open_session(
        driver, registry, budgets=budgets, policy=Policy(budget_key="tenant-a")
    ) as session:
        session.create(**call)
        assert isinstance(session.outcome(**call), BudgetExceededError)
        session.create(**call, policy=Policy(budget_key="tenant-b"))
        session.create(**call, policy=Policy(budget_key="tenant-b"))
        global_cap = session.outcome(**call, policy=Policy(budget_key="tenant-b"))
        assert isinstance(global_cap, BudgetExceededError)
        assert "spend budget global per day would be exceeded" in str(global_cap)
        key_status, global_status = session.spend()

    assert len(fake_provider.requests) == 3
    assert (key_status.subject, key_status.spent_usd) == (
        "tenant-a",
        pytest.approx(estimate.cost_usd_max, abs=USD),
    )
    assert global_status.spent_usd == pytest.approx(3 * estimate.cost_usd_max, abs=3 * USD)


def test_a_route_budget_counts_the_name_the_caller_used(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    bill_the_worst_case(fake_provider, "gpt-4o-mini", estimate)
    budget = SpendBudget(
        scope="route", window="day", match="support", limit_usd=2 * estimate.cost_usd_max
    )
    call = {"messages": MESSAGES, "max_tokens": MAX_TOKENS}

    with open_session(driver, registry, budgets=[budget]) as session:
        for _ in range(2):
            assert session.create(model="support", **call).guard.deployment == "gpt-4o-mini"
        third = session.outcome(model="support", **call)
        # Each deployment of the route was refused in turn; nothing went out.
        assert isinstance(third, BudgetExceededError)
        assert [(a.deployment, a.outcome) for a in third.attempts] == [
            ("gpt-4o-mini", "skipped"),
            ("claude-haiku", "skipped"),
            ("gemini-flash", "skipped"),
        ]
        assert len(fake_provider.requests) == 2
        # The same deployment under its own name is not the route 'support'.
        session.create(model="gpt-4o-mini", **call)
        session.create(model="chat", **call)
        (status,) = session.spend()

    assert len(fake_provider.requests) == 4
    assert (status.subject, status.reserved_usd) == ("support", 0)
    assert status.spent_usd == pytest.approx(2 * estimate.cost_usd_max, abs=2 * USD)


def test_a_route_budget_falls_back_to_a_deployment_it_can_afford(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    mini = worst_case(registry, "gpt-4o-mini")
    gemini = worst_case(registry, "gemini-flash")
    assert gemini.cost_usd_max < mini.cost_usd_max
    # Room for Gemini's worst case but not for gpt-4o-mini's (nor claude-haiku's).
    limit = (gemini.cost_usd_max + mini.cost_usd_max) / 2
    budgets = [SpendBudget(scope="route", window="day", limit_usd=limit)]

    with open_session(driver, registry, budgets=budgets) as session:
        response = session.create(model="support", messages=MESSAGES, max_tokens=MAX_TOKENS)
        statuses = session.spend(routes=["support", "chat"])

    assert [(a.deployment, a.outcome, a.error_type) for a in response.guard.attempts] == [
        ("gpt-4o-mini", "skipped", "BudgetExceededError"),
        ("claude-haiku", "skipped", "BudgetExceededError"),
        ("gemini-flash", "ok", None),
    ]
    assert [r.vendor for r in fake_provider.requests] == ["gemini"]
    support, chat = statuses
    assert support.spent_usd == pytest.approx(cost_of(response), abs=USD)
    assert support.reserved_usd == 0
    assert (chat.subject, chat.spent_usd) == ("chat", 0)


# --------------------------------------------------------------------------- reservations


def test_a_failed_call_releases_its_reservation(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    budget = SpendBudget(scope="global", window="day", limit_usd=estimate.cost_usd_max)
    fake_provider.script(model=OPENAI_ID, status=503, times=2)
    fake_provider.script(model=OPENAI_ID, status=400, times=1)
    call = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": MAX_TOKENS}

    with open_session(driver, registry, budgets=[budget]) as session:
        assert not isinstance(session.outcome(**call), ChatCompletion)  # 503 twice
        assert not isinstance(session.outcome(**call), ChatCompletion)  # 400
        released = only_status(session)
        # The whole budget is free again, so a call with the same worst case fits.
        response = session.create(**call)
        final = only_status(session)

    assert (released.spent_usd, released.reserved_usd) == (0, 0)
    assert released.remaining_usd == pytest.approx(estimate.cost_usd_max, abs=USD)
    assert len(fake_provider.requests) == 4
    assert final.spent_usd == pytest.approx(cost_of(response), abs=USD)
    assert final.reserved_usd == 0


def _reserved_while_streaming(session: Session, call: dict[str, Any]) -> tuple[float, Streamed]:
    """Open a stream, read its first chunk, note what the budget holds, then read the rest."""
    if session.driver == "sync":
        assert isinstance(session.client, Client)
        with session.client.chat.completions.create(**call) as stream:
            chunks = [next(stream)]
            held = only_status(session).reserved_usd
            chunks.extend(stream)
        return held, Streamed(chunks, stream.guard, stream.completed)

    async def run() -> tuple[float, Streamed]:
        stream = await session.client.chat.completions.create(**call)
        async with stream:
            chunks = [await stream.__anext__()]
            held = only_status(session).reserved_usd
            chunks.extend([chunk async for chunk in stream])
        return held, Streamed(chunks, stream.guard, stream.completed)

    result: tuple[float, Streamed] = session.run_async(run)
    return result


def test_a_stream_holds_its_worst_case_until_it_ends(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    budget = SpendBudget(scope="global", window="day", limit_usd=10 * estimate.cost_usd_max)
    call = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": MAX_TOKENS, "stream": True}

    with open_session(driver, registry, budgets=[budget]) as session:
        held, streamed = _reserved_while_streaming(session, call)
        after = only_status(session)

    assert streamed.completed
    assert held == pytest.approx(estimate.cost_usd_max, abs=USD)
    assert after.reserved_usd == 0
    assert 0 < after.spent_usd == pytest.approx(cost_of(streamed), abs=USD)
    assert after.spent_usd < estimate.cost_usd_max


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_refusals_before_sending_send_nothing_and_hold_nothing(
    driver: str, registry: Registry, fake_provider: FakeProvider, stream: bool
) -> None:
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    too_long = [{"role": "user", "content": "word " * 9000}]

    with open_session(driver, registry, budgets=[budget]) as session:
        # llama's window is 8192 tokens: 9000 words cannot fit, whatever max_tokens is.
        context = session.outcome(model="llama", messages=too_long, max_tokens=10, stream=stream)
        # A cap below every worst case on the route: each deployment is passed over.
        capped = session.outcome(
            model="support",
            messages=MESSAGES,
            max_tokens=8000,
            stream=stream,
            policy=Policy(max_cost_usd=1e-4),
        )
        status = only_status(session)

    assert isinstance(context, ContextWindowExceededError)
    assert context.context_window == 8192
    assert [(a.deployment, a.outcome) for a in context.attempts] == [("llama", "skipped")]
    assert isinstance(capped, BudgetExceededError)
    assert capped.limit_usd == 1e-4
    assert [(a.outcome, a.error_type) for a in capped.attempts] == [
        ("skipped", "BudgetExceededError")
    ] * 3
    assert fake_provider.requests == []
    assert (status.spent_usd, status.reserved_usd) == (0, 0)


def test_a_budget_too_small_for_one_call_refuses_it_whole(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    estimate = worst_case(registry, "gpt-4o-mini")
    budget = SpendBudget(
        scope="global", window="day", limit_usd=estimate.cost_usd_max / 2, name="tiny"
    )
    with open_session(driver, registry, budgets=[budget]) as session:
        error = session.outcome(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
        status = only_status(session)

    assert isinstance(error, BudgetExceededError)
    assert str(error).startswith("spend budget 'tiny' would be exceeded")
    assert "lower max_tokens" in str(error)
    assert fake_provider.requests == []
    assert (status.budget, status.spent_usd, status.reserved_usd) == ("'tiny'", 0, 0)


# --------------------------------------------------------------------------- actual cost


@pytest.mark.parametrize("model", sorted(VENDOR_IDS))
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_the_actual_cost_is_the_registry_prices_times_the_reported_usage(
    driver: str, registry: Registry, fake_provider: FakeProvider, model: str, stream: bool
) -> None:
    fake_provider.script(
        model=VENDOR_IDS[model],
        usage={"prompt_tokens": 1200, "completion_tokens": 345, "cached_tokens": 1000},
    )
    budget = SpendBudget(scope="global", window="day", limit_usd=1.0)
    with open_session(driver, registry, budgets=[budget]) as session:
        result = session.create(model=model, messages=MESSAGES, max_tokens=500, stream=stream)
        status = only_status(session)

    deployment = registry.models[model]
    cached_rate = deployment.cached_input_usd_per_mtok
    if cached_rate is None:
        cached_rate = deployment.input_usd_per_mtok
    expected = (
        200 * deployment.input_usd_per_mtok
        + 1000 * cached_rate
        + 345 * deployment.output_usd_per_mtok
    ) / 1e6
    assert cost_of(result) == pytest.approx(expected, rel=1e-12)
    assert status.spent_usd == pytest.approx(expected, abs=USD)
    assert status.reserved_usd == 0
    if model == "gpt-4o-mini":  # the one deployment with a cached-input price
        assert expected == pytest.approx((200 * 0.15 + 1000 * 0.075 + 345 * 0.60) / 1e6)
