"""The report in a real browser (headless Chromium): it renders, every chart is drawn with its
series, axis titles and limit, the page asks for nothing but itself and logs no error, and a
name that is markup shows as text.

The harness itself is checked first, on pages that do what ours must not (fetch, run a script),
so that an empty list of requests or errors means something."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from browser import HeadlessChromium
from guardedllm.report import Report, render_html, write_html

HOSTILE = "<script>alert(1)</script>"

# For each chart: its kind, how many series groups were drawn with a visible extent, whether
# the limit line is there, and the text of the SVG (tick labels, axis titles, legend).
CHARTS_JS = """
() => [...document.querySelectorAll("figure.chart")].map((figure, index) => {
  const svg = figure.querySelector("svg");
  const box = svg.getBoundingClientRect();
  const drawn = [...svg.querySelectorAll(`g[id^="chart-${index + 1}-series-"]`)]
    .filter((group) => { const b = group.getBBox(); return b.width > 0 && b.height > 0; });
  return {
    kind: figure.dataset.kind,
    caption: figure.querySelector("figcaption").textContent,
    width: box.width,
    height: box.height,
    series: drawn.length,
    limit: svg.querySelector(`g[id="chart-${index + 1}-limit"]`) !== null,
    text: [...svg.querySelectorAll("text")].map((t) => t.textContent),
  };
})
"""


def test_the_harness_sees_every_request_script_and_error_of_a_page(
    chromium: HeadlessChromium, tmp_path: Path
) -> None:
    page = tmp_path / "leaky.html"
    page.write_text(
        "<!DOCTYPE html><html><head>"
        '<link rel="stylesheet" href="https://cdn.example.invalid/style.css">'
        "</head><body>"
        '<img src="http://images.example.invalid/a.png">'
        "<script>alert('ran'); fetch('/api'); undefinedFunction();</script>"
        "</body></html>",
        encoding="utf-8",
    )
    with chromium.open(page) as loaded:
        assert loaded.requests[0] == page.as_uri()
        assert "https://cdn.example.invalid/style.css" in loaded.requests
        assert "http://images.example.invalid/a.png" in loaded.requests
        assert "file:///api" in loaded.requests
        assert set(loaded.refused) == set(loaded.requests[1:])  # no policy stopped them
        assert loaded.dialogs == ["alert: ran"]
        assert any("undefinedFunction" in error for error in loaded.console_errors)


def test_every_chart_renders_and_the_page_fetches_nothing(
    chromium: HeadlessChromium, make_report: Callable[..., Report], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    write_html(make_report(), page)
    with chromium.open(page) as loaded:
        assert loaded.requests == [page.as_uri()]
        assert loaded.refused == []
        assert loaded.console_errors == []
        charts = loaded.page.evaluate(CHARTS_JS)
        assert [c["kind"] for c in charts] == ["cdf", "histogram", "timeline", "cdf"]
        assert [c["series"] for c in charts] == [2, 2, 1, 2]
        assert [c["limit"] for c in charts] == [True, False, True, False]
        for chart in charts:
            assert chart["width"] > 600, chart["caption"]  # the page's column, not a stub
            assert chart["height"] > 200, chart["caption"]
        texts = [set(c["text"]) for c in charts]
        assert {"input tokens", "share of samples at or below x", "max_tokens"} <= texts[0]
        assert {"gpt-4o-mini", "claude-haiku"} <= texts[0]
        assert {"input tokens", "requests"} <= texts[1]
        assert {"time (UTC)", "requests per minute", "rpm 500", "claude-haiku"} <= texts[2]
        assert {"seconds", "gpt-4o-mini", "claude-haiku"} <= texts[3]
        assert loaded.page.locator("table tbody tr").count() == 2
        assert loaded.page.locator("h1").inner_text().startswith("Release check")
        assert loaded.page.locator("nav li").count() == 3


def test_the_policy_stops_what_got_into_the_page_from_loading(
    chromium: HeadlessChromium, make_report: Callable[..., Report], tmp_path: Path
) -> None:
    # Were the escaping ever to fail, the page's Content-Security-Policy still runs no script
    # and fetches nothing: here markup is put into the page past the escaping.
    injected = '<img src="https://example.invalid/a.png"><script>alert(1)</script>'
    page = tmp_path / "report.html"
    page.write_text(
        render_html(make_report()).replace("<main>", f"<main>{injected}"), encoding="utf-8"
    )
    with chromium.open(page) as loaded:
        # The browser saw the image asked for, and the policy stopped it before the network.
        assert loaded.requests == [page.as_uri(), "https://example.invalid/a.png"]
        assert loaded.refused == []
        assert loaded.dialogs == []
        blocked = [e for e in loaded.console_errors if "Content Security Policy" in e]
        assert len(blocked) == 2, loaded.console_errors  # the image and the script


def test_a_name_that_is_markup_shows_as_text(
    chromium: HeadlessChromium, make_report: Callable[..., Report], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    write_html(make_report(HOSTILE), page)
    with chromium.open(page) as loaded:
        assert loaded.dialogs == []
        assert loaded.console_errors == []
        assert loaded.page.evaluate("document.scripts.length") == 0
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in loaded.dom  # text, as the DOM holds it
        assert loaded.page.title() == f"Release check: {HOSTILE} against claude-haiku"
        assert loaded.page.locator("h1").inner_text() == loaded.page.title()
        assert loaded.page.locator("tbody tr td").first.inner_text() == HOSTILE
        assert HOSTILE in loaded.page.locator(".notes li").inner_text()
        legends = loaded.page.evaluate(
            "[...document.querySelectorAll('svg text')].map((t) => t.textContent)"
        )
        assert legends.count(HOSTILE) == 3
