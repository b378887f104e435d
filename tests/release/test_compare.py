"""Per-arm statistics of recorded calls, with verdicts on synthetic arms where the difference is
large (worse, better) and where it is noise (inconclusive)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from guardedllm.errors import TrafficError
from guardedllm.release import Comparison, ComparisonResult, Skips, TrafficReader

from .traffic import call, write_lines


def compare(tmp_path: Path, lines: list[Any], baseline: str, candidate: str) -> ComparisonResult:
    path = write_lines(tmp_path / "records.jsonl", lines)
    comparison = Comparison(baseline, candidate)
    reader = TrafficReader([path])
    for record in reader.records():
        comparison.add(record)
    return comparison.finish(reader.skips)


def arm(
    deployment: str,
    n: int,
    *,
    seed: int,
    latency: float,
    cost: float,
    error_rate: float,
    **fields: Any,
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        failed = rng.random() < error_rate
        lines.append(
            call(
                deployment=deployment,
                status="error" if failed else "ok",
                latency_s=rng.lognormvariate(math.log(latency), 0.4),
                cost_usd=None if failed else rng.lognormvariate(math.log(cost), 0.3),
                **fields,
            )
        )
    return lines


def verdicts(result: ComparisonResult) -> dict[str, str]:
    return {found.metric: found.verdict for found in result.metrics}


def test_a_large_difference_is_worse_or_better(tmp_path: Path) -> None:
    lines = arm("mini", 300, seed=1, latency=1.0, cost=0.002, error_rate=0.01)
    lines += arm("haiku", 300, seed=2, latency=2.0, cost=0.001, error_rate=0.15)
    result = compare(tmp_path, lines, "mini", "haiku")
    found = verdicts(result)
    assert found["latency_s.p50"] == found["latency_s.p95"] == found["latency_s.p99"] == "worse"
    assert found["error_rate"] == "worse"
    assert found["cost_usd.mean"] == "better"
    assert found["fallback_rate"] == "inconclusive"  # none on either side
    assert found["first_chunk_s.p50"] == "inconclusive"  # no streams: nothing to compare
    assert (result.baseline.calls, result.candidate.calls) == (300, 300)


def test_noise_is_inconclusive(tmp_path: Path) -> None:
    lines = arm("mini", 300, seed=3, latency=1.0, cost=0.002, error_rate=0.05)
    lines += arm("haiku", 300, seed=4, latency=1.0, cost=0.002, error_rate=0.05)
    found = verdicts(compare(tmp_path, lines, "mini", "haiku"))
    assert set(found.values()) == {"inconclusive"}, found


def test_arm_figures_by_hand(tmp_path: Path) -> None:
    lines = [
        call(latency_s=1.0, cost_usd=0.001, outcome={"finish_reason": "stop"}),
        call(latency_s=2.0, cost_usd=0.003, outcome={"finish_reason": "length", "fallbacks": 1}),
        call(status="error", latency_s=4.0, cost_usd=None, outcome={"escalated": True}),
        call(
            status="abandoned",
            latency_s=3.0,
            cost_usd=0.002,
            outcome={"first_chunk_s": 0.5, "finish_reason": None},
        ),
        call(deployment="haiku", latency_s=1.5),
    ]
    result = compare(tmp_path, lines, "mini", "haiku")
    mini = result.baseline
    assert dict(mini.counts) == {
        "calls": 4,
        "errors": 1,
        "abandoned": 1,
        "fallbacks": 1,
        "escalations": 1,
    }
    assert mini.rate("errors") == 0.25
    latency = mini.distributions["latency_s"]
    assert (latency.p50, latency.p95, latency.p99) == (2.0, 4.0, 4.0)
    assert mini.distributions["cost_usd"].mean == pytest.approx(0.002)
    assert mini.distributions["first_chunk_s"].count == 1
    assert dict(mini.finish_reasons) == {"stop": 1, "length": 1}
    assert dict(mini.deployments) == {"mini": "gpt-4o-mini-2024-07-18"}
    assert result.candidate.calls == 1


def test_split_arms_by_name_or_split_and_name(tmp_path: Path) -> None:
    lines = [
        call(split="trial", arm="control", deployment="mini"),
        call(split="trial", arm="control", deployment="mini"),
        call(split="trial", arm="candidate", deployment="haiku"),
        call(split="other", arm="candidate", deployment="haiku"),
    ]
    result = compare(tmp_path, lines, "trial:control", "trial:candidate")
    assert (result.baseline.calls, result.candidate.calls) == (2, 1)
    result = compare(tmp_path, lines, "control", "candidate")
    assert (result.baseline.calls, result.candidate.calls) == (2, 2)


def test_shadow_copies_count_for_their_deployment_and_pairs_give_agreement(
    tmp_path: Path,
) -> None:
    def pair(same: bool | None) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "shadow",
            "time": 1.0,
            "id": "5f0c2a9e8b7d4c1a",
            "route": "support",
            "candidate": "haiku",
            "primary": {"deployment": "mini", "ok": True, "latency_s": 1.0, "cost_usd": 0.002},
            "copy": {"ok": True, "error_type": None, "latency_s": 1.2, "cost_usd": 0.003},
            "same_content": same,
        }

    lines = [
        call(),
        call(),
        call(deployment="haiku", shadow_of="5f0c2a9e8b7d4c1a"),
        pair(True),
        pair(True),
        pair(False),
        pair(None),  # not both text: not a pair to agree on
    ]
    result = compare(tmp_path, lines, "mini", "haiku")
    assert result.candidate.calls == 1
    assert result.candidate.agreement == (3, 2)
    assert result.baseline.agreement is None

    # Against a saved release there is no baseline deployment in the records: a pair whose
    # primary answered nothing (null) is no pair of these arms.
    orphan = {**pair(True), "primary": {"deployment": None, "ok": False}}
    path = write_lines(tmp_path / "orphans.jsonl", [call(deployment="haiku"), orphan])
    comparison = Comparison(None, "haiku")
    for record in TrafficReader([path]).records():
        comparison.add(record)
    assert comparison.finish(Skips(), against=result.baseline).candidate.agreement is None


def test_an_arm_without_calls_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match=r"no recorded calls for the candidate 'gpt-5'"):
        compare(tmp_path, [call()], "mini", "gpt-5")
