"""Percentiles and the intervals that tell a difference from noise, on known values."""

from __future__ import annotations

import math
import random
import statistics
from array import array

import pytest

from guardedllm.release import (
    Difference,
    Distribution,
    mean_difference,
    nearest_rank,
    percentile_difference,
    rate_difference,
    verdict,
    wilson,
)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 0.50) == 50
    assert nearest_rank(values, 0.90) == 90
    assert nearest_rank(values, 0.99) == 99
    assert nearest_rank(values, 1.0) == 100
    assert nearest_rank([7.0], 0.99) == 7
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.5) == 2
    assert math.isnan(nearest_rank([], 0.5))


def test_distribution_summary() -> None:
    summary = Distribution.of(array("d", [4.0, 1.0, 3.0, 2.0]))
    assert (summary.count, summary.p50, summary.p99, summary.max) == (4, 2.0, 4.0, 4.0)
    assert (summary.mean, summary.total) == (2.5, 10.0)
    assert summary.stdev == pytest.approx(statistics.stdev([1, 2, 3, 4]))
    empty = Distribution.of(array("d"))
    assert empty.count == 0
    assert math.isnan(empty.p50)
    assert math.isnan(empty.mean)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", table I
        # (method 3, Wilson score without continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_published_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    found = wilson(successes, trials)
    assert found == pytest.approx((low, high), abs=1e-4)


def test_wilson_without_trials_is_the_whole_range() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def test_rate_difference_matches_newcombe() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", table II example (a): 56/70 - 48/80, method 10: +0.0524 to +0.3339.
    found = rate_difference(48, 80, 56, 70)
    assert found.value == pytest.approx(0.2)
    assert (found.low, found.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert verdict(found) == "worse"  # a higher rate of errors
    assert math.isnan(rate_difference(0, 0, 1, 10).value)


def test_verdicts() -> None:
    assert verdict(Difference(value=1.0, low=0.5, high=1.5)) == "worse"
    assert verdict(Difference(value=-1.0, low=-1.5, high=-0.5)) == "better"
    assert verdict(Difference(value=0.2, low=-0.1, high=0.5)) == "inconclusive"
    assert verdict(Difference(value=1.0, low=math.nan, high=math.nan)) == "inconclusive"
    assert verdict(Difference(value=1.0, low=0.5, high=1.5), lower_is_better=False) == "better"


def sample(mean: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return sorted(rng.lognormvariate(math.log(mean), 0.5) for _ in range(n))


def test_percentile_difference_large_shift_and_noise() -> None:
    base = sample(1.0, 400, seed=1)
    slower = sample(2.0, 400, seed=2)
    alike = sample(1.0, 400, seed=3)
    for q in (0.5, 0.95, 0.99):
        assert verdict(percentile_difference(base, slower, q)) == "worse"
        assert verdict(percentile_difference(slower, base, q)) == "better"
        assert verdict(percentile_difference(base, alike, q)) == "inconclusive"


def test_percentile_difference_is_reproducible_and_contains_its_point() -> None:
    base, cand = sample(1.0, 300, seed=4), sample(1.2, 300, seed=5)
    first = percentile_difference(base, cand, 0.95)
    assert first == percentile_difference(base, cand, 0.95)
    assert first.low <= first.value <= first.high
    assert first.value == nearest_rank(cand, 0.95) - nearest_rank(base, 0.95)


def test_one_beta_draw_resamples_an_order_statistic_as_resampling_the_values_does() -> None:
    # The k-th smallest of n values drawn with replacement, two ways: by drawing the n values
    # and sorting them, and by the single Beta draw the bootstrap uses. Their distributions
    # must agree (compared by the mean and spread of many draws).
    values = sorted(random.Random(6).uniform(0, 10) for _ in range(25))
    n, rank = len(values), 20
    rng = random.Random(7)
    naive = [sorted(rng.choices(values, k=n))[rank - 1] for _ in range(20_000)]
    beta = [values[min(n - 1, int(n * rng.betavariate(rank, n - rank + 1)))] for _ in range(20_000)]
    assert statistics.mean(beta) == pytest.approx(statistics.mean(naive), rel=0.01)
    assert statistics.stdev(beta) == pytest.approx(statistics.stdev(naive), rel=0.05)


def test_percentile_difference_against_a_fixed_point() -> None:
    cand = sample(1.0, 300, seed=8)
    point = nearest_rank(cand, 0.5)
    assert verdict(percentile_difference(None, cand, 0.5, base_point=point)) == "inconclusive"
    assert verdict(percentile_difference(None, cand, 0.5, base_point=point / 2)) == "worse"
    assert math.isnan(percentile_difference([], cand, 0.5).value)


def test_mean_difference_is_welch() -> None:
    base = Distribution.of(array("d", [1.0, 2.0, 3.0, 4.0]))
    cand = Distribution.of(array("d", [11.0, 12.0, 13.0, 14.0]))
    found = mean_difference(base, cand)
    half = 1.959963984540054 * math.sqrt(2 * statistics.variance([1, 2, 3, 4]) / 4)
    assert found.value == 10.0
    assert (found.low, found.high) == pytest.approx((10 - half, 10 + half))
    assert verdict(found) == "worse"
