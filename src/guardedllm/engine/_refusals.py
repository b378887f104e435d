"""What passes over a deployment before anything is sent to it, or ends a call early: the
pre-flight checks, the spend reservation, the rate-limit wait, and their errors, each saying
what happened and what to do."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from guardedllm.engine._guards import report_transition
from guardedllm.engine._phases import acquire, readmit, run_phase
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
from guardedllm.guards import Cause, Mark, Permit, Reservation, RetryAfter
from guardedllm.registry import Deployment
from guardedllm.state.flow import Flow, lockstep

if TYPE_CHECKING:
    from guardedllm.engine._call import Call, Turn
    from guardedllm.engine._guards import Guards

__all__ = [
    "admitted",
    "check_preflight",
    "circuit_open",
    "rate_limited",
    "readmitted",
    "reserve",
    "unavailable",
    "wait_too_long",
]


def reserve(guards: Guards, call: Call, attempt: Turn, *, deposit: bool = False) -> Flow[None]:
    """Hold the worst-case cost of ``attempt`` on every spend budget that applies (the
    reservation is held on the turn from the moment it is made); with ``deposit``, pay the
    request into its deployment's retry budget alongside. One phase of guard operations.
    Raises BudgetExceededError when a budget would overspend (the deposit is then taken back:
    a request that is not sent earns no retry)."""
    ledger = guards.ledger
    name = attempt.deployment.name
    if not ledger.budgets:  # the deposit alone (the in-process hot path: no more flows)
        if deposit:
            yield from guards.retry_budget.deposit_flow(name, guards.now())
        return
    flows: list[Flow[None]] = []
    if ledger.budgets:
        flows.append(
            _reserved(
                attempt,
                ledger.reserve_flow(
                    route=call.plan.requested,
                    key=call.settings.budget_key,
                    amount_usd=attempt.estimate.cost_usd_max,
                    wall_now=guards.wall_now(),
                ),
            )
        )
    deposited: list[float] = []
    if deposit:
        flows.append(_deposited(guards, name, deposited))
    try:
        yield lockstep(*flows)
    except Exception:
        if deposited:
            yield from guards.retry_budget.deposit_flow(name, deposited[0], requests=-1)
        raise


def _reserved(attempt: Turn, reservation: Flow[Reservation]) -> Flow[None]:
    attempt.reservation = yield from reservation


def _deposited(guards: Guards, name: str, deposited: list[float]) -> Flow[None]:
    """The request's deposit; ``deposited`` gets the ``now`` it was made at, to take it back
    at."""
    now = guards.now()
    yield from guards.retry_budget.deposit_flow(name, now)
    deposited.append(now)


def admitted(
    call: Call,
    attempt: Turn,
    mark: Mark | None,
    now: float,
    permit: Permit | None,
    *,
    panic: bool = False,
) -> bool:
    """Whether a first attempt may go, after its admission phase (``_phases.admit``): not
    marked unavailable, and the breaker allowing it. Skipped (recorded on ``call``)
    otherwise; a panic send refused was skipped already, as open."""
    deployment = attempt.deployment
    if mark is not None:
        call.skip(deployment, unavailable(deployment, mark.until - now, mark.reason))
        return False
    assert permit is not None
    report_transition(permit.transition, call.span)
    if not permit.allowed:
        if not panic:
            call.skip(deployment, circuit_open(deployment, permit))
            call.refused_open.append((deployment, permit))
        return False
    return True


def readmitted(guards: Guards, call: Call, attempt: Turn) -> Generator[Step, Outcome | None, bool]:
    """Whether a retry may go: the breaker admits it and the retry budget pays for it (a
    retry the breaker refuses costs the budget nothing: ``_phases.readmit``)."""
    permit, paid = yield from run_phase(guards, readmit(guards, attempt), call)
    report_transition(permit.transition, call.span)
    if not permit.allowed:
        call.reason = "circuit_open"
        return False
    if not paid:
        call.reason = "retry_budget_exhausted"
        return False
    return True


def rate_limited(
    guards: Guards, call: Call, attempt: Turn, *, clock: Callable[[], float]
) -> Generator[Step, Outcome | None, RateLimitedError | None]:
    """Take a request and the attempt's tokens from its deployment's rate limits (the grant is
    held on the turn from the moment it is taken), sleeping within the deadline (on ``clock``)
    for them; the error when the wait would outlast it."""
    deployment = attempt.deployment
    while True:
        decision = (
            guards.run(acquire(guards, attempt))
            if not guards.shared  # in process: no generator for the step (the hot path)
            else (yield from run_phase(guards, acquire(guards, attempt), call))
        )
        if decision.granted:
            return None
        remaining = call.deadline - clock()
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
    committed_usd: float = 0.0,
) -> None:
    """Refuse a deployment the request cannot fit or afford, or whose ``max_tokens`` its
    vendor would refuse, or (``refuse_inexact``) whose estimate is not exact, before anything is
    sent. ``outgrown_window`` is the largest window a vendor already said the prompt does not
    fit: a deployment whose window is no larger is refused too. ``max_cost_usd`` caps the
    whole call: the worst case must fit in what ``committed_usd`` (what the call spent, and
    the worst case of what it has in flight) leaves of it."""
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
    if cap is None:
        return
    left = cap - committed_usd
    if estimate.cost_usd_max > left:
        what = (
            f"${left:.6f} left of the call's ${cap:.6f} cap (max_cost_usd; "
            f"${committed_usd:.6f} already spent or in flight on its other attempts)"
            if committed_usd > 0
            else f"${cap:.6f} cap (max_cost_usd)"
        )
        raise BudgetExceededError(
            f"{deployment.name}: worst-case cost ${estimate.cost_usd_max:.6f} is over the "
            f"{what}. Lower max_tokens, shorten the input, raise the cap, or route to a "
            "cheaper model.",
            cost_usd=estimate.cost_usd_max,
            limit_usd=left,
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
    cause = Cause.decode(permit.cause) if permit.cause else None
    why = f"opened by {cause.describe()}" if cause is not None else "after repeated failures"
    return CircuitOpenError(
        f"{deployment.name}: the circuit breaker is {permit.state.replace('_', '-')}, {why}, "
        "and the deployment answers too few of the calls it is sent for this one to go; it "
        f"lets a probe through{when}. Nothing was sent. Add a fallback deployment on another "
        "provider to keep answering meanwhile.",
        deployment=deployment.name,
        retry_in_s=permit.retry_in_s,
        cause=cause.reason if cause is not None else None,
        rate=cause.rate if cause is not None else None,
        threshold=cause.threshold if cause is not None else None,
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
