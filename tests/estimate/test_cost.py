"""Cost arithmetic. Expected values are worked by hand in the comments (US dollars)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm.estimate import Prices, cost_usd

MINI = Prices(input_usd_per_mtok=0.15, output_usd_per_mtok=0.60, cached_input_usd_per_mtok=0.075)


def test_plain_input_and_output() -> None:
    # 1000 * 0.15 / 1e6 + 500 * 0.60 / 1e6 = 0.00015 + 0.0003
    assert cost_usd(MINI, input_tokens=1000, output_tokens=500) == pytest.approx(0.00045)


def test_cached_tokens_are_part_of_input_at_the_cached_rate() -> None:
    # 600 * 0.15 + 400 * 0.075 = 90 + 30 = 120 micro-dollars of input; 500 * 0.60 = 300 of output
    cost = cost_usd(MINI, input_tokens=1000, output_tokens=500, cached_input_tokens=400)
    assert cost == pytest.approx(0.00042)


def test_cached_tokens_without_a_cached_rate_cost_the_input_rate() -> None:
    prices = Prices(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
    assert cost_usd(
        prices, input_tokens=1000, output_tokens=0, cached_input_tokens=1000
    ) == pytest.approx(0.003)


def test_reasoning_tokens_are_part_of_output_at_their_rate() -> None:
    prices = Prices(input_usd_per_mtok=1.0, output_usd_per_mtok=4.0, reasoning_usd_per_mtok=10.0)
    # 100 * 1 + (300 - 200) * 4 + 200 * 10 = 100 + 400 + 2000 = 2500 micro-dollars
    cost = cost_usd(prices, input_tokens=100, output_tokens=300, reasoning_tokens=200)
    assert cost == pytest.approx(0.0025)


def test_reasoning_tokens_without_a_rate_cost_the_output_rate() -> None:
    # OpenAI bills reasoning as output: the split must not change the total.
    assert cost_usd(MINI, input_tokens=10, output_tokens=300, reasoning_tokens=200) == cost_usd(
        MINI, input_tokens=10, output_tokens=300
    )


def test_a_million_tokens_cost_the_listed_price() -> None:
    assert cost_usd(MINI, input_tokens=1_000_000, output_tokens=1_000_000) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"input_tokens": -1, "output_tokens": 0}, ">= 0"),
        ({"input_tokens": 10, "output_tokens": 0, "cached_input_tokens": 11}, "cannot exceed"),
        ({"input_tokens": 0, "output_tokens": 10, "reasoning_tokens": 11}, "cannot exceed"),
    ],
)
def test_inconsistent_counts_are_refused(kwargs: dict[str, int], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        cost_usd(MINI, **kwargs)


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf, True, "1.0"])
def test_prices_must_be_finite_and_non_negative(bad: object) -> None:
    with pytest.raises(ValueError, match="input_usd_per_mtok"):
        Prices(input_usd_per_mtok=bad, output_usd_per_mtok=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cached_input_usd_per_mtok"):
        Prices(
            input_usd_per_mtok=1.0,
            output_usd_per_mtok=1.0,
            cached_input_usd_per_mtok=bad,  # type: ignore[arg-type]
        )


def test_free_models_are_allowed() -> None:
    free = Prices(input_usd_per_mtok=0, output_usd_per_mtok=0)
    assert cost_usd(free, input_tokens=10**9, output_tokens=10**9) == 0


tokens = st.integers(0, 10**8)
rates = st.floats(0, 1000, allow_nan=False)


@given(tokens, tokens, tokens, tokens, rates, rates, rates, rates)
def test_cost_is_the_sum_of_its_parts(
    inp: int,
    cached: int,
    out: int,
    reasoning: int,
    r_in: float,
    r_cache: float,
    r_out: float,
    r_reason: float,
) -> None:
    cached, reasoning = min(cached, inp), min(reasoning, out)
    prices = Prices(
        input_usd_per_mtok=r_in,
        output_usd_per_mtok=r_out,
        cached_input_usd_per_mtok=r_cache,
        reasoning_usd_per_mtok=r_reason,
    )
    cost = cost_usd(
        prices,
        input_tokens=inp,
        output_tokens=out,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
    )
    parts = (
        (inp - cached) * r_in + cached * r_cache + (out - reasoning) * r_out + reasoning * r_reason
    ) / 1e6
    assert cost >= 0
    assert cost == pytest.approx(parts)
