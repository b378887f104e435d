"""``guardedllm compare CONFIG --traffic FILE... --baseline ARM --candidate ARM``: recorded
outcomes of two arms side by side, with intervals that say when a difference is noise."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from guardedllm.cli._report import counted, gate_lines, print_skips, print_table, progress
from guardedllm.registry import Registry
from guardedllm.release import (
    ArmResult,
    Comparison,
    ComparisonResult,
    Gate,
    TrafficReader,
    comparison_document,
    comparison_gates,
    load_release,
    release_document,
)
from guardedllm.report import Table

__all__ = ["run_compare"]


def run_compare(
    path: str,
    *,
    traffic: Sequence[str],
    baseline: str | None,
    candidate: str,
    against: str | None = None,
    env: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    save_path: str | None = None,
    max_p99_latency_increase: float | None = None,
    max_cost_increase: float | None = None,
    max_error_rate_increase: float | None = None,
) -> int:
    """0 when every gate passes, 1 when one fails; bad input raises (the caller exits 2).
    Exactly one of ``baseline`` and ``against`` (a saved release record) is given."""
    Registry.from_toml(path, env=env)  # the config must be valid for the record to name it
    saved = load_release(against) if against is not None else None
    comparison = Comparison(baseline, candidate)
    reader = TrafficReader(traffic)
    with progress(reader.total_bytes, "reading") as advance:
        reader.on_progress = advance
        for record in reader.records():
            comparison.add(record)
    result = comparison.finish(reader.skips, against=saved)
    gates = comparison_gates(
        result,
        max_p99_latency_increase=max_p99_latency_increase,
        max_cost_increase=max_cost_increase,
        max_error_rate_increase=max_error_rate_increase,
    )
    tables = _tables(result)
    _print(result, gates, tables)
    if json_path is not None:
        _write(json_path, comparison_document(result, gates))
    if html_path is not None:
        from guardedllm.cli._pages import comparison_page
        from guardedllm.report import write_html

        write_html(comparison_page(result, gates, tables), html_path)
    if save_path is not None:
        _write(save_path, release_document(result, gates, config_path=path, env=env))
    return 0 if all(gate.passed for gate in gates) else 1


def _write(path: str, document: object) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)
        file.write("\n")


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f} s"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.2f} %"


def _arm_rows(base: ArmResult, cand: ArmResult) -> list[list[str]]:
    rows = [["calls", f"{base.calls:,}", f"{cand.calls:,}"]]
    for label, count in (
        ("error rate", "errors"),
        ("fallback rate", "fallbacks"),
        ("escalation rate", "escalations"),
    ):
        rows.append([label, _pct(base.rate(count)), _pct(cand.rate(count))])
    for name, label in (("latency_s", "latency"), ("first_chunk_s", "time to first chunk")):
        if not (base.distributions[name].count or cand.distributions[name].count):
            continue  # no streams in either arm: nothing to show
        for field in ("p50", "p95", "p99"):
            rows.append(
                [
                    f"{label} {field}",
                    _seconds(getattr(base.distributions[name], field)),
                    _seconds(getattr(cand.distributions[name], field)),
                ]
            )
    for name, label in (("input_tokens", "input tokens"), ("output_tokens", "output tokens")):
        rows.append(
            [
                f"{label} mean",
                _number(base.distributions[name].mean),
                _number(cand.distributions[name].mean),
            ]
        )
    for field in ("mean", "total"):
        rows.append(
            [
                f"cost per call {field}" if field == "mean" else "cost total",
                _usd(getattr(base.distributions["cost_usd"], field)),
                _usd(getattr(cand.distributions["cost_usd"], field)),
            ]
        )
    rows.append(["finish reasons", _reasons(base), _reasons(cand)])
    if cand.agreement is not None:
        pairs, agreeing = cand.agreement
        rows.append(["shadow agreement", "", f"{agreeing / pairs * 100:.1f} % of {pairs:,}"])
    return rows


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _usd(value: float) -> str:
    return "-" if math.isnan(value) else f"${value:.6f}"


def _reasons(arm: ArmResult) -> str:
    total = sum(arm.finish_reasons.values())
    if not total:
        return "-"
    return ", ".join(f"{r} {n / total * 100:.0f} %" for r, n in arm.finish_reasons.items())


def _shown(metric: str, value: float) -> str:
    if math.isnan(value):
        return "-"
    if metric.endswith("_rate"):
        return f"{value * 100:+.2f} pp"
    if metric.startswith("cost"):
        return f"{'+' if value >= 0 else '-'}${abs(value):.6f}"
    return f"{value:+.3f} s"


def _tables(result: ComparisonResult) -> list[Table]:
    """The arms side by side, and each difference with its interval and verdict, as the
    terminal and the HTML page show them."""
    base, cand = result.baseline, result.candidate
    rows = [
        (
            found.metric,
            _shown(found.metric, found.difference.value),
            f"{_shown(found.metric, found.difference.low)} .. "
            f"{_shown(found.metric, found.difference.high)}",
            found.verdict,
        )
        for found in result.metrics
        if not math.isnan(found.difference.value)  # no data on a side (no streams): left out
    ]
    return [
        Table(
            title="Arms",
            columns=("", f"baseline {base.name}", f"candidate {cand.name}"),
            rows=tuple(tuple(row) for row in _arm_rows(base, cand)),
        ),
        Table(
            title="Candidate - baseline (95 % interval)",
            columns=("metric", "difference", "interval", "verdict"),
            rows=tuple(rows),
        ),
    ]


def _print(result: ComparisonResult, gates: Sequence[Gate], tables: Sequence[Table]) -> None:
    base, cand = result.baseline, result.candidate
    calls = counted(base.calls + cand.calls, "call")
    print(f"{calls} compared ({counted(result.skipped, 'line')} skipped)\n")
    for table in tables:
        print_table(table.title, table.columns, table.rows)
    for line in gate_lines(gates):
        print(line)
    print_skips(result.skipped, result.skip_reasons)
