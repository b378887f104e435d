"""Samples into a bounded number of points: what a chart draws, whatever its series' size.

Pure arithmetic (no chart library), so each rule is tested on its own: a CDF's points lie on
the series' exact empirical CDF, a histogram counts every sample once, a long timeline keeps
the highest point of each span.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

import attrs

from guardedllm.defaults import (
    REPORT_CDF_POINTS,
    REPORT_CDF_TAIL,
    REPORT_HISTOGRAM_BINS,
    REPORT_TIMELINE_POINTS,
)

__all__ = ["Histogram", "Points", "cdf_points", "finite", "histogram", "timeline_points"]


@attrs.frozen(kw_only=True)
class Points:
    """A line's points, in increasing x."""

    x: tuple[float, ...]
    y: tuple[float, ...]


@attrs.frozen(kw_only=True)
class Histogram:
    """Bins shared by every series (``len(edges) == bins + 1``) and each series' counts."""

    edges: tuple[float, ...]
    counts: tuple[tuple[int, ...], ...]


def finite(values: Iterable[float]) -> list[float]:
    """The values that are finite numbers: NaN and infinities have no place on an axis."""
    return [float(v) for v in values if math.isfinite(v)]


def cdf_points(
    values: Iterable[float],
    *,
    points: int = REPORT_CDF_POINTS,
    tail: Sequence[float] = REPORT_CDF_TAIL,
) -> Points:
    """Points on the empirical CDF: x a sample, y the share of samples at or below it.

    A series of at most ``points + len(tail)`` samples gives each of its distinct values (the
    exact step function); a longer one the smallest sample with at least each of ``points``
    evenly spaced shares at or below it, and each share of ``tail``.
    """
    ordered = sorted(finite(values))
    count = len(ordered)
    if count <= points + len(tail):
        ranks: Iterable[int] = range(count)
    else:
        shares = [i / (points - 1) for i in range(points)] + list(tail)
        ranks = (max(0, math.ceil(share * count) - 1) for share in shares)
    # A value's y counts every sample equal to it: its last rank among the ordered samples.
    last = sorted({bisect_right(ordered, ordered[rank]) - 1 for rank in ranks})
    return Points(x=tuple(ordered[i] for i in last), y=tuple((i + 1) / count for i in last))


def histogram(series: Sequence[Iterable[float]], *, bins: int = REPORT_HISTOGRAM_BINS) -> Histogram:
    """Each series' finite samples counted in ``bins`` equal bins from the smallest sample of
    all series to the largest (a bin holds its lower edge; the last one its upper edge too)."""
    samples = [finite(values) for values in series]
    low = min((min(values) for values in samples if values), default=0.0)
    high = max((max(values) for values in samples if values), default=1.0)
    if high <= low:  # every sample the same value: one unit wide around it
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    counts: list[tuple[int, ...]] = []
    for values in samples:
        bin_counts = [0] * bins
        for value in values:
            bin_counts[min(bins - 1, int((value - low) / width))] += 1
        counts.append(tuple(bin_counts))
    return Histogram(edges=(*(low + width * i for i in range(bins)), high), counts=tuple(counts))


def timeline_points(
    x: Iterable[float], values: Iterable[float], *, points: int = REPORT_TIMELINE_POINTS
) -> Points:
    """The (time, value) pairs with both finite, in time order; past ``points`` of them, the
    highest of each of ``points`` equal spans of time (the peak is what a limit is about)."""
    pairs = sorted(
        (float(t), float(v))
        for t, v in zip(x, values, strict=True)
        if math.isfinite(t) and math.isfinite(v)
    )
    if len(pairs) > points:
        start, span = pairs[0][0], (pairs[-1][0] - pairs[0][0]) / points
        highest: dict[int, tuple[float, float]] = {}
        for t, v in pairs:
            bucket = min(points - 1, int((t - start) / span)) if span else 0
            if bucket not in highest or v > highest[bucket][1]:
                highest[bucket] = (t, v)
        pairs = [highest[bucket] for bucket in sorted(highest)]
    return Points(x=tuple(t for t, _ in pairs), y=tuple(v for _, v in pairs))
