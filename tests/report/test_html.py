"""The page as text: one file that names nothing outside itself, escapes what the report
says, stays small whatever the samples, and renders the same twice; without the extra, a
clear error."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from guardedllm.report import Chart, Report, Section, Series, render_html, write_html
from guardedllm.report._page import CONTENT_SECURITY_POLICY

HOSTILE = "<script>alert(1)</script>"


def test_the_page_carries_its_policy_and_refers_to_nothing_outside_itself(
    make_report: Callable[..., Report],
) -> None:
    page = render_html(make_report())
    policy = f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
    assert policy in page
    assert page.index(policy) < page.index("<title>")
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "<script" not in page.lower()
    assert re.findall(r"\bsrc=", page) == []
    assert {link[0] for link in re.findall(r'href="(.)', page)} == {"#"}
    assert page.count("<svg") == page.count('<figure class="chart"') == 4


def test_text_from_the_report_is_escaped_everywhere(make_report: Callable[..., Report]) -> None:
    page = render_html(make_report(HOSTILE))
    assert HOSTILE not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # The title (h1 and <title>), the table cell, the note, the legend of each chart but the
    # timeline (SVG text).
    assert page.count(escaped) == 2 + 1 + 1 + 3


def test_a_name_that_looks_like_tex_or_a_hidden_label_is_drawn_as_it_is() -> None:
    # matplotlib reads $...$ as TeX and leaves labels starting with "_" out of a legend.
    name = "_claude $x^2$ & co"
    chart = Chart(kind="cdf", title="t", x_label="s", series=(Series(name=name, values=[1.0]),))
    page = render_html(Report(title="r", sections=(Section(title="s", charts=(chart,)),)))
    assert ">_claude $x^2$ &amp; co</text>" in page


def test_a_chart_of_series_with_nothing_to_draw_still_renders_and_says_so() -> None:
    nothing = [float("nan"), float("inf")]
    charts = (
        Chart(kind="cdf", title="c", x_label="x", series=(Series(name="a", values=[]),)),
        Chart(kind="histogram", title="h", x_label="x", series=(Series(name="b", values=nothing),)),
        Chart(kind="timeline", title="t", x_label="x", series=(Series(name="c", values=[], x=[]),)),
    )
    page = render_html(Report(title="r", sections=(Section(title="s", charts=charts),)))
    legends = re.findall(r">(\w) \(no samples\)</text>", page)
    assert legends == ["a", "b", "c"]


def test_a_hundred_thousand_samples_a_series_make_a_small_page(
    make_report: Callable[..., Report],
) -> None:
    small = render_html(make_report(samples=2_000))
    large = render_html(make_report(samples=100_000))
    # Four charts, three of them of two series of 100k samples each: about 120 KB, as for 2k.
    assert len(large.encode()) < 200_000
    assert abs(len(large) - len(small)) < 0.1 * len(small)


def test_the_same_report_renders_the_same_bytes(
    make_report: Callable[..., Report], tmp_path: Path
) -> None:
    report = make_report()
    write_html(report, tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == render_html(report)
    assert render_html(report) == render_html(make_report())
    ids = re.findall(r'\bid="(chart-[^"]+|p[0-9a-f]{10}|m[0-9a-f]{10})"', render_html(report))
    assert len(ids) == len(set(ids)), "no two charts share a clip path, marker or own id"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_without_the_report_extra_rendering_says_what_to_install() -> None:
    # None in sys.modules makes `import matplotlib` fail as if it were not installed.
    done = _run(
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "from guardedllm.errors import GuardedLLMError\n"
        "from guardedllm.report import Report, Section, render_html\n"
        "report = Report(title='r', sections=(Section(title='s'),))\n"
        "try:\n"
        "    render_html(report)\n"
        "except ImportError as error:\n"
        "    assert isinstance(error, GuardedLLMError), type(error)\n"
        "    print(type(error).__name__, error.name, error.extra)\n"
        "    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    kind, message = done.stdout.splitlines()
    assert kind == "MissingExtraError matplotlib report"
    assert message == (
        "guardedllm.report.render_html (its charts) needs matplotlib, which is not installed: "
        "pip install 'guardedllm[report]'"
    )


def test_building_a_report_loads_no_chart_library() -> None:
    done = _run(
        "import sys\n"
        "from guardedllm.report import Chart, Report, Section, Series\n"
        "Chart(kind='cdf', title='t', x_label='x', series=(Series(name='a', values=[1.0]),))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('matplotlib', 'numpy'))))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
