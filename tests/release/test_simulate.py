"""Replaying traffic through deployments: numbers checked against hand-computed values (tokens
by the real tokenizer, costs from the config's prices)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from guardedllm import defaults
from guardedllm.errors import TrafficError
from guardedllm.estimate import count_chat_tokens, get_encoding
from guardedllm.registry import Registry
from guardedllm.release import Simulation, SimulationResult, TrafficReader
from guardedllm.routing._plan import MEDIA_RATES_BY_KIND

from .traffic import CONFIG, HELLO, HELLO_TOKENS, body, call, write_lines

MTOK = 1e-6
REGISTRY = Registry.from_toml_text(CONFIG)


def simulate(
    tmp_path: Path, lines: list[Any], baseline: str = "mini", candidate: str = "haiku"
) -> SimulationResult:
    path = write_lines(tmp_path / "traffic.jsonl", lines)
    simulation = Simulation(REGISTRY, baseline, candidate)
    reader = TrafficReader([path])
    for where, request in reader.requests():
        problem = simulation.add(request)
        if problem is not None:
            reader.skips.add(where, problem)
    return simulation.finish(reader.skips)


def test_tokens_and_costs_on_an_exact_and_a_stand_in_deployment(tmp_path: Path) -> None:
    result = simulate(tmp_path, [body(max_tokens=100), body()])
    mini, haiku = result.deployments["mini"], result.deployments["haiku"]
    assert result.requests == 2
    assert list(mini.values["input_tokens"]) == [HELLO_TOKENS, HELLO_TOKENS]
    # The stand-in count gets the safety margin: ceil(9 * 1.1) = 10.
    assert list(haiku.values["input_tokens"]) == [10, 10]
    assert (mini.inexact, haiku.inexact) == (0, 2)
    # Expected output: max_tokens (100) when below the default, else the default (256).
    assert list(mini.values["cost_usd"]) == pytest.approx(
        [9 * 0.15 * MTOK + 100 * 0.60 * MTOK, 9 * 0.15 * MTOK + 256 * 0.60 * MTOK]
    )
    # Worst case: every output token the request allows (the deployment's max without one).
    assert list(mini.values["worst_cost_usd"]) == pytest.approx(
        [9 * 0.15 * MTOK + 100 * 0.60 * MTOK, 9 * 0.15 * MTOK + 16384 * 0.60 * MTOK]
    )
    assert list(haiku.values["worst_cost_usd"]) == pytest.approx(
        [10 * 0.80 * MTOK + 100 * 4.0 * MTOK, 10 * 0.80 * MTOK + 8192 * 4.0 * MTOK]
    )
    assert haiku.cost_usd.total == pytest.approx(2 * 10 * 0.80 * MTOK + (100 + 256) * 4.0 * MTOK)
    assert mini.input_tokens.p99 == HELLO_TOKENS
    assert mini.cost_usd.mean == pytest.approx(mini.cost_usd.total / 2)


def test_two_tokenizers_count_with_each_their_own(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Ünïcödé tokenizers differ: 東京 and emojis 🙂🙂"}]
    result = simulate(tmp_path, [body(messages)], baseline="mini", candidate="turbo")
    for name, tokenizer in (("mini", "o200k_base"), ("turbo", "cl100k_base")):
        expected = count_chat_tokens(messages, encoding=get_encoding(tokenizer)).tokens
        assert result.deployments[name].input_tokens.max == expected
    assert (
        result.deployments["mini"].input_tokens.max != result.deployments["turbo"].input_tokens.max
    )


def test_recorded_counts_stand_in_for_a_missing_body(tmp_path: Path) -> None:
    # No body: mini (o200k_base) reads the recorded count; turbo (cl100k_base) has none
    # recorded, so the o200k_base count stands in with the safety margin, inexact.
    lines = [call(request={"tokens": {"o200k_base": 100}, "exact": {"o200k_base": True}})]
    result = simulate(tmp_path, lines, baseline="mini", candidate="turbo")
    mini, turbo = result.deployments["mini"], result.deployments["turbo"]
    assert mini.input_tokens.max == 100
    assert mini.inexact == 0
    assert turbo.input_tokens.max == math.ceil(100 * (1 + defaults.ESTIMATE_SAFETY_MARGIN))
    assert turbo.inexact == 1
    # The recorded output (20 tokens) is the expected output.
    assert mini.cost_usd.total == pytest.approx(100 * 0.15 * MTOK + 20 * 0.60 * MTOK)


def test_a_stand_in_is_calibrated_from_the_calls_it_answered(tmp_path: Path) -> None:
    # haiku answered these calls and billed 15 input tokens where o200k_base counts 10.
    answered = call(
        deployment="haiku",
        request={"tokens": {"o200k_base": 10}, "exact": {"o200k_base": True}},
        outcome={"input_tokens": 15},
    )
    samples = defaults.SIMULATE_MIN_CALIBRATION_SAMPLES
    result = simulate(tmp_path, [answered] * samples)
    haiku = result.deployments["haiku"]
    assert (haiku.calibration, haiku.calibration_samples) == (1.5, samples)
    assert haiku.input_tokens.max == math.ceil(10 * 1.5 * 1.1)
    # mini is exact: no calibration, whatever the calls billed.
    assert result.deployments["mini"].calibration == 1.0
    assert result.deployments["mini"].input_tokens.max == 10

    fewer = simulate(tmp_path, [answered] * (samples - 1))
    assert fewer.deployments["haiku"].calibration == 1.0
    assert fewer.deployments["haiku"].input_tokens.max == 11


def test_requests_that_would_not_fit(tmp_path: Path) -> None:
    long_text = [{"role": "user", "content": "word " * 600}]  # ~600 tokens
    lines = [
        body(long_text, max_tokens=400),  # 600 + 400 > tiny's 1000-token window
        body(max_tokens=600),  # above tiny's 500 max output: clamped
        body(model="chat"),  # through route support, max_cost_usd 0.01
        body(model="support", max_tokens=100),
        body(),
    ]
    result = simulate(tmp_path, lines, baseline="tiny", candidate="haiku")
    tiny, haiku = result.deployments["tiny"], result.deployments["haiku"]
    assert (tiny.over_context, tiny.over_max_output) == (1, 1)
    assert (haiku.over_context, haiku.over_max_output) == (0, 0)
    # haiku's worst case without max_tokens is 8192 output tokens at $4/Mtok, over the cap;
    # with max_tokens 100 it is not; a request to a model has no route cap.
    assert haiku.over_cost_cap == 1
    assert tiny.over_cost_cap == 0


def test_peak_minute_rates_against_limits(tmp_path: Path) -> None:
    minute = 1764896400  # a minute's start
    lines = [
        body(timestamp=minute + 1, max_tokens=100),
        body(timestamp=minute + 30, max_tokens=100),
        body(timestamp=minute + 59, max_tokens=100),
        body(timestamp=minute + 60, max_tokens=1000),
        body(),  # no timestamp: in no minute
    ]
    result = simulate(tmp_path, lines)
    mini, haiku = result.deployments["mini"], result.deployments["haiku"]
    assert mini.peak_rpm == 3
    # Tokens as the rate limiter counts them: input plus the output reserved.
    assert mini.peak_tpm == max(3 * (HELLO_TOKENS + 100), HELLO_TOKENS + 1000)
    assert mini.per_minute == {
        float(minute): (3, 3 * (HELLO_TOKENS + 100)),
        float(minute + 60): (1, HELLO_TOKENS + 1000),
    }
    assert mini.rpm_headroom_pct == pytest.approx((10 - 3) / 10 * 100)
    assert mini.tpm_headroom_pct == pytest.approx((100_000 - mini.peak_tpm) / 100_000 * 100)
    assert haiku.rpm_headroom_pct == pytest.approx((4 - 3) / 4 * 100)
    assert haiku.tpm_headroom_pct is None  # no tpm limit
    assert (result.first_time, result.last_time) == (minute + 1, minute + 60)


def test_projected_spend_at_the_recorded_rate(tmp_path: Path) -> None:
    result = simulate(
        tmp_path, [body(timestamp=0, max_tokens=100), body(timestamp=3600, max_tokens=100)]
    )
    mini = result.deployments["mini"]
    per_request = 9 * 0.15 * MTOK + 100 * 0.60 * MTOK
    assert mini.usd_per_day == pytest.approx(2 * per_request / 3600 * 86400)
    assert mini.usd_per_month == pytest.approx(mini.usd_per_day * 30)

    untimed = simulate(tmp_path, [body()])
    assert untimed.deployments["mini"].usd_per_day is None
    assert untimed.deployments["mini"].peak_rpm is None


def test_a_request_the_estimator_refuses_is_skipped_with_its_reason(tmp_path: Path) -> None:
    result = simulate(tmp_path, [body([{"role": "user", "content": 5}]), body()])
    assert (result.requests, result.skipped) == (1, 1)
    assert "messages[0].content is a int" in result.skip_reasons[0]


def test_unknown_deployments_and_empty_logs_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match=r"no deployment named 'chat'.*haiku, mini"):
        Simulation(REGISTRY, "mini", "chat")
    with pytest.raises(TrafficError, match=r"no requests in the traffic \(1 skipped lines\)"):
        simulate(tmp_path, ["garbage"])


def test_media_parts_are_counted_at_each_vendors_rates(tmp_path: Path) -> None:
    # mini (OpenAI) and haiku (Anthropic) both count with o200k_base, which one count serves
    # for plain text; audio is bounded at each vendor's own rate (10 and 32 tokens a second).
    audio = [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA" * 1000, "format": "wav"}}
            ],
        }
    ]
    result = simulate(tmp_path, [body(audio), body(HELLO)])
    encoding = get_encoding("o200k_base")
    openai = count_chat_tokens(audio, encoding=encoding, media_rates=MEDIA_RATES_BY_KIND["openai"])
    anthropic = count_chat_tokens(
        audio, encoding=encoding, media_rates=MEDIA_RATES_BY_KIND["anthropic"]
    )
    assert openai.tokens != anthropic.tokens
    assert list(result.deployments["mini"].values["input_tokens"]) == [openai.tokens, HELLO_TOKENS]
    assert list(result.deployments["haiku"].values["input_tokens"]) == [
        math.ceil(anthropic.tokens * 1.1),
        math.ceil(HELLO_TOKENS * 1.1),
    ]
