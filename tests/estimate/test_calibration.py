"""Calibration: estimates learn from the vendor's counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm import Client, Registry
from guardedllm.estimate import Calibrator
from guardedllm.testing import FakeProvider
from support import ENVIRON


def test_the_first_observation_sets_the_factor_and_later_ones_smooth_it() -> None:
    calibrator = Calibrator(alpha=0.5)
    assert calibrator.factor("claude") == 1.0
    calibrator.observe("claude", counted=100, estimated=110, actual=120)
    assert calibrator.factor("claude") == pytest.approx(1.2)
    calibrator.observe("claude", counted=100, estimated=132, actual=100)
    assert calibrator.factor("claude") == pytest.approx(1.1)
    stats = calibrator.stats()["claude"]
    assert stats.samples == 2
    assert stats.last_ratio == pytest.approx(1.0)
    # errors: (110-120)/120 and (132-100)/100
    assert stats.mean_abs_error == pytest.approx((10 / 120 + 0.32) / 2)
    assert stats.bias == pytest.approx((-10 / 120 + 0.32) / 2)


def test_empty_counts_teach_nothing() -> None:
    calibrator = Calibrator()
    calibrator.observe("m", counted=0, estimated=0, actual=50)
    calibrator.observe("m", counted=10, estimated=10, actual=0)
    assert calibrator.stats() == {}


@given(st.lists(st.floats(min_value=0.5, max_value=2.0), min_size=1, max_size=50))
def test_the_factor_stays_within_the_observed_ratios(ratios: list[float]) -> None:
    calibrator = Calibrator()
    for ratio in ratios:
        calibrator.observe("m", counted=1000, estimated=1000, actual=round(1000 * ratio))
    factor = calibrator.factor("m")
    assert min(ratios) - 0.01 <= factor <= max(ratios) + 0.01


def test_a_client_learns_a_stand_in_tokenizer_s_error(
    registry: Registry, fake_provider: FakeProvider
) -> None:
    messages = [{"role": "user", "content": "Count these words carefully, please. " * 20}]
    with Client(registry, environ=ENVIRON) as client:
        before = client.estimate(model="claude-haiku", messages=messages).input_tokens
        for _ in range(5):
            response = client.chat.completions.create(model="claude-haiku", messages=messages)
        actual = response.usage.prompt_tokens
        stats = client.estimation_stats()["claude-haiku"]
        after = client.estimate(model="claude-haiku", messages=messages).input_tokens
    assert stats.samples == 5
    assert stats.last_ratio == pytest.approx(actual / (before / 1.1), rel=0.05)
    # The calibrated estimate (still with its 10 % margin) now tracks the vendor's count.
    assert after == pytest.approx(actual * 1.1, rel=0.02)
