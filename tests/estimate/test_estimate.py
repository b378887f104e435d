"""The pre-flight estimate of one request on one deployment."""

from __future__ import annotations

import math
from typing import Any

import pytest

from guardedllm.errors import ConfigError, InvalidRequestError
from guardedllm.estimate import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    Prices,
    estimate_request,
)

# "hello world" from a user: 3 (framing) + 1 ("user") + 2 ("hello world") + 3 (reply) = 9 tokens
# in o200k_base (see test_count.test_hello_world_by_hand).
HELLO = [{"role": "user", "content": "hello world"}]
HELLO_TOKENS = 9

MINI_PRICES = Prices(
    input_usd_per_mtok=0.15, output_usd_per_mtok=0.60, cached_input_usd_per_mtok=0.075
)
MINI: dict[str, Any] = {
    "deployment_name": "gpt-4o-mini",
    "tokenizer": "o200k_base",
    "context_window": 128_000,
    "max_output_tokens": 16_384,
    "prices": MINI_PRICES,
}


def test_exact_openai_estimate() -> None:
    est = estimate_request(HELLO, max_tokens=200, **MINI)
    assert est.deployment == "gpt-4o-mini"
    assert est.tokenizer == "o200k_base"
    assert est.input_tokens == HELLO_TOKENS
    assert est.max_output_tokens == 200
    assert est.fits_context
    assert est.exact
    assert est.notes == ()
    # (9 * 0.15 + 200 * 0.60) / 1e6, then with min(256, 200) = 200 expected output: the same
    assert est.cost_usd_max == pytest.approx((9 * 0.15 + 200 * 0.60) / 1e6)
    assert est.cost_usd_expected == pytest.approx(est.cost_usd_max)


def test_without_max_tokens_the_deployment_limit_is_the_worst_case() -> None:
    est = estimate_request(HELLO, **MINI)
    assert est.max_output_tokens == 16_384
    assert est.cost_usd_max == pytest.approx((9 * 0.15 + 16_384 * 0.60) / 1e6)
    # Expected output is DEFAULT_EXPECTED_OUTPUT_TOKENS (256) when the caller gives none.
    assert DEFAULT_EXPECTED_OUTPUT_TOKENS == 256
    assert est.cost_usd_expected == pytest.approx((9 * 0.15 + 256 * 0.60) / 1e6)


def test_expected_output_is_a_parameter() -> None:
    est = estimate_request(HELLO, expected_output_tokens=1000, **MINI)
    assert est.cost_usd_expected == pytest.approx((9 * 0.15 + 1000 * 0.60) / 1e6)


def test_max_tokens_above_the_limit_is_clamped_and_noted() -> None:
    est = estimate_request(HELLO, max_tokens=100_000, **MINI)
    assert est.max_output_tokens == 16_384
    assert est.exact  # the count is exact; the clamp is reported in a note
    assert any("max_output_tokens" in note for note in est.notes)
    assert not est.fits_output  # a call is refused unless its policy clamps


@pytest.mark.parametrize(("max_tokens", "fits"), [(None, True), (16_384, True), (16_385, False)])
def test_fits_output_at_the_boundary(max_tokens: int | None, fits: bool) -> None:
    assert estimate_request(HELLO, max_tokens=max_tokens, **MINI).fits_output is fits


@pytest.mark.parametrize(
    ("window", "fits"), [(HELLO_TOKENS + 50, True), (HELLO_TOKENS + 49, False)]
)
def test_fits_context_at_the_boundary(window: int, fits: bool) -> None:
    est = estimate_request(HELLO, max_tokens=50, **{**MINI, "context_window": window})
    assert est.fits_context is fits


def test_non_openai_model_is_scaled_and_not_exact() -> None:
    est = estimate_request(
        HELLO,
        max_tokens=10,
        deployment_name="claude-haiku",
        tokenizer="o200k_base",
        context_window=200_000,
        max_output_tokens=8192,
        prices=Prices(input_usd_per_mtok=0.80, output_usd_per_mtok=4.00),
        calibration=1.2,
        safety_margin=0.1,
        exact_tokenizer=False,
    )
    # ceil(9 * 1.2 * 1.1) = ceil(11.88) = 12
    assert est.input_tokens == 12
    assert not est.exact
    assert any("claude-haiku" in note for note in est.notes)
    assert est.cost_usd_max == pytest.approx((12 * 0.80 + 10 * 4.00) / 1e6)


def test_dearer_reasoning_prices_the_worst_case() -> None:
    prices = Prices(input_usd_per_mtok=1.0, output_usd_per_mtok=4.0, reasoning_usd_per_mtok=10.0)
    est = estimate_request(HELLO, max_tokens=100, **{**MINI, "prices": prices})
    # Every output token may be a reasoning token: 9 * 1 + 100 * 10
    assert est.cost_usd_max == pytest.approx((9 * 1.0 + 100 * 10.0) / 1e6)
    # The expected figure prices output at the plain output rate: 9 * 1 + 100 * 4
    assert est.cost_usd_expected == pytest.approx((9 * 1.0 + 100 * 4.0) / 1e6)


def test_notes_from_counting_carry_over() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    est = estimate_request([{"role": "user", "content": [image]}], max_tokens=1, **MINI)
    assert not est.exact
    assert est.input_tokens == 3 + 1 + 1445 + 3
    assert any("size unknown" in note for note in est.notes)


def test_bad_max_tokens_is_the_callers_error() -> None:
    with pytest.raises(InvalidRequestError, match="max_tokens is 0"):
        estimate_request(HELLO, max_tokens=0, **MINI)


@pytest.mark.parametrize(
    "override",
    [
        {"context_window": 0},
        {"max_output_tokens": -1},
        {"calibration": 0.0},
        {"calibration": math.nan},
        {"safety_margin": -0.1},
    ],
)
def test_bad_deployment_figures_are_refused(override: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="gpt-4o-mini"):
        estimate_request(HELLO, **{**MINI, **override})


def test_unknown_tokenizer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tokenizer"):
        estimate_request(HELLO, **{**MINI, "tokenizer": "nope_base"})
