"""What the engine makes of an attempt's outcome: the parsed answer or error, what the rate
limiter learns from the vendor's headers, and the settlement of an answered attempt (its cost,
calibration, token correction and spend)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from guardedllm.engine._call import Turn
from guardedllm.engine._embeddings import embedding_wire
from guardedllm.engine._steps import Answered, Failed, Outcome, StreamStarted
from guardedllm.errors import GuardedLLMError, redact
from guardedllm.guards import Reservation
from guardedllm.guards._vendor_limits import read_limits
from guardedllm.guards.spend import MAX_BUDGET_USD
from guardedllm.providers.base import Target, WireFormat
from guardedllm.registry import Deployment
from guardedllm.routing import usage_cost
from guardedllm.state.flow import Flow, lockstep
from guardedllm.types import ChatCompletion, CreateEmbeddingResponse, EmbeddingRequest, Usage

if TYPE_CHECKING:
    from guardedllm.engine._guards import Guards
    from guardedllm.estimate import Calibrator

__all__ = ["account", "learn", "settle", "stream_cost"]


def settle(
    outcome: Outcome | None,
    wire: WireFormat,
    target: Target,
    *,
    wall_clock: Callable[[], float],
    embedding: EmbeddingRequest | None = None,
) -> tuple[ChatCompletion | CreateEmbeddingResponse | None, GuardedLLMError | None, int | None]:
    """(parsed response, error, status) for one attempt's outcome (``wall_clock`` dates a
    Retry-After given as a date). With ``embedding`` (an embeddings call), a 2xx body is read
    as an embeddings answer (the wire format is an ``EmbeddingWire``: ``_prepare`` checked).

    Every error born of a vendor's answer before a stream is committed passes here (an error
    status, a 2xx body that holds an error or does not parse, a stream's error event or garbage
    before its first chunk, which the driver hands over as ``Failed``), and leaves with the
    attempt's key masked wherever the vendor quoted it: in the message, the body, the excerpt,
    and so in ``attempts`` and the spans, which are made from it. After the first chunk,
    ``StreamTracker.interrupted`` does the same."""
    if isinstance(outcome, Failed):
        return None, redact(outcome.error, target.api_key), None
    if isinstance(outcome, StreamStarted):
        return None, None, 200
    if not isinstance(outcome, Answered):  # the driver broke the protocol
        raise TypeError(f"engine expected an attempt outcome, got {outcome!r}")
    if outcome.status >= 300:
        error = wire.parse_error(
            outcome.status, outcome.headers, outcome.body, target, now=wall_clock()
        )
        return None, redact(error, target.api_key), outcome.status
    try:
        if embedding is not None:
            parsed = embedding_wire(wire, target).parse_embeddings(outcome.body, target, embedding)
            return parsed, None, outcome.status
        return wire.parse_response(outcome.body, target), None, outcome.status
    except GuardedLLMError as exc:
        return None, redact(exc, target.api_key), outcome.status


def learn(guards: Guards, attempt: Turn, outcome: object) -> Flow[None] | None:
    """The flow of guard operations (``guardedllm.state.flow``) that brings the rate limiter
    to what the vendor's headers say is left; None when they say nothing."""
    if not isinstance(outcome, (Answered, StreamStarted)):
        return None
    limits = read_limits(outcome.headers, wall_now=guards.wall_now())
    if limits.requests is None and limits.tokens is None:
        return None
    deployment = attempt.deployment
    return guards.limiter.learn_limits_flow(
        deployment.name, limits, rpm=deployment.rpm, tpm=deployment.tpm, now=guards.now()
    )


def account(
    guards: Guards, calibrator: Calibrator | None, attempt: Turn, usage: Usage | None
) -> Flow[float | None]:
    """Settle an answered attempt: calibration (learning from the vendor's count of a request
    we estimated), rate-limit correction, spend, the last two side by side. Returns its cost
    (None when the vendor reported no usage: then the worst case stays spent).

    The spend reservation is settled here exactly once, whatever happens: it is taken off the
    attempt first (so ``Turn.close`` never releases it too), and settled even when the cost
    could not be worked out (to the worst case) or the correction fails. A reservation left
    held would shrink its budget until the window ends. The attempt's rate-limit grant is
    settled here too: corrected to the usage, or kept whole when there is none (``Turn.close``
    gives nothing back). ``calibrator`` None: the usage is our own estimate (a Gemini
    embeddings answer has none), which calibration must not learn from, or it would learn its
    own margin back, compounding."""
    deployment = attempt.deployment
    reservation, attempt.reservation = attempt.reservation, None
    attempt.grant = None
    cost: float | None = None
    flows: list[Flow[None]] = []
    try:
        if usage is not None:
            cost = usage_cost(deployment, usage)
            estimate = attempt.estimate
            if calibrator is not None:
                calibrator.observe(
                    deployment.name,
                    counted=estimate.counted_tokens,
                    estimated=estimate.input_tokens,
                    actual=usage.prompt_tokens,
                )
            flows.append(
                guards.limiter.correct_flow(
                    deployment.name,
                    tpm=deployment.tpm,
                    reserved_tokens=attempt.tokens,
                    actual_tokens=usage.prompt_tokens + usage.completion_tokens,
                    now=guards.now(),
                )
            )
    except Exception:
        if reservation is not None:
            yield from guards.ledger.settle_flow(
                reservation, reservation.amount_usd, wall_now=guards.wall_now()
            )
        raise
    if reservation is not None:
        flows.append(
            guards.ledger.settle_flow(
                reservation, _settled_usd(cost, reservation), wall_now=guards.wall_now()
            )
        )
    if len(flows) == 1:
        yield from flows[0]
    elif flows:
        yield lockstep(*flows)
    return cost


def stream_cost(deployment: Deployment, usage: Usage | None) -> float | None:
    """What ``account`` will return for ``usage``, worked out without the guards (for a
    stream whose settlement runs later, off the event loop)."""
    return None if usage is None else usage_cost(deployment, usage)


def _settled_usd(cost: float | None, reservation: Reservation) -> float:
    """What a reservation settles to: the cost, within what the ledger counts exactly (a
    price in the registry can still make a sane count cost more); the worst case reserved when
    the cost is unknown."""
    if cost is None or not math.isfinite(cost):
        return reservation.amount_usd
    return min(max(cost, 0.0), MAX_BUDGET_USD)
