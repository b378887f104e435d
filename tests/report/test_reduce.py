"""Samples into bounded points: a CDF's points lie on the exact empirical CDF, a histogram
counts every sample once, a long timeline keeps the peak of each span."""

from __future__ import annotations

import math
import random
from bisect import bisect_right

from hypothesis import given
from hypothesis import strategies as st

from guardedllm.defaults import REPORT_CDF_POINTS, REPORT_CDF_TAIL
from guardedllm.report._reduce import cdf_points, histogram, timeline_points

samples = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=400)


@given(samples)
def test_every_cdf_point_is_on_the_empirical_cdf(values: list[float]) -> None:
    kept = sorted(v for v in values if math.isfinite(v))
    points = cdf_points(values)
    for x, y in zip(points.x, points.y, strict=True):
        assert y == bisect_right(kept, x) / len(kept)
    assert list(points.x) == sorted(set(points.x))
    if kept:
        assert (points.x[0], points.x[-1], points.y[-1]) == (kept[0], kept[-1], 1.0)
    else:
        assert points.x == points.y == ()


def test_a_short_series_gives_every_distinct_value() -> None:
    points = cdf_points([3.0, 1.0, 2.0, 2.0, float("nan")])
    assert points.x == (1.0, 2.0, 3.0)
    assert points.y == (0.25, 0.75, 1.0)


def test_a_long_series_gives_a_bounded_number_of_points_with_its_tail() -> None:
    values = [float(i) for i in range(100_000)]
    random.Random(1).shuffle(values)
    points = cdf_points(values)
    assert len(points.x) <= REPORT_CDF_POINTS + len(REPORT_CDF_TAIL)
    assert {0.5, 0.99, 0.999, 0.9999, 1.0} <= set(points.y)  # p50, p99, the tail, the max
    assert points.x[points.y.index(0.999)] == 99_899.0


def test_a_histogram_counts_each_finite_sample_once_in_shared_bins() -> None:
    a = [0.0, 1.0, 2.5, 10.0, float("inf")]
    b = [5.0, 5.0, -1.0]
    counted = histogram([a, b], bins=11)
    assert counted.edges[0] == -1.0
    assert counted.edges[-1] == 10.0
    assert len(counted.edges) == 12
    assert [sum(c) for c in counted.counts] == [4, 3]
    assert counted.counts[0][-1] == 1  # the largest sample is in the last bin
    assert counted.counts[1][0] == 1  # the smallest in the first


def test_a_histogram_of_one_value_or_none() -> None:
    assert histogram([[7.0, 7.0]], bins=2).edges == (6.5, 7.0, 7.5)
    assert histogram([[7.0, 7.0]], bins=2).counts == ((0, 2),)
    assert histogram([[]], bins=2).counts == ((0, 0),)


def test_a_long_timeline_keeps_the_peak_of_each_span_in_time_order() -> None:
    times = [60.0 * i for i in range(10_000)]
    values = [float(i % 97) for i in range(10_000)]
    values[4321] = 1_000.0
    shuffled = list(zip(times, values, strict=True))
    random.Random(2).shuffle(shuffled)
    points = timeline_points([t for t, _ in shuffled], [v for _, v in shuffled], points=100)
    assert len(points.x) == 100
    assert list(points.x) == sorted(points.x)
    assert (60.0 * 4321, 1_000.0) in zip(points.x, points.y, strict=True)
    assert min(points.y) == 96.0  # every span of 100 minutes holds a 96


def test_a_short_timeline_is_kept_whole_but_for_what_is_not_a_number() -> None:
    points = timeline_points([120.0, 0.0, 60.0, 180.0], [3.0, 1.0, float("nan"), 4.0])
    assert points.x == (0.0, 120.0, 180.0)
    assert points.y == (1.0, 3.0, 4.0)
    same_time = timeline_points([5.0] * 3, [1.0, 9.0, 2.0], points=2)
    assert same_time.y == (9.0,)
