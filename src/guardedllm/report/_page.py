"""A report as one self-contained HTML page.

Rules: the page loads nothing (its Content-Security-Policy forbids every script, fetch, font,
frame and form: styles are its own, inline; images are inline SVG); every text that comes from
the report (titles, names, cells, notes) is escaped, so a deployment named ``<script>`` reads as
that text; the same report renders to the same bytes (no clock, no random ids).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from html import escape

from guardedllm._version import __version__
from guardedllm.errors import MissingExtraError
from guardedllm.report._model import Chart, Report, Section, Table

__all__ = ["CONTENT_SECURITY_POLICY", "render_html", "write_html"]

# Nothing from the network or from script: the charts are SVG drawn before the page is written,
# and only inline styles (matplotlib's SVG styles its shapes in attributes) are allowed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

# A cell that is one number, perhaps with a sign, currency, unit or percent ("$0.0012",
# "-3.5 %", "1,250 ms", "x1.08") is set right-aligned, so a column of them lines up.
_NUMBER = re.compile(
    r"^[-+\u00b1~\u2248<>\u00d7x]?\s?\$?[-+]?\d[\d,.]*(?:e[-+]?\d+)?\s?[%a-zµ/]{0,6}$", re.I
)

_CSS = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6473; --rule: #d9dee6;
  --band: #f5f7fa; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 24px 48px; }
header { border-bottom: 2px solid var(--ink); margin-bottom: 20px; padding-bottom: 10px; }
h1 { font-size: 26px; margin: 0 0 4px; overflow-wrap: anywhere; }
.subtitle { color: var(--muted); margin: 0; overflow-wrap: anywhere; }
nav ol { margin: 0 0 8px; padding-left: 22px; }
nav a, nav a:visited { color: var(--accent); text-decoration: none; }
section { margin-top: 34px; }
h2 { font-size: 20px; border-bottom: 1px solid var(--rule); padding-bottom: 4px;
  overflow-wrap: anywhere; }
.notes { list-style: none; padding: 0; margin: 0 0 16px; }
.notes li { padding: 6px 10px; margin: 4px 0; background: var(--band);
  border-left: 3px solid var(--accent); overflow-wrap: anywhere; }
.table-wrap { overflow-x: auto; margin: 12px 0 20px; }
table { border-collapse: collapse; font-size: 14px; min-width: 50%; }
caption { text-align: left; font-weight: 600; padding: 0 0 6px; }
th, td { padding: 5px 12px; border-bottom: 1px solid var(--rule); text-align: left;
  vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--band); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure.chart { margin: 16px 0 26px; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; overflow-wrap: anywhere; }
figure.chart svg { display: block; width: 100%; height: auto; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px;
  border-top: 1px solid var(--rule); padding-top: 8px; }
@media print { main { max-width: none; } section { break-inside: avoid-page; } }
"""


def render_html(report: Report) -> str:
    """``report`` as one self-contained HTML page (see the module's rules)."""
    chart_svg = _chart_renderer()
    charts = iter(range(1, 1 + sum(len(s.charts) for s in report.sections)))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="guardedllm {_text(__version__)}">',
        f"<title>{_text(report.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        f"<h1>{_text(report.title)}</h1>",
    ]
    if report.subtitle:
        parts.append(f'<p class="subtitle">{_text(report.subtitle)}</p>')
    parts.append("</header>")
    if len(report.sections) > 1:
        parts += ['<nav aria-label="Contents"><ol>']
        parts += [
            f'<li><a href="#section-{n}">{_text(s.title)}</a></li>'
            for n, s in enumerate(report.sections, 1)
        ]
        parts.append("</ol></nav>")
    for number, section in enumerate(report.sections, 1):
        parts += _section(section, number, charts, chart_svg)
    parts += [
        "<footer>Written by guardedllm "
        f"{_text(__version__)}: one self-contained file that loads nothing from the network."
        "</footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def write_html(report: Report, path: str | os.PathLike[str]) -> None:
    """Write ``render_html(report)`` to ``path`` (UTF-8), replacing what was there."""
    page = render_html(report)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write(page)


def _chart_renderer() -> Callable[[Chart, int], str]:
    # matplotlib is the report extra's; importing it costs ~0.4 s, paid by rendering only.
    try:
        from guardedllm.report._charts import chart_svg
    except ImportError as error:
        if error.name is None or error.name.partition(".")[0] != "matplotlib":
            raise
        raise MissingExtraError(
            "guardedllm.report.render_html (its charts)", extra="report", name="matplotlib"
        ) from error
    return chart_svg


def _section(
    section: Section,
    number: int,
    charts: Iterator[int],
    chart_svg: Callable[[Chart, int], str],
) -> list[str]:
    parts = [f'<section id="section-{number}">', f"<h2>{_text(section.title)}</h2>"]
    if section.notes:
        parts.append('<ul class="notes">')
        parts += [f"<li>{_text(note)}</li>" for note in section.notes]
        parts.append("</ul>")
    parts += [_table(table) for table in section.tables]
    for chart in section.charts:
        chart_number = next(charts)
        parts += [
            f'<figure class="chart" id="chart-{chart_number}-figure" '
            f'data-kind="{chart.kind}" aria-label="{_text(chart.title)}">',
            f"<figcaption>{_text(chart.title)}</figcaption>",
            chart_svg(chart, chart_number),
            "</figure>",
        ]
    parts.append("</section>")
    return parts


def _table(table: Table) -> str:
    head = "".join(f'<th scope="col">{_text(column)}</th>' for column in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in table.rows)
    return (
        f'<div class="table-wrap"><table>\n<caption>{_text(table.title)}</caption>\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>"
    )


def _cell(cell: str) -> str:
    kind = ' class="num"' if _NUMBER.match(cell.strip()) else ""
    return f"<td{kind}>{_text(cell)}</td>"


def _text(text: str) -> str:
    """Text from the report, escaped for an element's content or a quoted attribute."""
    return escape(text, quote=True)
