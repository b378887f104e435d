"""What the engine does with a failed attempt: tell every guard, then decide between
retrying here (after how long), moving on, or ending the call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from guardedllm import defaults
from guardedllm.engine._call import Call, Turn
from guardedllm.engine._classify import breaker_outcome, classify
from guardedllm.engine._outcomes import learn
from guardedllm.engine._refusals import wait_too_long
from guardedllm.errors import GuardedLLMError, ModelNotFoundError, ProviderError, RateLimitedError
from guardedllm.guards import RetryAfter
from guardedllm.state.flow import Flow, lockstep

if TYPE_CHECKING:
    from guardedllm.engine._guards import Guards
    from guardedllm.engine._steps import Outcome

__all__ = ["backoff", "failed", "note_failure", "vendor_wait"]


def failed(
    guards: Guards,
    call: Call,
    attempt: Turn,
    outcome: Outcome | None,
    *,
    number: int,
    error: GuardedLLMError,
    status: int | None,
    latency: float,
    overrides: Mapping[int, str] | None,
    max_retry_after_s: float,
    clock: Callable[[], float],
    random: Callable[[], float],
) -> Flow[float | None]:
    """Record a failed attempt (its ``outcome`` and ``error``); the backoff before retrying
    here, or None to move on. Raises when the call must end now. One phase of guard
    operations: the vendor's headers first (as before), then every other guard side by side.
    ``overrides`` is the provider's outcome table, ``clock`` the engine's (for the deadline),
    ``random`` its source of jitter."""
    learning = learn(guards, attempt, outcome)
    if learning is not None:
        yield from learning
    retry_after = yield from note_failure(
        guards,
        call,
        attempt,
        number=number,
        error=error,
        status=status,
        latency=latency,
        max_retry_after_s=max_retry_after_s,
    )
    verdict = classify(error, overrides)
    if (
        verdict == "fail"
        and call.settings.fallback_on_client_error
        and isinstance(error, ProviderError)
    ):
        verdict = "fallback"  # the policy lets another vendor try what this one refused
    if verdict == "fail":
        raise error
    remaining = call.deadline - clock()
    if remaining <= 0:  # nothing else can be tried in time
        raise call.deadline_error()
    if verdict == "fallback" or number == call.settings.max_attempts:
        return None
    if len(call.trying) > 1 and (yield from _browning(guards, attempt)):
        call.reason = "brownout"
        return None  # the next deployment's first attempt, free of this one's retry budget
    wait = backoff(random, number, retry_after)
    if wait < remaining:
        return wait
    if retry_after is not None and retry_after.wait_s >= remaining:
        if attempt.deployment is call.trying[-1]:
            raise wait_too_long(error, retry_after, remaining)
        call.reason = "retry_after_exceeds_deadline"
    return None  # no time to retry here; the next deployment may still answer


def note_failure(
    guards: Guards,
    call: Call,
    attempt: Turn,
    *,
    number: int,
    error: GuardedLLMError,
    status: int | None,
    latency: float,
    max_retry_after_s: float,
) -> Flow[RetryAfter | None]:
    """What every guard learns from a failed attempt, side by side. Returns the vendor's
    Retry-After as the guards honour it (None: the vendor asked for no wait). Part of a phase
    of guard operations: ``now`` is the guards' clock. The call records the failure when this
    is called, not when the flow runs (a hedge's loser beside a stream is settled off the
    call's path: ``_hedge.race``)."""
    call.record(attempt.target, number, status=status, latency=latency, error=error)
    retry_after = vendor_wait(call, attempt.deployment.name, error, cap_s=max_retry_after_s)
    return _failure_learned(
        guards, call, attempt, error=error, retry_after=retry_after, latency=latency
    )


def _failure_learned(
    guards: Guards,
    call: Call,
    attempt: Turn,
    *,
    error: GuardedLLMError,
    retry_after: RetryAfter | None,
    latency: float,
) -> Flow[RetryAfter | None]:
    now = guards.now()
    name = attempt.deployment.name
    flows: list[Flow[object]] = [
        attempt.record_permit(guards, breaker_outcome(error), latency, now, call.span),
        attempt.settle_grant(guards, now),
    ]
    if isinstance(error, ModelNotFoundError):
        flows.append(_missing(guards, name, error, now))
    if isinstance(error, RateLimitedError) and retry_after is not None and retry_after.wait_s:
        flows.append(guards.limiter.pause_flow(name, retry_after, now=now))
    yield lockstep(*flows)
    return retry_after


def _browning(guards: Guards, attempt: Turn) -> Flow[bool]:
    """Whether ``attempt``'s deployment fails so large a share of its calls
    (``defaults.BROWNOUT_FAILURE_RATE`` of at least ``defaults.BROWNOUT_MINIMUM_CALLS`` in
    its breaker's window) that a call with more than one deployment should not retry there:
    a retry is no likelier to answer than the next deployment's first attempt, which adds no
    load to the struggling upstream and costs its retry budget nothing; and a call that
    already had that second chance on another upstream has had its share. A plan of one
    deployment still retries (its retry budget bounds it): the retry is its only second
    chance."""
    snapshot = yield from guards.breaker.snapshot_flow(attempt.deployment.name, guards.now())
    enough = snapshot.calls >= defaults.BROWNOUT_MINIMUM_CALLS
    return enough and snapshot.failure_rate >= defaults.BROWNOUT_FAILURE_RATE


def _missing(guards: Guards, name: str, error: ModelNotFoundError, now: float) -> Flow[None]:
    """A 404 model-not-found from ``name``: marked unavailable once it is not a stray (see
    ``guards.marks``): ``defaults.UNAVAILABLE_STRIKES`` of them within
    ``defaults.UNAVAILABLE_S``, outnumbering every other answer in its breaker's window."""
    until = now + defaults.UNAVAILABLE_S
    strikes = yield from guards.marks.strike_flow(name, expires_at=until, now=now)
    if strikes < defaults.UNAVAILABLE_STRIKES:
        return
    if (yield from guards.breaker.snapshot_flow(name, now)).calls >= strikes:
        return  # it answers more than it 404s: flaky, not missing
    yield from guards.marks.mark_flow(name, until=until, reason=str(error), now=now)


def vendor_wait(
    call: Call, deployment: str, error: GuardedLLMError, *, cap_s: float
) -> RetryAfter | None:
    """The wait ``error``'s vendor asked for (``Retry-After``, ``retry-after-ms``, Gemini's
    ``retryDelay``) as the guards honour it: as asked up to ``[defaults] max_retry_after_s``,
    and that long when it asked for more, which is counted. Every use of the wait — the backoff
    floor, the deadline check, the pause of the deployment — takes this one."""
    asked = error.retry_after if isinstance(error, ProviderError) else None
    retry_after = RetryAfter.honour(asked, cap_s=cap_s)
    if retry_after is not None and retry_after.capped:
        call.span.retry_after_capped(deployment)
    return retry_after


def backoff(random: Callable[[], float], retry: int, retry_after: RetryAfter | None) -> float:
    """Full-jitter exponential backoff, floored by the vendor's Retry-After as honoured."""
    ceiling = min(defaults.BACKOFF_CAP_S, defaults.BACKOFF_BASE_S * 2.0 ** (retry - 1))
    wait = random() * ceiling
    return max(wait, retry_after.wait_s) if retry_after is not None else wait
