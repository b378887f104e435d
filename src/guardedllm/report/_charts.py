"""A chart as inline SVG, drawn by matplotlib (the ``report`` extra).

SVG, not a script that draws in the browser: the page runs no code, so its Content-Security-
Policy forbids every script and fetch, and it reads the same offline, printed or years later.
Text stays text (``svg.fonttype = none``): axis titles and legends are strings in the page,
which matplotlib escapes as XML, and a name holding ``$`` is not read as TeX. Each series is a
group with the id ``chart-N-series-M`` (the limit line ``chart-N-limit``), so what was drawn can
be found in the page. Clip paths and markers are named from a hash salted by the chart's number,
so no two charts of a page share one (the group names matplotlib gives, such as ``axes_1``, do
repeat: nothing refers to them), and the same report renders to the same bytes. matplotlib's
settings are global while a chart is drawn (``rc_context``): draw from one thread at a time.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from guardedllm.report._model import Chart, Series
from guardedllm.report._reduce import cdf_points, histogram, timeline_points

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = ["chart_svg"]

# Wide and low, like the page's column; SVG scales to the width the page gives it.
FIGURE_SIZE_IN = (8.0, 3.4)

_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "text.usetex": False,
    "font.size": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "timezone": "UTC",
}

# Default y axis titles, for a chart that gives none.
_Y_LABELS = {
    "cdf": "share of samples at or below x",
    "histogram": "samples",
    "timeline": "",
}


def chart_svg(chart: Chart, number: int) -> str:
    """``chart`` as an ``<svg>`` element (no XML prolog), the page's chart number ``number``."""
    salt = f"chart-{number}"
    with mpl.rc_context({**_STYLE, "svg.hashsalt": salt}):
        figure = Figure(figsize=FIGURE_SIZE_IN, layout="constrained")
        axes = figure.add_subplot()
        handles = _DRAW[chart.kind](axes, chart, salt)
        labels = [_label(series) for series in chart.series]
        if chart.limit is not None:
            draw_limit = axes.axhline if chart.kind == "timeline" else axes.axvline
            handles.append(
                draw_limit(chart.limit, linestyle="--", color="#b22222", gid=f"{salt}-limit")
            )
            labels.append(chart.limit_label or "limit")
        axes.set_xlabel(chart.x_label)
        axes.set_ylabel(chart.y_label or _Y_LABELS[chart.kind])
        # Labels given outright: matplotlib leaves out of a legend it builds itself (and before
        # 3.10 of any legend) a label starting with "_", which a deployment's name may.
        axes.legend(handles=handles, labels=labels, loc="best")
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _label(series: Series) -> str:
    drawable = any(math.isfinite(value) for value in series.values)
    return series.name if drawable else f"{series.name} (no samples)"


def _draw_cdf(axes: Axes, chart: Chart, salt: str) -> list[Artist]:
    drawn: list[Artist] = []
    for number, series in enumerate(chart.series, 1):
        points = cdf_points(series.values)
        (line,) = axes.plot(
            points.x, points.y, drawstyle="steps-post", gid=f"{salt}-series-{number}"
        )
        drawn.append(line)
    axes.set_ylim(0.0, 1.02)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    return drawn


def _draw_histogram(axes: Axes, chart: Chart, salt: str) -> list[Artist]:
    counted = histogram([series.values for series in chart.series])
    drawn: list[Artist] = []
    for number, counts in enumerate(counted.counts, 1):
        drawn.append(
            axes.stairs(counts, counted.edges, linewidth=1.6, gid=f"{salt}-series-{number}")
        )
    axes.set_ylim(bottom=0)
    return drawn


def _draw_timeline(axes: Axes, chart: Chart, salt: str) -> list[Artist]:
    drawn: list[Artist] = []
    for number, series in enumerate(chart.series, 1):
        assert series.x is not None  # Chart checks that a timeline's series have x
        points = timeline_points(series.x, series.values)
        moments = [datetime.fromtimestamp(t, tz=timezone.utc) for t in points.x]
        # matplotlib.dates has no type stubs, hence the ignores on its calls.
        days = date2num(moments)  # type: ignore[no-untyped-call]
        (line,) = axes.plot(days, points.y, gid=f"{salt}-series-{number}")
        drawn.append(line)
    locator = AutoDateLocator(tz=timezone.utc)  # type: ignore[no-untyped-call]
    formatter = ConciseDateFormatter(locator, tz=timezone.utc)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(formatter)
    axes.set_ylim(bottom=0)
    return drawn


_DRAW: dict[str, Callable[[Axes, Chart, str], list[Artist]]] = {
    "cdf": _draw_cdf,
    "histogram": _draw_histogram,
    "timeline": _draw_timeline,
}
