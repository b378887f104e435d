"""Hedging: when a deployment's first attempt is slow, send the call to the next deployment of
the plan as well, and keep whichever answers first (Dean and Barroso, "The Tail at Scale").

Opt-in per policy (``Policy(hedge_after_s=...)``): after a fixed delay, or after the
deployment's recent p95 latency. A hedge is a retry in disguise, so it draws on the hedged
deployment's retry budget, and it goes only where the guards would let a first attempt go
(no unavailable mark, breaker admitting, pre-flight and spend checks passing, rate limit free
now). Streams are not hedged: their commit point is the first chunk, not the answer.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING

from guardedllm import defaults
from guardedllm.engine._attempt import attempt_send, start_attempt_span
from guardedllm.engine._call import Call, Turn
from guardedllm.engine._failures import note_failure
from guardedllm.engine._guards import report_transition
from guardedllm.engine._outcomes import account, learn, settle
from guardedllm.engine._steps import Outcome, Race, Raced, Step, succeeded
from guardedllm.guards import Permit
from guardedllm.registry import Deployment
from guardedllm.telemetry import EVENT_HEDGE, AttemptSpan
from guardedllm.telemetry import _semconv as sc
from guardedllm.types import ChatRequest

if TYPE_CHECKING:
    from guardedllm.engine._engine import Engine

__all__ = ["LatencyWindow", "hedge_partner", "race"]


class LatencyWindow(Mapping[str, float]):
    """The recent latencies of each deployment's answered attempts: their p95 for a hedge
    delay, and, read as a mapping, their average for "fastest" routes."""

    def __init__(self, size: int = defaults.HEDGE_LATENCY_SAMPLES) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {}

    def record(self, deployment: str, latency: float) -> None:
        with self._lock:
            samples = self._samples.get(deployment)
            if samples is None:
                samples = self._samples[deployment] = deque(maxlen=self._size)
            samples.append(latency)

    def __getitem__(self, deployment: str) -> float:
        """The average of the deployment's recent latencies (KeyError: none yet)."""
        with self._lock:
            samples = self._samples.get(deployment)
            if not samples:
                raise KeyError(deployment)
            return sum(samples) / len(samples)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter([name for name, samples in self._samples.items() if samples])

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for samples in self._samples.values() if samples)

    def p95(self, deployment: str) -> float | None:
        """The 95th percentile, or None until enough answers have been seen to say."""
        with self._lock:
            samples = sorted(self._samples.get(deployment, ()))
        if len(samples) < defaults.HEDGE_MIN_SAMPLES:
            return None
        return samples[min(len(samples) - 1, math.ceil(0.95 * len(samples)) - 1)]


def hedge_partner(
    engine: Engine, call: Call, request: ChatRequest, primary: Deployment
) -> Generator[Step, Outcome | None, Turn | None]:
    """The next deployment of the plan, made ready to hedge ``primary``'s first attempt, or
    None when the policy asks for no hedge or a guard would not let it go. What the hedge
    holds (a breaker permit, a spend reservation, a rate-limit grant, a retry) is given back
    by ``race`` if it is never sent, or by the returned turn's ``close``."""
    setting = call.settings.hedge_after_s
    plan = call.trying  # the plan, or the escalation target once escalated
    if setting is None or request.stream or plan.index(primary) + 1 >= len(plan):
        return None
    delay = engine.latencies.p95(primary.name) if setting == "p95" else setting
    if delay is None:
        return None
    partner = plan[plan.index(primary) + 1]
    guards = engine.guards
    turn = Turn(deployment=partner, permit=None, hedge_delay_s=delay)

    def admit() -> Permit | None:
        now = guards.now()
        if guards.marks.unavailable(partner.name, now) is not None:
            return None
        permit = guards.breaker.acquire(partner.name, now)
        if permit.allowed:
            turn.permit = permit
        return permit

    def take() -> None:
        now = guards.now()
        decision = guards.limiter.acquire(
            partner.name, rpm=partner.rpm, tpm=partner.tpm, tokens=turn.tokens, now=now
        )
        if decision.granted:
            turn.grant = "taken"
            if guards.retry_budget.try_withdraw(primary.name, now):
                return
        turn.close(guards, now=now, wall_now=guards.wall_now())

    try:
        permit = yield from engine.state(admit)
        if permit is None:
            return None
        report_transition(permit.transition, call.span)
        if not permit.allowed:
            return None
        # No exact count for a hedge: it would delay the primary, which has not gone yet.
        ready = yield from engine.prepare(call, request, turn, quiet=True, count=False)
        if ready:
            yield from engine.state(take)
            if turn.grant is not None:
                return turn
    except GeneratorExit:  # the flow may not yield any more
        engine.later(lambda: _close(engine, turn))
        raise
    except BaseException:
        if turn.holds:
            yield from engine.state(lambda: _close(engine, turn))
        raise
    if turn.holds:
        yield from engine.state(lambda: _close(engine, turn))
    return None


