"""``max_cost_usd`` caps the whole call: answered attempts, escalations and hedges all draw on
what is left of it; a hedge's loser is part of what the call cost; an answer the vendor billed
beyond its worst case is noted (``guard.decisions``, ``guardedllm.cost.overshoot``)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from guardedllm import Client, Policy, Registry
from guardedllm.errors import BudgetExceededError
from guardedllm.routing import usage_cost
from guardedllm.telemetry import Telemetry
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion, Usage
from support import ENVIRON, config_text, make_call

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
HAIKU_ID = "claude-3-5-haiku-20241022"

ESCALATING = """
[routes.escalating]
fallback = ["claude-haiku"]
escalate_to = "gpt-4o-mini"
"""


@pytest.fixture
def escalating(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider) + ESCALATING, source="test-config")


def reject(completion: ChatCompletion) -> bool:
    return False


def test_an_escalation_draws_on_what_the_answer_left_of_the_cap(
    driver: str, escalating: Registry, fake_provider: FakeProvider
) -> None:
    # Each worst case fits the $0.0045 cap alone (claude-haiku ~$0.0040, gpt-4o-mini ~$0.0006),
    # but claude-haiku's answer cost ~$0.0040, which leaves too little for the escalation.
    fake_provider.script(model=HAIKU_ID, usage={"prompt_tokens": 10, "completion_tokens": 990})
    call = make_call(driver, escalating, policy=Policy(max_cost_usd=0.0045, validator=reject))
    with pytest.raises(BudgetExceededError) as caught:
        call(model="escalating", messages=MESSAGES, max_tokens=1000)
    assert "left of the call's $0.004500 cap" in str(caught.value)
    assert caught.value.limit_usd < 0.0006
    assert [(a.deployment, a.outcome) for a in caught.value.attempts] == [
        ("claude-haiku", "ok"),
        ("gpt-4o-mini", "skipped"),
    ]
    assert len(fake_provider.requests) == 1  # the escalation was never sent


def test_an_escalation_within_what_is_left_goes(
    driver: str, escalating: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(
        model=HAIKU_ID,
        usage={"prompt_tokens": 10, "completion_tokens": 100},
        finish_reason="length",
    )
    call = make_call(driver, escalating, policy=Policy(max_cost_usd=0.0045))
    response = call(model="escalating", messages=MESSAGES, max_tokens=1000)
    assert response.guard.deployment == "gpt-4o-mini"
    assert len(fake_provider.requests) == 2


def test_a_hedge_that_would_overrun_the_cap_beside_its_primary_does_not_go(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    # gpt-4o-mini's worst case (~$0.0006) and claude-haiku's (~$0.0040) each fit $0.0045, not
    # both in flight at once.
    fake_provider.script(model=OPENAI_ID, latency=0.4)
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.05, max_cost_usd=0.0045))
    response = call(model="support", messages=MESSAGES, max_tokens=1000)
    assert [(a.deployment, a.outcome) for a in response.guard.attempts] == [("gpt-4o-mini", "ok")]
    assert len(fake_provider.requests) == 1


def test_a_hedged_losers_cost_is_part_of_what_the_call_cost(
    driver: str, registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=1.0)
    with Client(registry, environ=ENVIRON) as client:
        loser_worst = client.estimate(
            model="support",
            messages=MESSAGES,
            max_tokens=50,  # type: ignore[arg-type]
        ).cost_usd_max
    call = make_call(driver, registry, policy=Policy(hedge_after_s=0.1))
    response = call(model="support", messages=MESSAGES, max_tokens=50)
    guard = response.guard
    assert [(a.deployment, a.outcome) for a in guard.attempts] == [
        ("gpt-4o-mini", "cancelled"),
        ("claude-haiku", "ok"),
    ]
    usage = response.usage
    winner = usage_cost(registry.deployment("claude-haiku"), usage)
    # Cancelled before it answered: charged at its worst case, as the budgets were.
    assert guard.cost_usd == pytest.approx(winner + loser_worst)


def test_an_answer_billed_beyond_its_worst_case_is_noted_and_counted(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, usage={"prompt_tokens": 10, "completion_tokens": 5000})
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    with Client(registry, environ=ENVIRON, telemetry=telemetry) as client:
        response = client.chat.completions.create(
            model="support", messages=MESSAGES, max_tokens=10, policy=Policy(max_cost_usd=0.01)
        )
    assert isinstance(response, ChatCompletion)
    assert response.guard is not None
    billed = Usage(prompt_tokens=10, completion_tokens=5000, total_tokens=5010)
    cost = usage_cost(registry.deployment("gpt-4o-mini"), billed)
    assert response.guard.cost_usd == pytest.approx(cost)
    [note] = [d for d in response.guard.decisions if d.startswith("cost overshoot")]
    assert note.startswith(f"cost overshoot: gpt-4o-mini cost ${cost:.6f}, $")
    points = overshoots(reader)
    assert len(points) == 1
    assert points[0].attributes == {"guardedllm.deployment": "gpt-4o-mini"}
    assert 0 < points[0].value < cost


def test_a_stream_billed_beyond_its_worst_case_is_counted(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, usage={"prompt_tokens": 10, "completion_tokens": 5000})
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    with Client(registry, environ=ENVIRON, telemetry=telemetry) as client:
        stream = client.chat.completions.create(
            model="support", messages=MESSAGES, max_tokens=10, stream=True
        )
        with stream:
            list(stream)
    assert stream.completed
    billed = Usage(prompt_tokens=10, completion_tokens=5000, total_tokens=5010)
    cost = usage_cost(registry.deployment("gpt-4o-mini"), billed)
    assert stream.guard.cost_usd == pytest.approx(cost)
    points = overshoots(reader)
    assert len(points) == 1
    assert 0 < points[0].value < cost


def overshoots(reader: InMemoryMetricReader) -> list[Any]:
    """The data points of ``guardedllm.cost.overshoot``."""
    data = reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "guardedllm.cost.overshoot"
        for point in metric.data.data_points
    ]
