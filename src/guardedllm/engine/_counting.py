"""Exact input counts from a vendor's count-tokens endpoint, when a policy asks for them."""

from __future__ import annotations

from collections.abc import Callable, Generator

import attrs
import httpx

from guardedllm.engine._steps import Answered, Failed, Outcome, Send, Step
from guardedllm.errors import GuardedLLMError
from guardedllm.estimate import Estimate, with_counted_input
from guardedllm.providers.base import Target, TokenCounter, WireFormat
from guardedllm.registry import Deployment
from guardedllm.routing import Plan, prices_of
from guardedllm.types import ChatRequest

__all__ = ["counted"]


def counted(
    request: ChatRequest,
    *,
    plan: Plan,
    deployment: Deployment,
    estimate: Estimate,
    target: Target,
    wire: WireFormat,
    timeout: float,
    max_body_bytes: int,
    wall_clock: Callable[[], float],
) -> Generator[Step, Outcome | None, Estimate]:
    """The estimate with the input the vendor's count-tokens endpoint reports. When the
    vendor has none, or the count fails, the estimate stands, with a note saying so."""
    if not isinstance(wire, TokenCounter):
        reason = f"{target.provider} has no count-tokens endpoint"
    else:
        count_request = wire.build_count_request(request, target)
        count_request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        outcome = yield Send(
            request=count_request,
            target=target,
            decoder=None,
            timeout_s=timeout,
            max_body_bytes=max_body_bytes,
        )
        try:
            if isinstance(outcome, Failed):
                raise outcome.error
            if not isinstance(outcome, Answered):
                raise TypeError(f"engine expected an answer, got {outcome!r}")
            if outcome.status >= 300:
                raise wire.parse_error(
                    outcome.status,
                    outcome.headers,
                    outcome.body,
                    target,
                    now=wall_clock(),
                )
            tokens = wire.parse_count(outcome.body, target)
        except GuardedLLMError as exc:
            reason = f"the count-tokens call failed ({type(exc).__name__})"
        else:
            exact = with_counted_input(
                estimate,
                tokens,
                prices=prices_of(deployment),
                context_window=deployment.context_window,
                source=f"{target.provider}'s count-tokens endpoint",
            )
            plan.remember(exact)
            return exact
    return attrs.evolve(
        estimate, notes=(*estimate.notes, f"exact count asked for, but {reason}: estimated")
    )
