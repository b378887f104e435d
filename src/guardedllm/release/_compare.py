"""Per-arm statistics of recorded calls, and whether the candidate differs from the baseline.

An arm is named as a split arm (``SPLIT:ARM``, or ``ARM`` alone: the ``"arm"`` of the records)
or a deployment (the one that answered): a call belongs to every name it matches. Shadow copies
are calls like any other, answered by the candidate deployment, so a shadow trial compares
deployments; the shadow pairs add the agreement rate (how often the copy's text was the
primary's) for the pair baseline -> candidate.

Each metric with a direction (lower is better for all of them: error, fallback and escalation
rates, latency and time to first chunk, cost) gets an interval for candidate - baseline and a
verdict: "worse" or "better" when the interval is on one side of 0, else "inconclusive": the
difference may be noise (see ``_stats`` for the methods).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from guardedllm.errors import TrafficError
from guardedllm.release._stats import (
    Difference,
    Distribution,
    Verdict,
    mean_difference,
    percentile_difference,
    rate_difference,
    verdict,
    wilson,
)
from guardedllm.release._traffic import CallRecord, ShadowRecord, Skips

__all__ = ["ArmResult", "Comparison", "ComparisonResult", "MetricComparison"]

# Rates compared: the metric's name, by the count behind it.
RATES = {"errors": "error_rate", "fallbacks": "fallback_rate", "escalations": "escalation_rate"}
# Per-call values compared, each with its percentiles' interval or its mean's.
PERCENTILE_METRICS = ("latency_s", "first_chunk_s")
MEAN_METRICS = ("cost_usd",)
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
_VALUES = ("latency_s", "first_chunk_s", "cost_usd", "input_tokens", "output_tokens")


@attrs.define
class _Tally:
    calls: int = 0
    errors: int = 0
    abandoned: int = 0
    fallbacks: int = 0
    escalations: int = 0
    values: dict[str, array[float]] = attrs.field(
        factory=lambda: {name: array("d") for name in _VALUES}
    )
    finish_reasons: Counter[str] = attrs.field(factory=Counter)
    deployments: dict[str, str] = attrs.field(factory=dict)

    def add(self, call: CallRecord) -> None:
        self.calls += 1
        self.errors += call.status == "error"
        self.abandoned += call.status == "abandoned"
        self.fallbacks += call.fallbacks > 0
        self.escalations += call.escalated
        for name in _VALUES:
            value = getattr(call, name)
            if value is not None:
                self.values[name].append(value)
        if call.finish_reason is not None:
            self.finish_reasons[call.finish_reason] += 1
        if call.deployment is not None:
            self.deployments.setdefault(call.deployment, call.vendor_model or "")


@attrs.frozen(kw_only=True, eq=False)
class ArmResult:
    """One arm's figures. ``counts`` holds calls, errors, abandoned, fallbacks and escalations
    (calls that had any); ``distributions`` each per-call value's summary and ``values`` the
    sorted values themselves (empty for an arm read back from a saved release).
    ``agreement`` is (pairs, agreeing) for the candidate of shadow pairs, else None."""

    name: str
    counts: Mapping[str, int]
    distributions: Mapping[str, Distribution]
    values: Mapping[str, array[float]] = attrs.field(repr=False)
    finish_reasons: Mapping[str, int]
    deployments: Mapping[str, str]
    agreement: tuple[int, int] | None = None

    @property
    def calls(self) -> int:
        return self.counts["calls"]

    def rate(self, count: str) -> float:
        return self.counts[count] / self.calls if self.calls else math.nan


@attrs.frozen(kw_only=True)
class MetricComparison:
    """One metric side by side: the arms' figures, the difference with its interval, the
    verdict, and the method the interval came from."""

    metric: str
    baseline: float
    candidate: float
    difference: Difference
    verdict: Verdict
    method: str


@attrs.frozen(kw_only=True, eq=False)
class ComparisonResult:
    """Both arms, the metric comparisons, and the lines skipped."""

    baseline: ArmResult
    candidate: ArmResult
    metrics: tuple[MetricComparison, ...]
    skipped: int
    skip_reasons: tuple[str, ...]


def _matches(name: str, call: CallRecord) -> bool:
    if name in (call.deployment, call.arm):
        return True
    return call.split is not None and f"{call.split}:{call.arm}" == name


class Comparison:
    """Feed it records with ``add``; ``finish`` compares. ``baseline`` None: the baseline is
    given to ``finish`` (a saved release's candidate arm)."""

    def __init__(self, baseline: str | None, candidate: str) -> None:
        self._names = {"candidate": candidate}
        if baseline is not None:
            self._names["baseline"] = baseline
        self._tallies = {role: _Tally() for role in self._names}
        self._pairs = 0
        self._agreeing = 0

    def add(self, record: CallRecord | ShadowRecord) -> None:
        if isinstance(record, ShadowRecord):
            baseline = self._names.get("baseline")
            if (
                baseline is not None  # a pair's primary is a deployment of these records
                and record.same_content is not None
                and record.candidate == self._names["candidate"]
                and record.primary == baseline
            ):
                self._pairs += 1
                self._agreeing += record.same_content
            return
        for role, name in self._names.items():
            if _matches(name, record):
                self._tallies[role].add(record)

    def finish(self, skips: Skips, *, against: ArmResult | None = None) -> ComparisonResult:
        arms = {role: self._arm(role) for role in self._names}
        if against is not None:
            arms["baseline"] = against
        for role, arm in arms.items():
            if arm.calls == 0:
                reasons = "".join(f"\n  {reason}" for reason in skips.reasons)
                raise TrafficError(
                    f"no recorded calls for the {role} {arm.name!r} ({skips.count} "
                    f"skipped lines){reasons}\nName a split arm (SPLIT:ARM or ARM) or a deployment "
                    "that answered calls in these records."
                )
        base, cand = arms["baseline"], arms["candidate"]
        return ComparisonResult(
            baseline=base,
            candidate=cand,
            metrics=compare_arms(base, cand),
            skipped=skips.count,
            skip_reasons=tuple(skips.reasons),
        )

    def _arm(self, role: str) -> ArmResult:
        tally = self._tallies[role]
        values = {name: array("d", sorted(v)) for name, v in tally.values.items()}
        return ArmResult(
            name=self._names[role],
            counts={
                "calls": tally.calls,
                "errors": tally.errors,
                "abandoned": tally.abandoned,
                "fallbacks": tally.fallbacks,
                "escalations": tally.escalations,
            },
            distributions={name: Distribution.of(v) for name, v in values.items()},
            values=values,
            finish_reasons=dict(tally.finish_reasons.most_common()),
            deployments=dict(sorted(tally.deployments.items())),
            agreement=(self._pairs, self._agreeing)
            if role == "candidate" and self._pairs
            else None,
        )


def compare_arms(base: ArmResult, cand: ArmResult) -> tuple[MetricComparison, ...]:
    """Every directed metric of ``cand`` against ``base``, with intervals and verdicts."""
    found: list[MetricComparison] = []
    for count, metric in RATES.items():
        difference = rate_difference(base.counts[count], base.calls, cand.counts[count], cand.calls)
        found.append(_compared(metric, base.rate(count), cand.rate(count), difference, "newcombe"))
    for name in PERCENTILE_METRICS:
        for label, q in QUANTILES.items():
            base_point = getattr(base.distributions[name], label)
            cand_point = getattr(cand.distributions[name], label)
            difference = percentile_difference(
                base.values[name] or None,
                cand.values[name],
                q,
                base_point=None if math.isnan(base_point) else base_point,
            )
            found.append(
                _compared(f"{name}.{label}", base_point, cand_point, difference, "bootstrap")
            )
    for name in MEAN_METRICS:
        b, c = base.distributions[name], cand.distributions[name]
        found.append(_compared(f"{name}.mean", b.mean, c.mean, mean_difference(b, c), "welch"))
    return tuple(found)


def _compared(
    metric: str, base: float, cand: float, difference: Difference, method: str
) -> MetricComparison:
    return MetricComparison(
        metric=metric,
        baseline=base,
        candidate=cand,
        difference=difference,
        verdict=verdict(difference),
        method=method,
    )


def agreement_interval(agreement: tuple[int, int]) -> dict[str, Any]:
    """A shadow candidate's agreement rate with its Wilson interval."""
    pairs, agreeing = agreement
    low, high = wilson(agreeing, pairs)
    return {"pairs": pairs, "rate": agreeing / pairs, "low": low, "high": high}
