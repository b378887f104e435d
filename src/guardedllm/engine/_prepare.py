"""Everything decided about a deployment before its first send: its target and wire format,
the estimate (counted by the vendor if the policy asks), the pre-flight checks (context window,
output limit, inexact estimates, the cost cap, a window a vendor already outgrew), the HTTP
request (its ``max_tokens`` clamped when the policy says so), and the spend reservation."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import attrs

from guardedllm.engine._call import Call, Turn
from guardedllm.engine._counting import counted
from guardedllm.engine._embeddings import check_batch, embedding_wire
from guardedllm.engine._phases import run_phase
from guardedllm.engine._refusals import check_preflight, reserve
from guardedllm.engine._steps import Outcome, Step
from guardedllm.errors import (
    AuthenticationError,
    BudgetExceededError,
    ContextWindowExceededError,
    InvalidRequestError,
)
from guardedllm.types import ChatRequest

if TYPE_CHECKING:
    from guardedllm.engine._engine import Engine

__all__ = ["REFUSALS", "prepare"]

# The refusals that pass over a deployment before anything is sent to it: another deployment
# may fit, afford or express the request, or hold a key that is set.
REFUSALS = (
    InvalidRequestError,  # MaxTokensExceededError, ThinkingBudgetError and the like among them
    AuthenticationError,
    ContextWindowExceededError,
    BudgetExceededError,
)


def prepare(
    engine: Engine,
    call: Call,
    request: ChatRequest,
    attempt: Turn,
    *,
    quiet: bool = False,
    count: bool = True,
    deposit: bool = False,
    in_flight_usd: float = 0.0,
) -> Generator[Step, Outcome | None, bool]:
    """Everything decided before the first send: target, estimate (counted by the vendor
    if asked), pre-flight checks, the HTTP request, the spend reservation (and, with
    ``deposit``, the request's deposit in the retry budget, in the same state step). False
    when the deployment is refused (recorded on ``call``). ``in_flight_usd`` is the worst case
    of the attempt this one would run beside (a hedge's primary): it draws on the cap too."""
    deployment = attempt.deployment
    try:
        attempt.target = engine.target(deployment)
        attempt.wire = engine.wire(attempt.target.kind)
        estimate = call.plan.estimate(deployment)
        attempt.timeout_cap = call.settings.attempt_timeout(
            engine.registry.provider_of(deployment).timeout_s, engine.registry.defaults
        )
        if call.settings.exact_tokens and not estimate.exact and request.embedding is not None:
            raise InvalidRequestError(
                f"{deployment.name}: the policy asks for exact token counts (exact_tokens), "
                "and no vendor counts an embeddings call's tokens before it is made; drop "
                "exact_tokens for embeddings, or route them to an OpenAI-kind provider."
            )
        if count and call.settings.exact_tokens and not estimate.exact:
            estimate = yield from counted(
                request,
                plan=call.plan,
                deployment=deployment,
                estimate=estimate,
                target=attempt.target,
                wire=attempt.wire,
                timeout=min(attempt.timeout_cap, max(call.deadline - engine.clock(), 1e-3)),
                max_body_bytes=engine.max_body_bytes,
                wall_clock=engine.wall_clock,
            )
        attempt.estimate = estimate
        attempt.tokens = estimate.input_tokens + estimate.max_output_tokens
        call.span.set_estimate(estimate)
        if request.embedding is not None:  # its own limits first: they say what to split
            embedding_wire(attempt.wire, attempt.target)
            check_batch(
                deployment,
                attempt.target.kind,
                call.plan.counts.items(deployment.tokenizer),
                estimate,
            )
        check_preflight(
            deployment,
            estimate,
            call.settings.max_cost_usd,
            max_tokens=request.max_tokens,
            clamp_max_tokens=call.settings.clamp_max_tokens,
            refuse_inexact=call.settings.refuse_inexact,
            outgrown_window=call.outgrown_window,
            committed_usd=call.committed_usd + in_flight_usd,
        )
        sent = (  # clamped to the deployment's limit (the policy said so, or it is refused)
            request
            if estimate.fits_output
            else attrs.evolve(request, max_tokens=deployment.max_output_tokens)
        )
        attempt.http_request = attempt.wire.build_request(sent, attempt.target)
        guards = engine.guards
        if deposit or guards.ledger.budgets:
            reservation = reserve(guards, call, attempt, deposit=deposit)
            if engine.inline:
                guards.run(reservation)
            else:
                yield from run_phase(guards, reservation, call)
    except REFUSALS as refusal:
        if not quiet:  # a hedge that cannot go is no step of the plan
            call.skip(deployment, refusal)
        return False
    if request.extra_headers:
        attempt.http_request.headers.update(request.extra_headers)
    return True
