"""``simulate --html`` and ``compare --html`` write one self-contained page that headless
Chromium renders: the terminal's tables and gate verdicts, and the charts (distributions per
deployment or arm, per-minute rates against the limit), with nothing fetched."""

from __future__ import annotations

from pathlib import Path

from browser import HeadlessChromium
from guardedllm.cli import main

from .test_cli import MINUTE, records
from .traffic import body, write_config, write_lines

FIGURES_JS = """
() => ({
  headings: [...document.querySelectorAll("h2")].map((h) => h.textContent),
  notes: [...document.querySelectorAll("li, p")].map((n) => n.textContent),
  cells: [...document.querySelectorAll("td")].map((c) => c.textContent),
  charts: [...document.querySelectorAll("figure.chart")].map((figure, index) => ({
    kind: figure.dataset.kind,
    caption: figure.querySelector("figcaption").textContent,
    series: figure.querySelectorAll(`g[id^="chart-${index + 1}-series-"]`).length,
    limit: figure.querySelector(`g[id="chart-${index + 1}-limit"]`) !== null,
  })),
})
"""


def test_simulate_writes_a_page_with_its_tables_gates_and_charts(
    chromium: HeadlessChromium,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    log = write_lines(
        tmp_path / "traffic.jsonl",
        [body(timestamp=MINUTE + 20 * i, max_tokens=100) for i in range(12)],
    )
    page = tmp_path / "simulate.html"
    argv = ["simulate", config, "--traffic", log, "--baseline", "mini", "--candidate", "haiku"]
    assert main([*argv, "--min-headroom", "20", "--html", str(page)]) == 0
    with chromium.open(page) as loaded:
        assert loaded.requests == [page.as_uri()]
        assert loaded.console_errors == []
        figures = loaded.page.evaluate(FIGURES_JS)
    assert figures["headings"][:3] == ["Summary", "Input tokens per request", "Cost per request"]
    assert any(note.startswith("PASS  min_headroom") for note in figures["notes"])
    assert "input tokens p99" in figures["cells"]
    charts = {chart["caption"]: chart for chart in figures["charts"]}
    assert charts["Input tokens"]["series"] == 2  # baseline against candidate
    assert charts["Requests per minute"]["kind"] == "timeline"
    assert charts["Requests per minute"]["limit"] is True  # the candidate's rpm limit


def test_compare_writes_a_page_with_latency_per_arm(
    chromium: HeadlessChromium,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    log = records(tmp_path, "calls.jsonl", candidate_latency=1.5, errors=0.02)
    page = tmp_path / "compare.html"
    argv = ["compare", config, "--traffic", log, "--baseline", "mini", "--candidate", "haiku"]
    assert main([*argv, "--max-p99-latency-increase", "10", "--html", str(page)]) == 1
    with chromium.open(page) as loaded:
        assert loaded.requests == [page.as_uri()]
        figures = loaded.page.evaluate(FIGURES_JS)
    assert any(note.startswith("FAIL  max_p99_latency_increase") for note in figures["notes"])
    assert "worse" in figures["cells"]
    charts = {chart["caption"]: chart for chart in figures["charts"]}
    assert charts["Latency"]["series"] == 2
    assert charts["Cost per call"]["kind"] == "cdf"
