"""The ``--html`` pages of ``simulate`` and ``compare``: the same tables and gate verdicts the
terminal shows, and the charts a terminal cannot (distributions baseline against candidate,
the per-minute rate against the limit, latency CDFs per arm). Built from the results the
commands already hold; drawn by ``guardedllm.report`` (the ``report`` extra)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from guardedllm.cli._report import gate_lines
from guardedllm.release import ComparisonResult, Gate, SimulationResult
from guardedllm.report import Chart, Report, Section, Series, Table

__all__ = ["comparison_page", "simulation_page"]


def _verdict(gates: Sequence[Gate]) -> tuple[str, ...]:
    if not gates:
        return ("No gates were given: the figures below are for reading, not for failing a build.",)
    return tuple(gate_lines(gates))


def _when(moment: float | None) -> str:
    return "?" if moment is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def simulation_page(
    result: SimulationResult, gates: Sequence[Gate], tables: Sequence[Table]
) -> Report:
    """The report of a simulation: the summary, then input tokens and cost per request, then the
    per-minute rates against the candidate's limits (when the log has timestamps)."""
    base = result.deployments[result.baseline]
    cand = result.deployments[result.candidate]
    pair = (base, cand)

    def series(values: str) -> tuple[Series, ...]:
        return tuple(
            Series(name=f"{role} {d.name}", values=d.values[values])
            for role, d in zip(("baseline", "candidate"), pair, strict=True)
        )

    sections = [
        Section(title="Summary", notes=_verdict(gates), tables=tuple(tables)),
        Section(
            title="Input tokens per request",
            notes=("Each deployment's own tokenizer (calibrated where it stands in).",),
            charts=(
                Chart(
                    kind="cdf",
                    title="Input tokens",
                    x_label="input tokens per request",
                    series=series("input_tokens"),
                ),
            ),
        ),
        Section(
            title="Cost per request",
            charts=(
                Chart(
                    kind="cdf",
                    title="Expected cost",
                    x_label="USD per request",
                    series=series("cost_usd"),
                ),
                Chart(
                    kind="histogram",
                    title="Worst-case cost (what budgets reserve)",
                    x_label="USD per request",
                    y_label="requests",
                    series=series("worst_cost_usd"),
                ),
            ),
        ),
    ]
    if cand.per_minute:
        minutes = sorted(cand.per_minute)
        sections.append(
            Section(
                title="Rate per minute",
                notes=(f"From {_when(result.first_time)} to {_when(result.last_time)}.",),
                charts=(
                    Chart(
                        kind="timeline",
                        title="Requests per minute",
                        x_label="time (UTC)",
                        y_label="requests",
                        series=(
                            Series(
                                name="requests",
                                values=[cand.per_minute[m][0] for m in minutes],
                                x=minutes,
                            ),
                        ),
                        limit=cand.rpm_limit,
                        limit_label=f"{cand.name} rpm limit",
                    ),
                    Chart(
                        kind="timeline",
                        title="Tokens per minute (input + reserved output)",
                        x_label="time (UTC)",
                        y_label="tokens",
                        series=tuple(
                            Series(
                                name=f"{role} {d.name}",
                                values=[d.per_minute.get(m, (0, 0))[1] for m in minutes],
                                x=minutes,
                            )
                            for role, d in zip(("baseline", "candidate"), pair, strict=True)
                        ),
                        limit=cand.tpm_limit,
                        limit_label=f"{cand.name} tpm limit",
                    ),
                ),
            )
        )
    return Report(
        title=f"guardedllm simulate: {base.name} against {cand.name}",
        subtitle=f"{result.requests:,} requests replayed, {result.skipped:,} lines skipped",
        sections=sections,
    )


def comparison_page(
    result: ComparisonResult, gates: Sequence[Gate], tables: Sequence[Table]
) -> Report:
    """The report of a comparison: the summary, then latency (and time to first chunk, when
    there were streams) and cost per call, each arm's distribution against the other's."""
    arms = (result.baseline, result.candidate)

    def series(values: str) -> tuple[Series, ...]:
        return tuple(
            Series(name=f"{role} {arm.name}", values=arm.values.get(values, ()))
            for role, arm in zip(("baseline", "candidate"), arms, strict=True)
        )

    latency: list[Chart] = [
        Chart(kind="cdf", title="Latency", x_label="seconds per call", series=series("latency_s"))
    ]
    if any(arm.values.get("first_chunk_s") for arm in arms):
        latency.append(
            Chart(
                kind="cdf",
                title="Time to first chunk (streams)",
                x_label="seconds",
                series=series("first_chunk_s"),
            )
        )
    saved = (
        ("The baseline is a saved release: its figures are in the tables, not its samples.",)
        if not any(result.baseline.values.values())
        else ()
    )
    return Report(
        title=f"guardedllm compare: {result.baseline.name} against {result.candidate.name}",
        subtitle=f"{result.baseline.calls + result.candidate.calls:,} calls compared",
        sections=(
            Section(title="Summary", notes=_verdict(gates), tables=tuple(tables)),
            Section(title="Latency", notes=saved, charts=tuple(latency)),
            Section(
                title="Cost and tokens per call",
                charts=(
                    Chart(
                        kind="cdf",
                        title="Cost per call",
                        x_label="USD",
                        series=series("cost_usd"),
                    ),
                    Chart(
                        kind="histogram",
                        title="Output tokens per call",
                        x_label="output tokens",
                        y_label="calls",
                        series=series("output_tokens"),
                    ),
                ),
            ),
        ),
    )
