"""What the engine makes of an attempt's outcome: the parsed answer or error, what the rate
limiter learns from the vendor's headers, and the settlement of an answered attempt (its cost,
calibration, token correction and spend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardedllm.engine._call import Turn
from guardedllm.engine._steps import Answered, Failed, Outcome, StreamStarted
from guardedllm.errors import GuardedLLMError, redact
from guardedllm.providers.base import Target, WireFormat
from guardedllm.routing import usage_cost
from guardedllm.types import ChatCompletion, Usage

if TYPE_CHECKING:
    from guardedllm.engine._engine import Engine

__all__ = ["account", "learn", "settle"]


def settle(
    engine: Engine, outcome: Outcome | None, wire: WireFormat, target: Target
) -> tuple[ChatCompletion | None, GuardedLLMError | None, int | None]:
    """(parsed response, error, status) for one attempt's outcome."""
    if isinstance(outcome, Failed):
        return None, outcome.error, None
    if isinstance(outcome, StreamStarted):
        return None, None, 200
    if not isinstance(outcome, Answered):  # the driver broke the protocol
        raise TypeError(f"engine expected an attempt outcome, got {outcome!r}")
    if outcome.status >= 300:
        error = wire.parse_error(
            outcome.status, outcome.headers, outcome.body, target, now=engine.wall_clock()
        )
        return None, redact(error, target.api_key), outcome.status
    try:
        return wire.parse_response(outcome.body, target), None, outcome.status
    except GuardedLLMError as exc:
        return None, exc, outcome.status


def learn(engine: Engine, attempt: Turn, outcome: object) -> None:
    """Bring the rate limiter to what the vendor's headers say is left."""
    if isinstance(outcome, (Answered, StreamStarted)):
        deployment = attempt.deployment
        engine.guards.limiter.learn(
            deployment.name,
            outcome.headers,
            rpm=deployment.rpm,
            tpm=deployment.tpm,
            now=engine.clock(),
            wall_now=engine.wall_clock(),
        )


def account(engine: Engine, attempt: Turn, usage: Usage | None) -> float | None:
    """Settle an answered attempt: calibration, rate-limit correction, spend. Returns its
    cost (None when the vendor reported no usage: then the worst case stays spent)."""
    deployment = attempt.deployment
    guards = engine.guards
    cost = usage_cost(deployment, usage) if usage is not None else None
    if usage is not None:
        engine.observe_usage(deployment.name, attempt.estimate, usage)
        guards.limiter.correct(
            deployment.name,
            tpm=deployment.tpm,
            reserved_tokens=attempt.tokens,
            actual_tokens=usage.prompt_tokens + usage.completion_tokens,
            now=engine.clock(),
        )
    if attempt.reservation is not None:
        settled = cost if cost is not None else attempt.reservation.amount_usd
        guards.ledger.settle(attempt.reservation, settled, wall_now=engine.wall_clock())
    return cost
