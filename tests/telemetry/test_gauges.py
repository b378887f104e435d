"""Breaker state and budget headroom gauges, read from registered callbacks at collection."""

from __future__ import annotations

import logging

import pytest

from ._recording import Recorded


def test_breaker_states_are_one_series_per_state(recorded: Recorded) -> None:
    states = {"gpt-4o-mini": "open", "claude-haiku": "closed"}
    recorded.telemetry.observe_breakers(states.items)
    points = {
        (p.attributes["guardedllm.deployment"], p.attributes["guardedllm.breaker.state"]): p.value
        for p in recorded.points("guardedllm.breaker.state")
    }
    assert points == {
        ("gpt-4o-mini", "closed"): 0,
        ("gpt-4o-mini", "open"): 1,
        ("gpt-4o-mini", "half_open"): 0,
        ("claude-haiku", "closed"): 1,
        ("claude-haiku", "open"): 0,
        ("claude-haiku", "half_open"): 0,
    }
    assert recorded.metrics()["guardedllm.breaker.state"].unit == "1"


def test_an_unknown_breaker_state_is_reported_as_itself(recorded: Recorded) -> None:
    recorded.telemetry.observe_breakers(lambda: [("gpt-4o-mini", "forced_open")])
    on = [p for p in recorded.points("guardedllm.breaker.state") if p.value == 1]
    assert [p.attributes["guardedllm.breaker.state"] for p in on] == ["forced_open"]


def test_budget_headroom_gauges_read_their_sources_at_each_collection(recorded: Recorded) -> None:
    retries = {"gpt-4o-mini": 3.5}
    recorded.telemetry.observe_retry_budgets(retries.items)
    recorded.telemetry.observe_spend_budgets(lambda: [("daily", 12.25), ("team-a", 0.5)])
    retry = recorded.point("guardedllm.retry_budget.available")
    assert (dict(retry.attributes), retry.value) == ({"guardedllm.deployment": "gpt-4o-mini"}, 3.5)
    spend = {
        p.attributes["guardedllm.budget"]: p.value
        for p in recorded.points("guardedllm.spend_budget.remaining")
    }
    assert spend == {"daily": 12.25, "team-a": 0.5}
    assert recorded.metrics()["guardedllm.spend_budget.remaining"].unit == "{USD}"

    retries["gpt-4o-mini"] = 1.0  # a later collection sees the new value
    later = Recorded.collect(recorded.reader)["guardedllm.retry_budget.available"]
    assert [point.value for point in later.data.data_points] == [1.0]  # type: ignore[union-attr]


def test_a_broken_source_is_logged_and_does_not_hide_the_others(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> list[tuple[str, float]]:
        raise RuntimeError("budget store unreachable")

    recorded.telemetry.observe_spend_budgets(broken)
    recorded.telemetry.observe_spend_budgets(lambda: [("daily", 4.0)])
    with caplog.at_level(logging.WARNING, logger="guardedllm.telemetry"):
        points = recorded.points("guardedllm.spend_budget.remaining")
    assert [(p.attributes["guardedllm.budget"], p.value) for p in points] == [("daily", 4.0)]
    assert "gauge source" in caplog.text
    assert "budget store unreachable" in caplog.text
