"""What the engine does with a failed attempt: tell every guard, then decide between
retrying here (after how long), moving on, or ending the call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardedllm import defaults
from guardedllm.engine._call import Call, Turn
from guardedllm.engine._classify import breaker_outcome, classify
from guardedllm.engine._refusals import wait_too_long
from guardedllm.errors import GuardedLLMError, ModelNotFoundError, ProviderError, RateLimitedError

if TYPE_CHECKING:
    from guardedllm.engine._engine import Engine

__all__ = ["backoff", "failed", "note_failure"]


def failed(
    engine: Engine,
    call: Call,
    attempt: Turn,
    *,
    number: int,
    error: GuardedLLMError,
    status: int | None,
    latency: float,
) -> float | None:
    """Record a failed attempt; the backoff before retrying here, or None to move on.
    Raises when the call must end now."""
    now = engine.clock()
    note_failure(engine, call, attempt, number=number, error=error, status=status, latency=latency)
    verdict = classify(error, engine.registry.provider_of(attempt.deployment).outcomes)
    if (
        verdict == "fail"
        and call.settings.fallback_on_client_error
        and isinstance(error, ProviderError)
    ):
        verdict = "fallback"  # the policy lets another vendor try what this one refused
    if verdict == "fail":
        raise error
    remaining = call.deadline - now
    if remaining <= 0:  # nothing else can be tried in time
        raise call.deadline_error()
    if verdict == "fallback" or number == call.settings.max_attempts:
        return None
    wait = backoff(engine, number, error)
    if wait < remaining:
        return wait
    retry_after = error.retry_after if isinstance(error, ProviderError) else None
    if retry_after is not None and retry_after >= remaining:
        if attempt.deployment is call.trying[-1]:
            raise wait_too_long(error, retry_after, remaining)
        call.reason = "retry_after_exceeds_deadline"
    return None  # no time to retry here; the next deployment may still answer


def note_failure(
    engine: Engine,
    call: Call,
    attempt: Turn,
    *,
    number: int,
    error: GuardedLLMError,
    status: int | None,
    latency: float,
) -> None:
    """What every guard learns from a failed attempt."""
    now = engine.clock()
    name = attempt.deployment.name
    attempt.record_permit(engine.guards, breaker_outcome(error), latency, now, call.span)
    engine.guards.limiter.correct(
        name, tpm=attempt.deployment.tpm, reserved_tokens=attempt.tokens, actual_tokens=0,
        now=now,
    )  # fmt: skip
    call.record(attempt.target, number, status=status, latency=latency, error=error)
    if isinstance(error, ModelNotFoundError):
        engine.guards.marks.mark(
            name, until=now + defaults.UNAVAILABLE_S, reason=str(error), now=now
        )
    if isinstance(error, RateLimitedError) and error.retry_after:
        engine.guards.limiter.pause(name, until=now + error.retry_after, now=now)


def backoff(engine: Engine, retry: int, error: GuardedLLMError) -> float:
    """Full-jitter exponential backoff, floored by the vendor's Retry-After."""
    ceiling = min(defaults.BACKOFF_CAP_S, defaults.BACKOFF_BASE_S * 2.0 ** (retry - 1))
    wait = engine.random() * ceiling
    retry_after = error.retry_after if isinstance(error, ProviderError) else None
    return max(wait, retry_after) if retry_after is not None else wait
