"""What passes over a deployment before anything is sent to it, or ends a call early: the
pre-flight checks, the spend reservation, the rate-limit wait, and their errors, each saying
what happened and what to do."""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING

from guardedllm.engine._phases import acquire
from guardedllm.engine._steps import Outcome, Sleep, Step
from guardedllm.errors import (
    BudgetExceededError,
    CircuitOpenError,
    ContextWindowExceededError,
    GuardedLLMError,
    InexactEstimateError,
    MaxTokensExceededError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
)
from guardedllm.estimate import Estimate
from guardedllm.guards import Permit, RetryAfter
from guardedllm.registry import Deployment

if TYPE_CHECKING:
    from guardedllm.engine._call import Call, Turn
    from guardedllm.engine._engine import Engine
    from guardedllm.engine._guards import Guards

__all__ = [
    "check_preflight",
    "circuit_open",
    "rate_limited",
    "reserve",
    "unavailable",
    "wait_too_long",
]


def reserve(guards: Guards, call: Call, attempt: Turn, *, deposit: bool = False) -> None:
    """Hold the worst-case cost of ``attempt`` on every spend budget that applies (the
    reservation is held on the turn from the moment it is made); with ``deposit``, then pay
    the request into its deployment's retry budget. One phase of guard operations. Raises
    BudgetExceededError when a budget would overspend (nothing is then deposited)."""
    ledger = guards.ledger
    if ledger.budgets:
        attempt.reservation = ledger.reserve(
            route=call.plan.requested,
            key=call.settings.budget_key,
            amount_usd=attempt.estimate.cost_usd_max,
            wall_now=guards.wall_now(),
        )
    if deposit:
        guards.retry_budget.deposit(attempt.deployment.name, guards.now())


def rate_limited(
    engine: Engine, call: Call, attempt: Turn
) -> Generator[Step, Outcome | None, RateLimitedError | None]:
    """Take a request and the attempt's tokens from its deployment's rate limits (the grant is
    held on the turn from the moment it is taken), sleeping within the deadline for them; the
    error when the wait would outlast it."""
    deployment = attempt.deployment
    while True:
        decision = (
            acquire(engine.guards, attempt)
            if engine.inline
            else (yield from engine.state(partial(acquire, engine.guards, attempt)))
        )
        if decision.granted:
            return None
        remaining = call.deadline - engine.clock()
        if decision.wait_s >= remaining:
            return decision.error(deployment=deployment.name, deadline_left_s=remaining)
        yield Sleep(seconds=decision.wait_s)


def check_preflight(
    deployment: Deployment,
    estimate: Estimate,
    max_cost_usd: float | None,
    *,
    max_tokens: int | None = None,
    clamp_max_tokens: bool = False,
    refuse_inexact: bool = False,
    outgrown_window: int = 0,
) -> None:
    """Refuse a deployment the request cannot fit or afford, or whose ``max_tokens`` its
    vendor would refuse, or (``refuse_inexact``) whose estimate is not exact, before anything is
    sent. ``outgrown_window`` is the largest window a vendor already said the prompt does not
    fit: a deployment whose window is no larger is refused too."""
    if outgrown_window and deployment.context_window <= outgrown_window:
        raise ContextWindowExceededError(
            f"{deployment.name}: its {deployment.context_window}-token context window is no "
            f"larger than the {outgrown_window} tokens a vendor already said this prompt does "
            "not fit. Shorten the messages, or route to a model with a larger window.",
            input_tokens=estimate.input_tokens,
            context_window=deployment.context_window,
        )
    if not estimate.fits_context:
        raise ContextWindowExceededError(
            f"{deployment.name}: {estimate.input_tokens} input tokens + "
            f"{estimate.max_output_tokens} reserved for output exceed the "
            f"{deployment.context_window}-token context window. Shorten the messages, "
            "lower max_tokens, or route to a model with a larger window.",
            input_tokens=estimate.input_tokens,
            context_window=deployment.context_window,
        )
    if max_tokens is not None and not estimate.fits_output and not clamp_max_tokens:
        raise MaxTokensExceededError(
            f"{deployment.name}: max_tokens {max_tokens} is above its max_output_tokens "
            f"{deployment.max_output_tokens}, which the vendor would refuse. Lower max_tokens, "
            "route to a model with a larger output limit, or pass "
            "Policy(clamp_max_tokens=True) to send the deployment's limit instead.",
            deployment=deployment.name,
            max_tokens=max_tokens,
            max_output_tokens=deployment.max_output_tokens,
        )
    if refuse_inexact and not estimate.exact:
        why = "; ".join(estimate.notes) or "its tokenizer is a stand-in"
        raise InexactEstimateError(
            f"{deployment.name}: its estimate is not exact ({why}), and the policy refuses "
            "inexact estimates (refuse_inexact). Pass Policy(exact_tokens=True) to have the "
            "vendor count the input, or drop refuse_inexact.",
            deployment=deployment.name,
        )
    cap = max_cost_usd
    if cap is not None and estimate.cost_usd_max > cap:
        raise BudgetExceededError(
            f"{deployment.name}: worst-case cost ${estimate.cost_usd_max:.6f} is over the "
            f"${cap:.6f} cap (max_cost_usd). Lower max_tokens, shorten the input, raise "
            "the cap, or route to a cheaper model.",
            cost_usd=estimate.cost_usd_max,
            limit_usd=cap,
        )


def unavailable(deployment: Deployment, left_s: float, reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{deployment.name}: marked unavailable for {left_s:.0f} s more after the provider "
        f"said the model does not exist ({reason.splitlines()[0][:200]}); passed over without "
        "sending. Fix the model id, or run `guardedllm smoke` for this environment.",
        deployment=deployment.name,
    )


def circuit_open(deployment: Deployment, permit: Permit) -> CircuitOpenError:
    when = f" in {permit.retry_in_s:.1f} s" if permit.retry_in_s is not None else " soon"
    return CircuitOpenError(
        f"{deployment.name}: the circuit breaker is {permit.state.replace('_', '-')} after "
        f"repeated failures; it lets a probe through{when}. Nothing was sent. Add a fallback "
        "deployment on another provider to keep answering meanwhile.",
        deployment=deployment.name,
        retry_in_s=permit.retry_in_s,
    )


def wait_too_long(
    error: GuardedLLMError, retry_after: RetryAfter, remaining: float
) -> RateLimitedError:
    """The error for a vendor wait past the deadline: ``retry_after`` is the wait kept (the
    vendor's, or the cap when it asked for more), and the error's ``retry_after``."""
    status = error.status if isinstance(error, ProviderError) else None
    deployment = error.deployment if isinstance(error, ProviderError) else None
    capped = (
        f" (cut to {retry_after.wait_s:g} s: [defaults] max_retry_after_s)"
        if retry_after.capped
        else ""
    )
    limited = RateLimitedError(
        f"{deployment}: the provider asked to wait {retry_after.asked_s:g} s{capped}, longer "
        f"than the {remaining:.0f} s left of the deadline, so the call failed at once. Retry "
        "later, raise deadline_s, or add a fallback deployment.",
        status=status,
        retry_after=retry_after.wait_s,
        deployment=deployment,
    )
    limited.__cause__ = error
    return limited
