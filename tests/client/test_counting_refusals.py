"""What the guards cannot count or the vendor would refuse is not sent, through every driver:
a ``max_tokens`` above a deployment's output limit (unless the policy clamps it) and, when the
policy asks, an estimate that is not exact."""

from __future__ import annotations

import pytest

from guardedllm import Policy
from guardedllm.errors import InexactEstimateError, MaxTokensExceededError
from guardedllm.testing import FakeProvider
from support import Call

MESSAGES = [{"role": "user", "content": "Hello there"}]


def test_max_tokens_above_the_output_limit_is_refused_before_sending(
    call: Call, fake_provider: FakeProvider
) -> None:
    with pytest.raises(MaxTokensExceededError, match="max_tokens 200000 is above") as info:
        call(model="gpt-4o-mini", messages=MESSAGES, max_tokens=200_000)
    assert (info.value.max_tokens, info.value.max_output_tokens) == (200_000, 16_384)
    assert "clamp_max_tokens" in str(info.value)
    assert fake_provider.requests == []


def test_a_route_moves_on_to_a_deployment_whose_limit_holds_it(
    call: Call, fake_provider: FakeProvider
) -> None:
    # llama allows 2,048 output tokens, gpt-4o-mini 16,384: 10,000 fits only the second.
    response = call(
        model="support",
        messages=MESSAGES,
        max_tokens=10_000,
        policy=Policy(fallback=["llama", "gpt-4o-mini"]),
    )
    assert [(a.deployment, a.outcome) for a in response.guard.attempts] == [
        ("llama", "skipped"),
        ("gpt-4o-mini", "ok"),
    ]
    assert response.guard.attempts[0].error_type == "MaxTokensExceededError"
    assert [r.json["max_completion_tokens"] for r in fake_provider.requests] == [10_000]


def test_clamping_sends_the_deployments_limit(call: Call, fake_provider: FakeProvider) -> None:
    response = call(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=200_000,
        policy=Policy(clamp_max_tokens=True),
    )
    assert response.guard.deployment == "gpt-4o-mini"
    (sent,) = fake_provider.requests
    assert sent.json["max_completion_tokens"] == 16_384


def test_an_inexact_estimate_is_refused_when_the_policy_says_so(
    call: Call, fake_provider: FakeProvider
) -> None:
    with pytest.raises(InexactEstimateError, match="not exact") as info:
        call(model="claude-haiku", messages=MESSAGES, policy=Policy(refuse_inexact=True))
    assert info.value.deployment == "claude-haiku"
    assert fake_provider.requests == []
    # An exact estimate (OpenAI's own tokenizer) goes through under the same policy.
    response = call(model="gpt-4o-mini", messages=MESSAGES, policy=Policy(refuse_inexact=True))
    assert response.guard.deployment == "gpt-4o-mini"