def _close(engine: Engine, turn: Turn) -> None:
    guards = engine.guards
    turn.close(guards, now=guards.now(), wall_now=guards.wall_now())


def race(
    engine: Engine,
    call: Call,
    request: ChatRequest,
    primary: Turn,
    *,
    backup: Turn,
    timeout: float,
) -> Generator[Step, Outcome | None, tuple[Turn, Outcome | None, float, AttemptSpan]]:
    """Send ``primary``'s first attempt, hedged by ``backup``'s after its delay (the caller
    made sure the hedge can still answer within ``timeout``). Returns the side to carry on
    with: the winner, or the primary when neither succeeded. The other side is settled here."""
    delay = backup.hedge_delay_s
    primary_span = start_attempt_span(call, primary, 1, reason=call.reason, now=engine.clock())
    started = engine.clock()
    primary.sending()
    backup.sending()  # the driver may launch it: abandoned mid-race, it counts as sent
    raced = yield Race(
        first=attempt_send(call, request, primary, timeout, max_body_bytes=engine.max_body_bytes),
        second=attempt_send(
            call,
            request,
            backup,
            min(backup.timeout_cap, timeout - delay),
            max_body_bytes=engine.max_body_bytes,
        ),
        delay_s=delay,
    )
    if not isinstance(raced, Raced):  # the driver broke the protocol
        raise TypeError(f"engine expected a race result, got {raced!r}")
    now = engine.clock()
    guards = engine.guards
    partner = backup.deployment
    if not raced.launched:  # the primary answered (or failed) first: the hedge never went

        def withdraw() -> None:
            guard_now = guards.now()
            guards.retry_budget.refund(primary.deployment.name, guard_now)
            backup.release_grant(guards, guard_now)

        yield from engine.state(withdraw)
        return primary, raced.outcomes[0], raced.latencies[0], primary_span
    call.span.event(
        EVENT_HEDGE,
        {
            sc.GUARDEDLLM_DEPLOYMENT: partner.name,
            sc.GUARDEDLLM_HEDGE_FOR: primary.deployment.name,
            sc.GUARDEDLLM_HEDGE_DELAY_S: delay,
        },
    )
    backup_span = start_attempt_span(call, backup, 1, reason=None, now=started + delay)
    sides = ((primary, primary_span), (backup, backup_span))
    keep = raced.winner if raced.winner is not None else 0

    def settle_loser() -> None:
        """What the guards learn from the side not kept (the kept one is the caller's)."""
        guard_now = guards.now()
        index = 1 - keep
        turn, span = sides[index]
        outcome = raced.outcomes[index]
        learn(guards, turn, outcome)
        if outcome is None or succeeded(outcome):
            # Cancelled, or answered after the winner: it was sent, so the vendor may bill
            # it; settle its reservation to what it reported, else to its worst case. Its
            # rate-limit tokens are corrected to its usage, or, cancelled before an answer,
            # given back as any abandoned attempt's are (``Turn.close``).
            span.cancel(now=now)
            turn.release_permit(guards, guard_now)
            if outcome is None:
                turn.settle_grant(guards, guard_now)
            result = (
                None
                if outcome is None
                else settle(outcome, turn.wire, turn.target, wall_clock=engine.wall_clock)[0]
            )
            usage = result.usage if result is not None else None
            call.bill(account(guards, engine.calibrator, turn, usage))
            turn.handed_over = True
            call.note_cancelled(turn.target, latency=raced.latencies[index])
            return
        _, error, status = settle(outcome, turn.wire, turn.target, wall_clock=engine.wall_clock)
        assert error is not None  # not a success, so settling it finds the failure
        span.end_error(error, status=status, now=now)
        note_failure(
            guards,
            call,
            turn,
            number=1,
            error=error,
            status=status,
            latency=raced.latencies[index],
            max_retry_after_s=engine.registry.defaults.max_retry_after_s,
        )

    yield from engine.state(settle_loser)
    chosen, span = sides[keep]
    return chosen, raced.outcomes[keep], raced.latencies[keep], span
