"""``guardedllm simulate CONFIG --traffic FILE... --baseline A --candidate B``: what a traffic
log would cost and weigh on two deployments, side by side, without sending anything."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence

from guardedllm.cli._report import counted, gate_lines, print_skips, print_table, progress
from guardedllm.release import (
    DeploymentResult,
    Gate,
    SimulationResult,
    replay,
    simulation_document,
    simulation_gates,
)
from guardedllm.report import Table

__all__ = ["run_simulate"]


def run_simulate(
    path: str,
    *,
    traffic: Sequence[str],
    baseline: str,
    candidate: str,
    env: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    max_cost_increase: float | None = None,
    max_p99_tokens_increase: float | None = None,
    min_headroom: float | None = None,
) -> int:
    """0 when every gate passes, 1 when one fails; bad input raises (the caller exits 2)."""
    with progress(_sizes(traffic), "replaying") as advance:
        result = replay(
            path,
            env=env,
            baseline=baseline,
            candidate=candidate,
            traffic=traffic,
            on_progress=advance,
        )
    gates = simulation_gates(
        result,
        max_cost_increase=max_cost_increase,
        max_p99_tokens_increase=max_p99_tokens_increase,
        min_headroom=min_headroom,
    )
    tables = _tables(result)
    _print(result, gates, tables, files=len(traffic))
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as file:
            json.dump(simulation_document(result, gates), file, indent=2)
            file.write("\n")
    if html_path is not None:
        from guardedllm.cli._pages import simulation_page
        from guardedllm.report import write_html

        write_html(simulation_page(result, gates, tables), html_path)
    return 0 if all(gate.passed for gate in gates) else 1


def _sizes(paths: Sequence[str]) -> int:
    """The bytes to read, for the progress bar (0 for a path that cannot be read: replay says
    why)."""
    total = 0
    for name in paths:
        with contextlib.suppress(OSError):
            total += os.stat(name).st_size
    return total


def _when(moment: float | None) -> str:
    return "?" if moment is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(moment))


def _tokens(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def _usd(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"${value:,.2f}" if value >= 1 else f"${value:.6f}"


def _delta(base: float | None, cand: float | None, shown: Callable[[float], str]) -> list[str]:
    if base is None or cand is None or math.isnan(base) or math.isnan(cand):
        return ["-", "-"]
    change = cand - base
    pct = f"{change / base * 100:+.1f} %" if base else "-"
    return [("+" if change >= 0 else "-") + shown(abs(change)), pct]


def _rate(peak: int | None, limit: int | None, headroom: float | None) -> str:
    if peak is None:
        return "- (no timestamps)"
    if limit is None:
        return f"{peak:,} (no limit)"
    return f"{peak:,} / {limit:,} ({headroom:.0f} % headroom)"


def _print(
    result: SimulationResult, gates: Sequence[Gate], tables: Sequence[Table], *, files: int
) -> None:
    span = (
        f", {_when(result.first_time)} to {_when(result.last_time)} UTC"
        if result.first_time is not None
        else ", no timestamps"
    )
    print(
        f"{counted(result.requests, 'request')} from {counted(files, 'file')} "
        f"({counted(result.skipped, 'line')} skipped){span}\n"
    )
    for table in tables:
        print_table(table.title, table.columns, table.rows)
    for line in gate_lines(gates):
        print(line)
    if gates:
        print()
    print_skips(result.skipped, result.skip_reasons)


def _tables(result: SimulationResult) -> list[Table]:
    """The deployments side by side, as the terminal and the HTML page show them."""
    base = result.deployments[result.baseline]
    cand = result.deployments[result.candidate]
    rows: list[list[str]] = []

    for group, label, fields, shown in (
        ("input_tokens", "input tokens", ("p50", "p90", "p99", "max", "mean"), _tokens),
        ("cost_usd", "expected cost", ("p50", "p99", "mean", "total"), _usd),
        ("worst_cost_usd", "worst-case cost", ("p50", "p99", "mean", "total"), _usd),
    ):
        for field in fields:
            b = getattr(getattr(base, group), field)
            c = getattr(getattr(cand, group), field)
            rows.append([f"{label} {field}", shown(b), shown(c), *_delta(b, c, shown)])
    for label, per in (
        ("projected cost per day", "usd_per_day"),
        ("projected cost per month", "usd_per_month"),
    ):
        b, c = getattr(base, per), getattr(cand, per)
        rows.append([label, _usd(b), _usd(c), *_delta(b, c, _usd)])
    for label, count in (
        ("over the context window", "over_context"),
        ("max_tokens over max output", "over_max_output"),
        ("over the route's cost cap", "over_cost_cap"),
        ("inexact counts", "inexact"),
    ):
        b, c = getattr(base, count), getattr(cand, count)
        rows.append([label, f"{b:,}", f"{c:,}", f"{c - b:+,}", ""])
    rows.append(
        [
            "peak minute rpm",
            _rate(base.peak_rpm, base.rpm_limit, base.rpm_headroom_pct),
            _rate(cand.peak_rpm, cand.rpm_limit, cand.rpm_headroom_pct),
            "",
            "",
        ]
    )
    rows.append(
        [
            "peak minute tpm",
            _rate(base.peak_tpm, base.tpm_limit, base.tpm_headroom_pct),
            _rate(cand.peak_tpm, cand.tpm_limit, cand.tpm_headroom_pct),
            "",
            "",
        ]
    )
    rows.append(["tokenizer", _tokenizer(base), _tokenizer(cand), "", ""])
    return [
        Table(
            title="Simulated on each deployment",
            columns=("", f"baseline {base.name}", f"candidate {cand.name}", "delta", "delta %"),
            rows=tuple(tuple(row) for row in rows),
        )
    ]


def _tokenizer(result: DeploymentResult) -> str:
    if result.exact_tokenizer:
        return f"{result.tokenizer} (exact)"
    learned = (
        f"calibration {result.calibration:.3f} from {result.calibration_samples:,} calls"
        if result.calibration_samples and result.calibration != 1.0
        else "uncalibrated"
    )
    return f"{result.tokenizer} stand-in, {learned}"
