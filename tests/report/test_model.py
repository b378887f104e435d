"""A report's values refuse what they could not draw, saying what to give instead."""

from __future__ import annotations

import pytest

from guardedllm.report import Chart, Report, Section, Series, Table


def test_a_timeline_series_needs_one_time_for_each_value() -> None:
    with pytest.raises(ValueError, match="give the Unix time of each value"):
        Chart(kind="timeline", title="rpm", x_label="time", series=(Series(name="a", values=[1]),))
    with pytest.raises(ValueError, match="2 values but 1 x values"):
        Series(name="a", values=[1, 2], x=[0])


def test_only_a_timeline_takes_x() -> None:
    with pytest.raises(ValueError, match="only a timeline uses"):
        Chart(kind="cdf", title="t", x_label="s", series=(Series(name="a", values=[1], x=[0]),))


def test_a_chart_needs_a_known_kind_a_series_and_a_finite_limit() -> None:
    one = (Series(name="a", values=[1.0]),)
    with pytest.raises(ValueError, match="'kind' must be in"):
        Chart(kind="pie", title="t", x_label="s", series=one)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one series"):
        Chart(kind="cdf", title="t", x_label="s", series=())
    with pytest.raises(ValueError, match="finite number"):
        Chart(kind="cdf", title="t", x_label="s", series=one, limit=float("nan"))


def test_a_table_row_has_one_cell_for_each_column() -> None:
    with pytest.raises(ValueError, match="row 2 of table 'arms' has 1 cells for 2 columns"):
        Table(title="arms", columns=("arm", "cost"), rows=(("a", "1"), ("b",)))


def test_lists_are_taken_for_tuples() -> None:
    chart = Chart(kind="cdf", title="t", x_label="s", series=[Series(name="a", values=[1.0])])
    section = Section(title="s", notes=["n"], tables=[], charts=[chart])
    report = Report(title="r", sections=[section])
    assert report.sections[0].charts[0].series == (Series(name="a", values=[1.0]),)
    assert section.notes == ("n",)
