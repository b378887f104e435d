"""Escalation and shadow decisions, on values alone."""

from __future__ import annotations

import pytest
from tests.routing._registry import registry

from guardedllm.errors import ServerError
from guardedllm.routing import Escalation, ShadowPlan, decide_escalation, sample_shadow
from guardedllm.types import ChatCompletion, ChatCompletionMessage, Choice

BIG = registry().deployment("big")
ALL = frozenset({"error", "length", "invalid"})


def escalation(on: frozenset[str] = ALL) -> Escalation:
    return Escalation(deployments=(BIG,), on=on, reason="escalates to big")


def completion(finish_reason: str = "stop", content: str = "ok") -> ChatCompletion:
    return ChatCompletion(
        id="c",
        created=0,
        model="m",
        usage=None,
        choices=(
            Choice(
                index=0,
                message=ChatCompletionMessage(content=content),
                finish_reason=finish_reason,  # type: ignore[arg-type]
            ),
        ),
    )


def test_no_escalation_configured() -> None:
    assert not decide_escalation(None, error=ServerError("x")).escalate


def test_escalates_on_error() -> None:
    verdict = decide_escalation(escalation(), error=ServerError("boom"))
    assert verdict.escalate
    assert "ServerError" in verdict.reason
    assert not decide_escalation(escalation(frozenset({"length"})), error=ServerError("x")).escalate


def test_escalates_on_truncation() -> None:
    assert decide_escalation(escalation(), completion=completion("length")).escalate
    assert not decide_escalation(
        escalation(frozenset({"error"})), completion=completion("length")
    ).escalate


def test_escalates_when_the_validator_rejects() -> None:
    def reject(answer: ChatCompletion) -> bool:
        return answer.choices[0].message.content == "good"

    assert decide_escalation(escalation(), completion=completion(), validator=reject).escalate
    accepted = decide_escalation(
        escalation(), completion=completion(content="good"), validator=reject
    )
    assert not accepted.escalate
    assert accepted.reason == "the answer was accepted"


def test_a_raising_validator_propagates() -> None:
    def broken(answer: ChatCompletion) -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        decide_escalation(escalation(), completion=completion(), validator=broken)


def shadow(sample: float = 0.5, max_in_flight: int = 2) -> ShadowPlan:
    return ShadowPlan(route="r", deployment=BIG, sample=sample, max_in_flight=max_in_flight)


def test_shadow_sampling_by_draw_and_bound() -> None:
    assert sample_shadow(shadow(), key=None, draw=0.1, in_flight=0).send
    assert not sample_shadow(shadow(), key=None, draw=0.7, in_flight=0).send
    full = sample_shadow(shadow(), key=None, draw=0.1, in_flight=2)
    assert not full.send
    assert "pile up" in full.reason
    assert not sample_shadow(shadow(), key=None, draw=None, in_flight=0).send
    assert not sample_shadow(None, key="k", draw=0.0, in_flight=0).send


def test_shadow_sampling_is_sticky_by_key_and_near_the_rate() -> None:
    verdicts = [
        sample_shadow(shadow(0.2), key=f"u{n}", draw=None, in_flight=0) for n in range(5000)
    ]
    assert 900 < sum(v.send for v in verdicts) < 1100
    assert [v.send for v in verdicts[:50]] == [
        sample_shadow(shadow(0.2), key=f"u{n}", draw=None, in_flight=0).send for n in range(50)
    ]
