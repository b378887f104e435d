"""Statistics of the release tools: percentiles, and intervals that tell a difference from noise.

Per-request values are kept in ``array('d')`` (8 bytes a value: 800 KB per metric per 100,000
requests) rather than in a sketch: percentiles are then exact, the bootstrap can resample the
values themselves, and the arrays are what a chart of the distribution needs. The log itself is
streamed; only these numbers stay.

Percentiles are nearest-rank: the p-th percentile is the smallest value with at least p % of the
values at or below it, always a value that was observed.

Intervals are for the difference candidate - baseline, at the level of
``defaults.COMPARE_CONFIDENCE_Z``:

- a rate (errors, fallbacks): Newcombe's hybrid score interval, built from each arm's Wilson
  interval; it keeps its coverage near 0 % and 100 %, where the normal interval fails;
- a percentile: a bootstrap. The k-th smallest of n values drawn with replacement from sorted
  ``x`` is ``x[floor(n * U)]`` with U the k-th smallest of n uniforms, which is Beta(k, n-k+1)
  distributed; so each resample costs one Beta draw, not n draws and a sort, and the result is
  the same as resampling the values;
- a mean (cost, tokens): Welch's normal interval. For the hundreds of calls an arm has when a
  verdict matters, a bootstrap of the mean converges to it, at n times the cost per resample.

The random source is seeded (``defaults.COMPARE_BOOTSTRAP_SEED``): one set of records gives one
set of intervals.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from typing import Literal

import attrs

from guardedllm import defaults

__all__ = [
    "Difference",
    "Distribution",
    "Verdict",
    "mean_difference",
    "nearest_rank",
    "percentile_difference",
    "rate_difference",
    "verdict",
    "wilson",
]

Verdict = Literal["better", "worse", "inconclusive"]


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 < q <= 1) of the sorted values ``ordered`` (nan when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@attrs.frozen(kw_only=True)
class Distribution:
    """A summary of per-request values: percentiles, largest, mean, total and count."""

    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    mean: float
    total: float
    stdev: float

    @classmethod
    def of(cls, values: array[float]) -> Distribution:
        ordered = sorted(values)
        count = len(ordered)
        total = math.fsum(ordered)
        mean = total / count if count else math.nan
        spread = math.fsum((v - mean) ** 2 for v in ordered) / (count - 1) if count > 1 else 0.0
        return cls(
            count=count,
            p50=nearest_rank(ordered, 0.50),
            p90=nearest_rank(ordered, 0.90),
            p95=nearest_rank(ordered, 0.95),
            p99=nearest_rank(ordered, 0.99),
            max=ordered[-1] if ordered else math.nan,
            mean=mean,
            total=total,
            stdev=math.sqrt(spread),
        )


@attrs.frozen(kw_only=True)
class Difference:
    """candidate - baseline, with its interval ``low``..``high`` (nan: no interval: an arm has
    no data)."""

    value: float
    low: float
    high: float


def verdict(difference: Difference, *, lower_is_better: bool = True) -> Verdict:
    """ "worse" or "better" when the whole interval is on one side of 0, else "inconclusive"."""
    if math.isnan(difference.low) or math.isnan(difference.high):
        return "inconclusive"
    if difference.low > 0:
        return "worse" if lower_is_better else "better"
    if difference.high < 0:
        return "better" if lower_is_better else "worse"
    return "inconclusive"


def wilson(
    successes: int, trials: int, z: float = defaults.COMPARE_CONFIDENCE_Z
) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / trials``; (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(base_hits: int, base_n: int, cand_hits: int, cand_n: int) -> Difference:
    """Newcombe's hybrid score interval (his method 10) for the difference of two rates."""
    if base_n <= 0 or cand_n <= 0:
        return Difference(value=math.nan, low=math.nan, high=math.nan)
    p1, p2 = base_hits / base_n, cand_hits / cand_n
    l1, u1 = wilson(base_hits, base_n)
    l2, u2 = wilson(cand_hits, cand_n)
    d = p2 - p1
    return Difference(
        value=d,
        low=d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2),
        high=d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2),
    )


def mean_difference(base: Distribution, cand: Distribution) -> Difference:
    """Welch's normal interval for the difference of two means."""
    if base.count == 0 or cand.count == 0:
        return Difference(value=math.nan, low=math.nan, high=math.nan)
    d = cand.mean - base.mean
    if base.count < 2 or cand.count < 2:
        return Difference(value=d, low=math.nan, high=math.nan)
    half = defaults.COMPARE_CONFIDENCE_Z * math.sqrt(
        base.stdev**2 / base.count + cand.stdev**2 / cand.count
    )
    return Difference(value=d, low=d - half, high=d + half)


def _resampled_quantile(ordered: Sequence[float], q: float, rng: random.Random) -> float:
    n = len(ordered)
    rank = max(1, math.ceil(q * n - 1e-9))
    u = rng.betavariate(rank, n - rank + 1)
    return ordered[min(n - 1, int(n * u))]


def percentile_difference(
    base: Sequence[float] | None,
    cand: Sequence[float],
    q: float,
    *,
    base_point: float | None = None,
    resamples: int = defaults.COMPARE_BOOTSTRAP_RESAMPLES,
    seed: int = defaults.COMPARE_BOOTSTRAP_SEED,
) -> Difference:
    """A bootstrap interval for ``quantile(cand, q) - quantile(base, q)``; both sorted.

    ``base`` None compares with a fixed ``base_point`` instead (a saved release's figure,
    whose values are gone): only the candidate's own spread makes the interval.
    """
    if not cand or (base is None and base_point is None) or (base is not None and not base):
        return Difference(value=math.nan, low=math.nan, high=math.nan)
    rng = random.Random(seed)
    fixed = base_point if base is None else None
    point = nearest_rank(cand, q) - (fixed if fixed is not None else nearest_rank(base or (), q))
    diffs = sorted(
        _resampled_quantile(cand, q, rng)
        - (fixed if fixed is not None else _resampled_quantile(base or (), q, rng))
        for _ in range(resamples)
    )
    tail = (1 - _level()) / 2
    return Difference(
        value=point,
        low=diffs[int(tail * (resamples - 1))],
        high=diffs[math.ceil((1 - tail) * (resamples - 1))],
    )


def _level() -> float:
    """The two-sided confidence level of ``COMPARE_CONFIDENCE_Z`` (0.95 for 1.96)."""
    return math.erf(defaults.COMPARE_CONFIDENCE_Z / math.sqrt(2))
