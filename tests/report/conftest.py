"""A report with every kind of chart, a table and notes, for the report tests; and headless
Chromium (``browser.py``) for those that look at the page in a browser."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from browser import chromium  # noqa: F401  (a fixture)
from guardedllm.report import Chart, Report, Section, Series, Table

# 2024-06-01T00:00:00Z: a timeline's first minute.
START = 1_717_200_000.0


def lognormal(count: int, mu: float, sigma: float, seed: int) -> list[float]:
    chance = random.Random(seed)
    return [chance.lognormvariate(mu, sigma) for _ in range(count)]


def sample_report(name: str = "gpt-4o-mini", *, samples: int = 2_000) -> Report:
    """Two arms (``name`` the baseline) in a table, a CDF and a histogram of their tokens, a
    per-minute rate against its limit, and their latency CDFs: one of each chart kind."""
    baseline, candidate = name, "claude-haiku"
    tokens = (lognormal(samples, 6.0, 0.5, 1), lognormal(samples, 6.1, 0.6, 2))
    latency = (lognormal(samples, -0.5, 0.4, 3), lognormal(samples, -0.4, 0.5, 4))
    minutes = [START + 60 * i for i in range(120)]
    chance = random.Random(5)
    rate = [float(chance.randint(300, 520)) for _ in minutes]
    return Report(
        title=f"Release check: {baseline} against {candidate}",
        subtitle=f"{samples} recorded requests replayed through each arm",
        sections=(
            Section(
                title="Verdict",
                notes=(f"PASS {baseline}: cost p95 +3.1 % (limit +10 %)",),
                tables=(
                    Table(
                        title="Per arm",
                        columns=("arm", "requests", "cost p50"),
                        rows=(
                            (baseline, f"{samples:,}", "$0.0012"),
                            (candidate, "2,000", "$0.0014"),
                        ),
                    ),
                ),
            ),
            Section(
                title="Tokens",
                charts=(
                    Chart(
                        kind="cdf",
                        title="Input tokens per request",
                        x_label="input tokens",
                        series=(
                            Series(name=baseline, values=tokens[0]),
                            Series(name=candidate, values=tokens[1]),
                        ),
                        limit=2_500,
                        limit_label="max_tokens",
                    ),
                    Chart(
                        kind="histogram",
                        title="Input tokens, counted",
                        x_label="input tokens",
                        y_label="requests",
                        series=(
                            Series(name=baseline, values=tokens[0]),
                            Series(name=candidate, values=tokens[1]),
                        ),
                    ),
                ),
            ),
            Section(
                title="Rate and latency",
                charts=(
                    Chart(
                        kind="timeline",
                        title="Requests per minute",
                        x_label="time (UTC)",
                        y_label="requests per minute",
                        series=(Series(name=candidate, values=rate, x=minutes),),
                        limit=500,
                        limit_label="rpm 500",
                    ),
                    Chart(
                        kind="cdf",
                        title="Latency",
                        x_label="seconds",
                        series=(
                            Series(name=baseline, values=latency[0]),
                            Series(name=candidate, values=latency[1]),
                        ),
                    ),
                ),
            ),
        ),
    )


@pytest.fixture
def make_report() -> Callable[..., Report]:
    """``sample_report``: ``make_report(name, samples=...)``."""
    return sample_report
