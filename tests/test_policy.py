"""Policy's own checks: a setting that could never hold is refused when the policy is made."""

from __future__ import annotations

import pytest

from guardedllm import Policy


@pytest.mark.parametrize("field", ["deadline_s", "timeout_s", "first_chunk_timeout_s"])
@pytest.mark.parametrize("value", [0, -1.0, 86_401.0, 1e300, float("inf")])
def test_a_duration_is_positive_and_at_most_a_day(field: str, value: float) -> None:
    # Past a day it is a typo, and past ~292 years no socket or event loop can wait for it.
    with pytest.raises(ValueError, match=f"Policy.{field} must be"):
        Policy(**{field: value})


@pytest.mark.parametrize("field", ["deadline_s", "timeout_s", "first_chunk_timeout_s"])
def test_a_day_is_the_longest_duration(field: str) -> None:
    assert getattr(Policy(**{field: 86_400.0}), field) == 86_400.0


@pytest.mark.parametrize("value", [0, 86_401.0, 1e300, float("nan")])
def test_a_hedge_delay_is_positive_and_at_most_a_day(value: float) -> None:
    with pytest.raises(ValueError, match="hedge_after_s"):
        Policy(hedge_after_s=value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_cost_usd", "0.01", "must be a number"),
        ("deadline_s", "5", "must be a number"),
        ("timeout_s", True, "must be a number"),
        ("max_attempts", 2.0, "must be a whole number"),
        ("max_attempts", "3", "must be a whole number"),
    ],
)
def test_a_setting_that_is_no_number_says_so(field: str, value: object, expected: str) -> None:
    # Not a TypeError from comparing a str with an int, deep in a validator.
    with pytest.raises(TypeError, match=f"Policy.{field} {expected}"):
        Policy(**{field: value})
