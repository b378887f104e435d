"""The two decisions taken after planning: escalate to a larger model, send a shadow copy.

Both are pure: the engine passes in the answer (or error), the caller's validator, the number
of shadow copies in flight and a random draw; these functions say what to do and why.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from guardedllm.registry import Deployment
from guardedllm.routing._sticky import position
from guardedllm.types import ChatCompletion

__all__ = [
    "Escalation",
    "EscalationVerdict",
    "ShadowPlan",
    "ShadowVerdict",
    "decide_escalation",
    "sample_shadow",
]

# A caller's check of an answer: True to accept it, False to escalate.
Validator = Callable[[ChatCompletion], bool]


@attrs.frozen(kw_only=True)
class Escalation:
    """Where a call goes when its plan's answer is not good enough, and what counts as that:
    ``on`` holds "error" (every deployment of the plan failed), "length" (the answer stopped
    at its token limit) and "invalid" (the caller's validator rejected it)."""

    deployments: tuple[Deployment, ...]
    on: frozenset[str]
    reason: str


@attrs.frozen(kw_only=True)
class EscalationVerdict:
    escalate: bool
    reason: str


def decide_escalation(
    escalation: Escalation | None,
    *,
    completion: ChatCompletion | None = None,
    error: BaseException | None = None,
    validator: Validator | None = None,
) -> EscalationVerdict:
    """Whether the outcome of a plan (``completion``, or ``error`` when it failed) escalates.

    A validator that raises is a bug in the caller's code; its exception propagates.
    """
    if escalation is None or not escalation.deployments:
        return EscalationVerdict(escalate=False, reason="the route does not escalate")
    target = ", ".join(d.name for d in escalation.deployments)
    if completion is None:
        what = type(error).__name__ if error is not None else "no answer"
        if "error" in escalation.on:
            return EscalationVerdict(escalate=True, reason=f"{what}: escalating to {target}")
        return EscalationVerdict(escalate=False, reason=f"{what}, but escalate_on omits error")
    cut = any(choice.finish_reason == "length" for choice in completion.choices)
    if cut and "length" in escalation.on:
        return EscalationVerdict(
            escalate=True,
            reason=f'the answer was cut at its token limit (finish_reason "length"): '
            f"escalating to {target}",
        )
    if validator is not None and "invalid" in escalation.on and not validator(completion):
        return EscalationVerdict(
            escalate=True, reason=f"the validator rejected the answer: escalating to {target}"
        )
    return EscalationVerdict(escalate=False, reason="the answer was accepted")


@attrs.frozen(kw_only=True)
class ShadowPlan:
    """A candidate that gets a background copy of ``sample`` of the route's calls, at most
    ``max_in_flight`` at once. The copy never changes the caller's result, latency or error."""

    route: str
    deployment: Deployment
    sample: float
    max_in_flight: int


@attrs.frozen(kw_only=True)
class ShadowVerdict:
    send: bool
    reason: str
    full: bool = False  # sampled, but max_in_flight copies were already running


def sample_shadow(
    shadow: ShadowPlan | None, *, key: str | None, draw: float | None, in_flight: int
) -> ShadowVerdict:
    """Whether this call sends a shadow copy. Sticky by ``key`` (the same key is always in or
    always out of the sample), else by ``draw`` (a random number in [0, 1)); with neither,
    no copy is sent. A full ``max_in_flight`` skips the copy rather than queueing it."""
    if shadow is None:
        return ShadowVerdict(send=False, reason="the route has no shadow")
    if key is not None:
        point, how = position(f"{shadow.route}/shadow", key), "the call's key"
    elif draw is not None:
        point, how = draw, "the random draw"
    else:
        return ShadowVerdict(send=False, reason="no key and no random draw to sample by")
    if point >= shadow.sample:
        return ShadowVerdict(send=False, reason=f"{how} is outside the {shadow.sample:g} sample")
    if in_flight >= shadow.max_in_flight:
        return ShadowVerdict(
            send=False,
            full=True,
            reason=f"{in_flight} shadow copies in flight, the most allowed "
            f"({shadow.max_in_flight}): skipped so shadows cannot pile up",
        )
    return ShadowVerdict(
        send=True,
        reason=f"{how} is inside the {shadow.sample:g} sample: copy to {shadow.deployment.name}",
    )
