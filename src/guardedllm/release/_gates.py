"""Gates: the limits a release must stay within, checked on a simulation or a comparison.

A gate compares the candidate's figure with the baseline's on the point estimates: a CI gate is
a limit the team chose ("cost may rise 10 %"), and the verdicts beside it say whether a
difference is more than noise. A gate that cannot be measured (no timestamps for headroom, a
deployment without limits) passes and says why in its ``detail``.
"""

from __future__ import annotations

import math

import attrs

from guardedllm.release._compare import ComparisonResult
from guardedllm.release._simulate import SimulationResult

__all__ = ["Gate", "comparison_gates", "simulation_gates"]


@attrs.frozen(kw_only=True)
class Gate:
    """One gate: its name (the option's, e.g. ``max_cost_increase``), the limit given, the
    value measured (None: not measurable), whether it passed, and one line saying so."""

    name: str
    limit: float
    value: float | None
    passed: bool
    detail: str


def _increase_pct(base: float, cand: float) -> float:
    """How much ``cand`` is above ``base``, in percent of ``base`` (inf from 0 to more)."""
    if base == 0:
        return 0.0 if cand <= 0 else math.inf
    # Rounded well below any limit's precision, so that 1.4 s -> 2.1 s is 50 %, not 50.000...1.
    return round((cand - base) / base * 100, 9)


def _at_most(name: str, limit: float, value: float, what: str, unit: str) -> Gate:
    if math.isnan(value):
        return Gate(
            name=name,
            limit=limit,
            value=None,
            passed=True,
            detail=f"not measured: an arm has no {what} recorded",
        )
    passed = value <= limit
    relation = "within" if passed else "over"
    return Gate(
        name=name,
        limit=limit,
        value=value,
        passed=passed,
        detail=f"{what} {value:+.2f} {unit}, {relation} the limit of {limit:g} {unit}",
    )


def simulation_gates(
    result: SimulationResult,
    *,
    max_cost_increase: float | None = None,
    max_p99_tokens_increase: float | None = None,
    min_headroom: float | None = None,
) -> list[Gate]:
    """The gates asked for (None: not asked), on the candidate against the baseline; headroom
    is the candidate's lower of rpm and tpm headroom at the log's peak minute."""
    base = result.deployments[result.baseline]
    cand = result.deployments[result.candidate]
    gates = []
    if max_cost_increase is not None:
        value = _increase_pct(base.cost_usd.total, cand.cost_usd.total)
        gates.append(_at_most("max_cost_increase", max_cost_increase, value, "expected cost", "%"))
    if max_p99_tokens_increase is not None:
        value = _increase_pct(base.input_tokens.p99, cand.input_tokens.p99)
        gates.append(
            _at_most(
                "max_p99_tokens_increase", max_p99_tokens_increase, value, "p99 input tokens", "%"
            )
        )
    if min_headroom is not None:
        measured = [
            (kind, pct)
            for kind, pct in (("rpm", cand.rpm_headroom_pct), ("tpm", cand.tpm_headroom_pct))
            if pct is not None
        ]
        if not measured:
            why = (
                "the log has no timestamps"
                if cand.peak_rpm is None
                else f"{cand.name} has no rpm or tpm limit"
            )
            gates.append(
                Gate(
                    name="min_headroom",
                    limit=min_headroom,
                    value=None,
                    passed=True,
                    detail=f"not measured: {why}",
                )
            )
        else:
            kind, value = min(measured, key=lambda item: item[1])
            passed = value >= min_headroom
            gates.append(
                Gate(
                    name="min_headroom",
                    limit=min_headroom,
                    value=value,
                    passed=passed,
                    detail=f"{cand.name} {kind} headroom at the peak minute {value:.1f} %, "
                    f"{'at or above' if passed else 'below'} the minimum of {min_headroom:g} %",
                )
            )
    return gates


def comparison_gates(
    result: ComparisonResult,
    *,
    max_p99_latency_increase: float | None = None,
    max_cost_increase: float | None = None,
    max_error_rate_increase: float | None = None,
) -> list[Gate]:
    """The gates asked for (None: not asked), candidate arm against baseline arm."""
    base, cand = result.baseline, result.candidate
    gates = []
    if max_p99_latency_increase is not None:
        value = _increase_pct(
            base.distributions["latency_s"].p99, cand.distributions["latency_s"].p99
        )
        gates.append(
            _at_most(
                "max_p99_latency_increase", max_p99_latency_increase, value, "p99 latency", "%"
            )
        )
    if max_cost_increase is not None:
        value = _increase_pct(
            base.distributions["cost_usd"].mean, cand.distributions["cost_usd"].mean
        )
        gates.append(
            _at_most("max_cost_increase", max_cost_increase, value, "mean cost per call", "%")
        )
    if max_error_rate_increase is not None:
        value = (cand.rate("errors") - base.rate("errors")) * 100
        gates.append(
            _at_most("max_error_rate_increase", max_error_rate_increase, value, "error rate", "pp")
        )
    return gates
