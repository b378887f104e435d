"""The JSON documents of the release tools: what CI reads, and the record kept with a release.

The shapes are stable (documented in docs/cli.md): keys are added, never renamed or removed,
and ``"v"`` rises only when a meaning changes. A figure that could not be measured is ``null``
(JSON has no NaN).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, Final

from guardedllm._version import __version__
from guardedllm.errors import TrafficError
from guardedllm.release._compare import ArmResult, ComparisonResult, agreement_interval
from guardedllm.release._gates import Gate
from guardedllm.release._simulate import DeploymentResult, SimulationResult
from guardedllm.release._stats import Distribution

__all__ = [
    "RELEASE_FORMAT",
    "comparison_document",
    "load_release",
    "release_document",
    "simulation_document",
]

DOCUMENT_VERSION: Final = 1
RELEASE_FORMAT: Final = "guardedllm-release"


def _number(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def _summary(distribution: Distribution, fields: Sequence[str]) -> dict[str, float | None]:
    return {field: _number(getattr(distribution, field)) for field in fields}


def _gates(gates: Sequence[Gate]) -> list[dict[str, Any]]:
    return [
        {
            "name": gate.name,
            "limit": gate.limit,
            "value": _number(gate.value),
            "passed": gate.passed,
            "detail": gate.detail,
        }
        for gate in gates
    ]


def _deployment(result: DeploymentResult) -> dict[str, Any]:
    return {
        "vendor_model": result.vendor_model,
        "tokenizer": result.tokenizer,
        "exact_tokenizer": result.exact_tokenizer,
        "calibration": {"factor": result.calibration, "samples": result.calibration_samples},
        "input_tokens": _summary(result.input_tokens, ("p50", "p90", "p99", "max", "mean")),
        "cost_usd": _summary(result.cost_usd, ("p50", "p99", "mean", "total")),
        "worst_cost_usd": _summary(result.worst_cost_usd, ("p50", "p99", "mean", "total")),
        "inexact": result.inexact,
        "exceeds": {
            "context_window": result.over_context,
            "max_output": result.over_max_output,
            "cost_cap": result.over_cost_cap,
        },
        "peak_minute": {
            "rpm": result.peak_rpm,
            "tpm": result.peak_tpm,
            "rpm_limit": result.rpm_limit,
            "tpm_limit": result.tpm_limit,
            "rpm_headroom_pct": _number(result.rpm_headroom_pct),
            "tpm_headroom_pct": _number(result.tpm_headroom_pct),
        },
        "projected_usd": {
            "per_day": _number(result.usd_per_day),
            "per_month": _number(result.usd_per_month),
        },
    }


def _delta(base: float | None, cand: float | None) -> dict[str, float | None]:
    if base is None or cand is None:
        return {"abs": None, "pct": None}
    return {
        "abs": _number(cand - base),
        "pct": _number((cand - base) / base * 100) if base else None,
    }


def simulation_document(result: SimulationResult, gates: Sequence[Gate]) -> dict[str, Any]:
    """``guardedllm simulate --json``'s document."""
    deployments = {name: _deployment(found) for name, found in result.deployments.items()}
    base, cand = deployments[result.baseline], deployments[result.candidate]
    deltas = {
        f"{group}.{field}": _delta(base[group][field], cand[group][field])
        for group, fields in (
            ("input_tokens", ("p50", "p90", "p99", "max", "mean")),
            ("cost_usd", ("p50", "p99", "mean", "total")),
            ("worst_cost_usd", ("p50", "p99", "mean", "total")),
        )
        for field in fields
    }
    return {
        "v": DOCUMENT_VERSION,
        "requests": result.requests,
        "skipped": result.skipped,
        "skip_reasons": list(result.skip_reasons),
        "span": {"first": result.first_time, "last": result.last_time},
        "baseline": result.baseline,
        "candidate": result.candidate,
        "deployments": deployments,
        "deltas": deltas,
        "gates": _gates(gates),
        "passed": all(gate.passed for gate in gates),
    }


_ARM_FIELDS: Final = {
    "latency_s": ("p50", "p95", "p99", "mean", "max", "count"),
    "first_chunk_s": ("p50", "p95", "p99", "mean", "max", "count"),
    "cost_usd": ("mean", "stdev", "count", "p50", "p99", "total"),
    "input_tokens": ("mean", "stdev", "count", "p50", "p99"),
    "output_tokens": ("mean", "stdev", "count", "p50", "p99"),
}


