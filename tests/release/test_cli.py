"""``guardedllm simulate`` and ``guardedllm compare`` through ``main``: exit codes (0 pass, 1 a
gate failed, 2 bad input), the JSON documents' shape, and the release record's round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardedllm.cli import main

from .test_compare import arm
from .traffic import CONFIG, body, call, write_config, write_lines

MINUTE = 1764896400


def simulate(config: str, traffic: str, *extra: str) -> int:
    return main(["simulate", config, "--traffic", traffic, "--baseline", "mini", *extra])


def traffic(tmp_path: Path) -> str:
    return write_lines(
        tmp_path / "traffic.jsonl",
        [body(timestamp=MINUTE + i, max_tokens=100) for i in range(3)] + ["not json"],
    )


def test_simulate_passes_its_gates_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, log = write_config(tmp_path), traffic(tmp_path)
    out = tmp_path / "out.json"
    status = simulate(
        config,
        log,
        "--candidate",
        "mini",
        "--json",
        str(out),
        "--max-cost-increase",
        "0",
        "--max-p99-tokens-increase",
        "0",
        "--min-headroom",
        "50",
    )
    assert status == 0
    printed = capsys.readouterr()
    assert "3 requests from 1 file (1 line skipped)" in printed.out
    assert "input tokens p99" in printed.out
    assert "PASS  min_headroom: mini rpm headroom at the peak minute 70.0 %" in printed.out
    assert "traffic.jsonl:4: not JSON" in printed.err
    document = json.loads(out.read_text())
    assert document["v"] == 1
    assert (document["requests"], document["skipped"]) == (3, 1)
    mini = document["deployments"]["mini"]
    assert set(mini["input_tokens"]) == {"p50", "p90", "p99", "max", "mean"}
    assert set(mini["cost_usd"]) == {"p50", "p99", "mean", "total"}
    assert mini["input_tokens"]["p99"] == 9
    assert mini["cost_usd"]["total"] == pytest.approx(3 * (9 * 0.15 + 100 * 0.60) / 1e6)
    assert mini["exceeds"] == {"context_window": 0, "max_output": 0, "cost_cap": 0}
    assert mini["peak_minute"]["rpm"] == 3
    assert mini["peak_minute"]["rpm_headroom_pct"] == pytest.approx(70.0)
    assert document["deltas"]["cost_usd.total"] == {"abs": 0.0, "pct": 0.0}
    assert [gate["name"] for gate in document["gates"]] == [
        "max_cost_increase",
        "max_p99_tokens_increase",
        "min_headroom",
    ]
    assert document["passed"] is True


def test_simulate_exits_1_when_a_gate_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, log = write_config(tmp_path), traffic(tmp_path)
    out = tmp_path / "out.json"
    status = simulate(
        config, log, "--candidate", "haiku", "--max-cost-increase", "10", "--json", str(out)
    )
    assert status == 1
    assert "FAIL  max_cost_increase: expected cost +" in capsys.readouterr().out
    document = json.loads(out.read_text())
    assert document["passed"] is False
    assert document["gates"][0]["value"] > 10
    # haiku's rpm (4) leaves 25 % at a peak of 3.
    assert simulate(config, log, "--candidate", "haiku", "--min-headroom", "30") == 1
    assert simulate(config, log, "--candidate", "haiku", "--min-headroom", "25") == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown deployment", "no deployment named 'nope'"),
        ("missing file", "cannot read traffic file"),
        ("no requests", "no requests in the traffic"),
        ("newer format", "traffic record format v2"),
        ("bad config", "config problem"),
    ],
)
def test_simulate_exits_2_on_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    config, log = write_config(tmp_path), traffic(tmp_path)
    candidate = "mini"
    if case == "unknown deployment":
        candidate = "nope"
    elif case == "missing file":
        log = str(tmp_path / "missing.jsonl")
    elif case == "no requests":
        log = write_lines(tmp_path / "empty.jsonl", ["not json"])
    elif case == "newer format":
        log = write_lines(tmp_path / "new.jsonl", [{**call(), "v": 2}])
    else:
        config = write_config(
            tmp_path, CONFIG.replace("context_window = 1000", "context_window = -1")
        )
    assert simulate(config, log, "--candidate", candidate) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith("guardedllm simulate: ")
    assert message in printed.err


def test_a_gate_limit_must_be_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "simulate",
                "c.toml",
                "--traffic",
                "t",
                "--baseline",
                "a",
                "--candidate",
                "b",
                "--max-cost-increase",
                "ten",
            ]
        )
    assert exited.value.code == 2
    assert "'ten' is not a number" in capsys.readouterr().err


def records(tmp_path: Path, name: str, candidate_latency: float, errors: float) -> str:
    lines = arm("mini", 200, seed=1, latency=1.0, cost=0.002, error_rate=0.02)
    lines += arm("haiku", 200, seed=2, latency=candidate_latency, cost=0.002, error_rate=errors)
    return write_lines(tmp_path / name, lines)


def compare(config: str, log: str, *extra: str) -> int:
    return main(["compare", config, "--traffic", log, "--candidate", "haiku", *extra])


def test_compare_gates_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    log = records(tmp_path, "same.jsonl", candidate_latency=1.0, errors=0.02)
    out = tmp_path / "compare.json"
    gates = ("--max-p99-latency-increase", "50", "--max-error-rate-increase", "5")
    assert compare(config, log, "--baseline", "mini", "--json", str(out), *gates) == 0
    printed = capsys.readouterr().out
    assert "latency p99" in printed
    assert "inconclusive" in printed
    document = json.loads(out.read_text())
    assert set(document["arms"]) == {"mini", "haiku"}
    haiku = document["arms"]["haiku"]
    assert haiku["calls"] == 200
    assert set(haiku["latency_s"]) >= {"p50", "p95", "p99"}
    assert set(haiku["cost_usd"]) >= {"mean", "total"}
    assert haiku["first_chunk_s"]["p50"] is None
    assert haiku["finish_reasons"] == {"stop": 1.0}
    metric = document["metrics"][0]
    assert set(metric) == {
        "metric",
        "baseline",
        "candidate",
        "difference",
        "low",
        "high",
        "verdict",
        "method",
    }
    assert [gate["passed"] for gate in document["gates"]] == [True, True]

    slow = records(tmp_path, "slow.jsonl", candidate_latency=3.0, errors=0.30)
    assert compare(config, slow, "--baseline", "mini", *gates) == 1
    printed = capsys.readouterr().out
    assert "FAIL  max_p99_latency_increase" in printed
    assert "FAIL  max_error_rate_increase" in printed
    assert "worse" in printed


def test_compare_exits_2_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    log = records(tmp_path, "same.jsonl", candidate_latency=1.0, errors=0.02)
    assert compare(config, log, "--baseline", "gpt-5") == 2
    assert "no recorded calls for the baseline 'gpt-5'" in capsys.readouterr().err
    assert compare(config, str(tmp_path / "none.jsonl"), "--baseline", "mini") == 2
    assert compare(config, log, "--against", str(tmp_path / "none.json")) == 2
    assert "cannot read the release record" in capsys.readouterr().err


def test_save_and_against_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    release = tmp_path / "release.json"
    log = records(tmp_path, "same.jsonl", candidate_latency=1.0, errors=0.02)
    assert compare(config, log, "--baseline", "mini", "--save", str(release)) == 0
    saved = json.loads(release.read_text())
    assert saved["format"] == "guardedllm-release"
    assert saved["v"] == 1
    assert len(saved["config"]["sha256"]) == 64
    assert saved["vendor_models"] == {"haiku": "haiku", "mini": "gpt-4o-mini-2024-07-18"}
    assert saved["guardedllm"]
    assert saved["arms"]["haiku"]["calls"] == 200

    gates = ("--max-p99-latency-increase", "50", "--max-error-rate-increase", "5")
    # The same traffic again passes against the saved release...
    assert compare(config, log, "--against", str(release), *gates) == 0
    capsys.readouterr()
    # ... and a slower, failing candidate does not.
    slow = records(tmp_path, "slow.jsonl", candidate_latency=3.0, errors=0.30)
    out = tmp_path / "against.json"
    assert compare(config, slow, "--against", str(release), "--json", str(out), *gates) == 1
    document = json.loads(out.read_text())
    assert document["baseline"] == "haiku (saved)"
    verdicts = {m["metric"]: m["verdict"] for m in document["metrics"]}
    assert verdicts["latency_s.p99"] == "worse"
    assert verdicts["error_rate"] == "worse"

    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**saved, "v": 2}))
    assert compare(config, log, "--against", str(newer)) == 2
    assert "written by a newer guardedllm" in capsys.readouterr().err


def test_baseline_and_against_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["compare", "c.toml", "--traffic", "t", "--candidate", "b"])
    assert exited.value.code == 2
    assert "one of the arguments --baseline --against is required" in capsys.readouterr().err
