"""What a report holds: sections of notes, tables and charts, as plain values.

A chart holds its series' raw samples (100k a series is fine): what goes in the page is
computed from them into a bounded number of points (``_reduce.py``), so a report's size does not
grow with its samples. Building these values needs no chart library; only rendering does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs

from guardedllm.errors import ArgumentError

__all__ = ["Chart", "ChartKind", "Report", "Section", "Series", "Table"]

ChartKind = Literal["cdf", "histogram", "timeline"]
CHART_KINDS: tuple[ChartKind, ...] = ("cdf", "histogram", "timeline")


# Converters that take any iterable (a list is as good as a tuple to a caller) and keep the
# item type for type checkers, which ``converter=tuple`` loses.
def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _rows(rows: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(row) for row in rows)


def _series(values: Iterable[Series]) -> tuple[Series, ...]:
    return tuple(values)


def _tables(values: Iterable[Table]) -> tuple[Table, ...]:
    return tuple(values)


def _charts(values: Iterable[Chart]) -> tuple[Chart, ...]:
    return tuple(values)


def _sections(values: Iterable[Section]) -> tuple[Section, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class Series:
    """One line or bar set: a name (a deployment, an arm) and its values.

    For a ``"cdf"`` or ``"histogram"`` chart ``values`` are raw samples; for a ``"timeline"``,
    the y value at each moment of ``x`` (Unix seconds, one per value). Values that are no finite
    number (NaN, infinities) have no place on an axis and are left out of the drawing.
    """

    name: str
    values: Sequence[float]
    x: Sequence[float] | None = attrs.field(default=None)

    @x.validator
    def _check_x(self, _attribute: Any, x: Sequence[float] | None) -> None:
        if x is not None and len(x) != len(self.values):
            raise ArgumentError(
                f"series {self.name!r} has {len(self.values)} values but {len(x)} x values; "
                "give one Unix time in x for each value"
            )


def _chart_series(_chart: Any, _attribute: Any, series: tuple[Series, ...]) -> None:
    if not series:
        raise ArgumentError("a chart needs at least one series; leave out a chart with no data")


@attrs.frozen(kw_only=True)
class Chart:
    """One chart of ``kind``:

    - ``"cdf"``: each series' share of samples at or below each value (latency, tokens, cost);
    - ``"histogram"``: each series' samples counted in bins shared by all series;
    - ``"timeline"``: each series' values over time (a per-minute rate).

    ``limit`` draws a dashed line at that value of the measured quantity: across the chart on a
    timeline (the deployment's rpm), upright on a CDF or histogram, whose x axis is the
    quantity (a context window, a cost cap).
    """

    kind: ChartKind = attrs.field(validator=attrs.validators.in_(CHART_KINDS))
    title: str
    x_label: str
    y_label: str = ""
    series: tuple[Series, ...] = attrs.field(converter=_series, validator=_chart_series)
    limit: float | None = attrs.field(default=None)
    limit_label: str = ""

    @series.validator
    def _check_x_matches_kind(self, _attribute: Any, series: tuple[Series, ...]) -> None:
        for one in series:
            if self.kind == "timeline" and one.x is None:
                raise ArgumentError(
                    f"series {one.name!r} of timeline {self.title!r} has no x: give the Unix "
                    "time of each value"
                )
            if self.kind != "timeline" and one.x is not None:
                raise ArgumentError(
                    f"series {one.name!r} of {self.kind} {self.title!r} has x values, which "
                    "only a timeline uses; leave x out"
                )

    @limit.validator
    def _check_limit(self, _attribute: Any, limit: float | None) -> None:
        if limit is not None and not math.isfinite(limit):
            raise ArgumentError(f"the limit of chart {self.title!r} must be a finite number")


@attrs.frozen(kw_only=True)
class Table:
    """A table of text cells; each row has one cell for each column."""

    title: str
    columns: tuple[str, ...] = attrs.field(converter=_texts)
    rows: tuple[tuple[str, ...], ...] = attrs.field(converter=_rows)

    @rows.validator
    def _check_rows(self, _attribute: Any, rows: tuple[tuple[str, ...], ...]) -> None:
        for number, row in enumerate(rows, 1):
            if len(row) != len(self.columns):
                raise ArgumentError(
                    f"row {number} of table {self.title!r} has {len(row)} cells for "
                    f"{len(self.columns)} columns; give one cell for each column"
                )


@attrs.frozen(kw_only=True)
class Section:
    """A titled part of a report: notes (one line each, e.g. a gate's verdict), then tables,
    then charts."""

    title: str
    notes: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    tables: tuple[Table, ...] = attrs.field(default=(), converter=_tables)
    charts: tuple[Chart, ...] = attrs.field(default=(), converter=_charts)


@attrs.frozen(kw_only=True)
class Report:
    """A whole report: a title, an optional subtitle (what was compared, when), sections."""

    title: str
    subtitle: str = ""
    sections: tuple[Section, ...] = attrs.field(converter=_sections)