def _arm(arm: ArmResult) -> dict[str, Any]:
    document: dict[str, Any] = dict(arm.counts)
    document["error_rate"] = _number(arm.rate("errors"))
    document["fallback_rate"] = _number(arm.rate("fallbacks"))
    document["escalation_rate"] = _number(arm.rate("escalations"))
    for name, fields in _ARM_FIELDS.items():
        document[name] = _summary(arm.distributions[name], fields)
    calls_with_reason = sum(arm.finish_reasons.values())
    document["finish_reasons"] = {
        reason: count / calls_with_reason for reason, count in arm.finish_reasons.items()
    }
    document["agreement"] = agreement_interval(arm.agreement) if arm.agreement else None
    document["deployments"] = dict(arm.deployments)
    return document


def comparison_document(result: ComparisonResult, gates: Sequence[Gate]) -> dict[str, Any]:
    """``guardedllm compare --json``'s document."""
    return {
        "v": DOCUMENT_VERSION,
        "skipped": result.skipped,
        "skip_reasons": list(result.skip_reasons),
        "baseline": result.baseline.name,
        "candidate": result.candidate.name,
        "arms": {arm.name: _arm(arm) for arm in (result.baseline, result.candidate)},
        "metrics": [
            {
                "metric": found.metric,
                "baseline": _number(found.baseline),
                "candidate": _number(found.candidate),
                "difference": _number(found.difference.value),
                "low": _number(found.difference.low),
                "high": _number(found.difference.high),
                "verdict": found.verdict,
                "method": found.method,
            }
            for found in result.metrics
        ],
        "gates": _gates(gates),
        "passed": all(gate.passed for gate in gates),
    }


def config_digest(path: str) -> str:
    """The SHA-256 of the config file's bytes: which config a release record was made with."""
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def release_document(
    result: ComparisonResult, gates: Sequence[Gate], *, config_path: str, env: str | None
) -> dict[str, Any]:
    """The before/after record ``compare --save`` writes, to keep with a release."""
    document = comparison_document(result, gates)
    deployments: dict[str, str] = {}
    for arm in (result.baseline, result.candidate):
        deployments.update(arm.deployments)
    return {
        "format": RELEASE_FORMAT,
        **document,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "guardedllm": __version__,
        "config": {"path": config_path, "sha256": config_digest(config_path), "env": env},
        "vendor_models": dict(sorted(deployments.items())),
    }


def _distribution(fields: Mapping[str, Any]) -> Distribution:
    def get(name: str) -> float:
        value = fields.get(name)
        return math.nan if value is None else float(value)

    return Distribution(
        count=int(fields.get("count") or 0),
        p50=get("p50"),
        p90=get("p90"),
        p95=get("p95"),
        p99=get("p99"),
        max=get("max"),
        mean=get("mean"),
        total=get("total"),
        stdev=get("stdev") if fields.get("stdev") is not None else 0.0,
    )


def load_release(path: str) -> ArmResult:
    """The candidate arm of a saved release record, to compare a later run against."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        raise TrafficError(f"cannot read the release record {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != RELEASE_FORMAT:
        raise TrafficError(
            f"{path} is not a release record (written by `guardedllm compare --save`)."
        )
    version = document.get("v")
    if not isinstance(version, int) or version > DOCUMENT_VERSION:
        raise TrafficError(
            f"{path} is a release record v{version}, written by a newer guardedllm; this one "
            f"reads up to v{DOCUMENT_VERSION}. Upgrade guardedllm to compare against it."
        )
    try:
        name = document["candidate"]
        arm = document["arms"][name]
        counts = {
            key: int(arm[key])
            for key in ("calls", "errors", "abandoned", "fallbacks", "escalations")
        }
        distributions = {key: _distribution(arm[key]) for key in _ARM_FIELDS}
    except (KeyError, TypeError, ValueError) as exc:
        raise TrafficError(f"{path}: the release record is incomplete ({exc!r}).") from None
    return ArmResult(
        name=f"{name} (saved)",
        counts=counts,
        distributions=distributions,
        values={key: array("d") for key in _ARM_FIELDS},
        finish_reasons={},
        deployments=dict(arm.get("deployments") or {}),
    )
