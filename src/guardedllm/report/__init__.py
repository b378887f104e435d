"""Reports people look at: one self-contained HTML page of notes, tables and charts.

Build a ``Report`` of ``Section``\\ s, each with notes, ``Table``\\ s and ``Chart``\\ s of
``Series``, then ``render_html`` or ``write_html`` it. The values need nothing beyond
guardedllm; rendering draws the charts with matplotlib, from the optional extra
(``pip install 'guardedllm[report]'``), and raises ``MissingExtraError`` without it.
``import guardedllm`` never loads this package.
"""

from __future__ import annotations

from guardedllm.report._model import Chart, ChartKind, Report, Section, Series, Table
from guardedllm.report._page import render_html, write_html

__all__ = [
    "Chart",
    "ChartKind",
    "Report",
    "Section",
    "Series",
    "Table",
    "render_html",
    "write_html",
]
