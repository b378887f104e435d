"""Hedging: when a deployment's first attempt is slow, send the call to the next deployment of
the plan as well (to the same deployment, on a second connection, when none follows it: a
one-deployment plan), and keep whichever answers first (Dean and Barroso, "The Tail at Scale").

Opt-in per policy (``Policy(hedge_after_s=...)``): after a fixed delay, or after the
deployment's recent p95 latency. A hedge is a retry in disguise, so it draws on the hedged
deployment's retry budget, and it goes only where the guards would let a first attempt go
(no unavailable mark, breaker admitting, pre-flight and spend checks passing, rate limit free
now); its worst case and its primary's must both fit in what is left of ``max_cost_usd``.
A stream is hedged on its time to first chunk, its commit point: the first side to deliver a
chunk wins, and the driver closes the other before any of its chunks reaches the caller.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING

import attrs

from guardedllm import defaults
from guardedllm.engine._attempt import attempt_send, start_attempt_span
from guardedllm.engine._call import Call, Turn
from guardedllm.engine._failures import note_failure
from guardedllm.engine._guards import report_transition
from guardedllm.engine._outcomes import account, learn, settle, stream_cost
from guardedllm.engine._phases import acquire, admit, later, run_phase
from guardedllm.engine._steps import Outcome, Race, Raced, Step, StreamStarted, succeeded
from guardedllm.registry import Deployment
from guardedllm.state.flow import Flow, lockstep
from guardedllm.telemetry import EVENT_HEDGE, AttemptSpan
from guardedllm.telemetry import _semconv as sc
from guardedllm.types import ChatCompletion, ChatRequest, Usage

if TYPE_CHECKING:
    from guardedllm.engine._guards import Guards
    from guardedllm.estimate import Calibrator

__all__ = ["LatencyWindow", "RaceSettings", "hedge_partner", "race"]


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
    guards: Guards,
    call: Call,
    primary: Deployment,
    *,
    latencies: LatencyWindow,
    prepare: Callable[[Turn], Generator[Step, Outcome | None, bool]],
) -> Generator[Step, Outcome | None, Turn | None]:
    """The next deployment of the plan, made ready to hedge ``primary``'s first attempt, or
    None when the policy asks for no hedge or a guard would not let it go. ``latencies`` gives
    the p95 delay; ``prepare`` readies the hedge's turn as a first attempt's (quietly, with no
    exact count: it would delay the primary, which has not gone yet). What the hedge holds (a
    breaker permit, a spend reservation, a rate-limit grant, a retry) is given back by
    ``race`` if it is never sent, or by the returned turn's ``close``. The last deployment of
    the plan (the only one, in a one-deployment plan) is hedged by itself: a second attempt,
    which the driver sends on a connection of its own."""
    setting = call.settings.hedge_after_s
    if setting is None:
        return None
    delay = latencies.p95(primary.name) if setting == "p95" else setting
    if delay is None:
        return None
    plan = call.trying  # the plan, or the escalation target once escalated
    following = plan.index(primary) + 1
    partner = plan[following] if following < len(plan) else primary
    turn = Turn(deployment=partner, permit=None, hedge_delay_s=delay)
    try:
        mark, _, permit = yield from run_phase(guards, admit(guards, turn), call)
        if mark is not None:
            return None
        assert permit is not None
        report_transition(permit.transition, call.span)
        if not permit.allowed:
            return None
        ready = yield from prepare(turn)
        if ready:
            yield from run_phase(guards, _take(guards, turn, primary), call)
            if turn.grant is not None:
                return turn
    except GeneratorExit:  # the flow may not yield any more
        later(guards, _close(guards, turn))
        raise
    except BaseException:
        if call.late is not None:  # once the late step has ended (``Engine._on_deployment``)
            call.late.then(partial(guards.run, _close(guards, turn)))
        elif turn.holds:
            yield from run_phase(guards, _close(guards, turn))
        raise
    if turn.holds:
        yield from run_phase(guards, _close(guards, turn))
    return None


def _take(guards: Guards, turn: Turn, primary: Deployment) -> Flow[None]:
    """The hedge's rate-limit grant and its retry, from the primary's budget, side by side;
    when either is refused, the turn lets go of everything (the retry too)."""
    now = guards.now()
    decision, paid = yield lockstep(
        acquire(guards, turn), guards.retry_budget.try_withdraw_flow(primary.name, now)
    )
    if decision.granted and paid:
        return
    if paid:
        yield from guards.retry_budget.refund_flow(primary.name, now)
    yield from turn.close(guards, now=now, wall_now=guards.wall_now())


def _close(guards: Guards, turn: Turn) -> Flow[None]:
    yield from turn.close(guards, now=guards.now(), wall_now=guards.wall_now())


def race(
    guards: Guards,
    call: Call,
    request: ChatRequest,
    primary: Turn,
    *,
    backup: Turn,
    timeout: float,
    settings: RaceSettings,
) -> Generator[Step, Outcome | None, tuple[Turn, Outcome | None, float, AttemptSpan]]:
    """Send ``primary``'s first attempt, hedged by ``backup``'s after its delay (the caller
    made sure the hedge can still answer within ``timeout``). Returns the side to carry on
    with: the winner, or the primary when neither succeeded. The other side is settled here."""
    delay = backup.hedge_delay_s
    clock = settings.clock
    primary_span = start_attempt_span(call, primary, 1, reason=call.reason, now=clock())
    started = clock()
    primary.sending()
    backup.sending()  # the driver may launch it: abandoned mid-race, it counts as sent
    raced = yield Race(
        first=attempt_send(call, request, primary, timeout, max_body_bytes=settings.max_body_bytes),
        second=attempt_send(
            call,
            request,
            backup,
            min(backup.timeout_cap, timeout - delay),
            max_body_bytes=settings.max_body_bytes,
        ),
        delay_s=delay,
    )
    if not isinstance(raced, Raced):  # the driver broke the protocol
        raise TypeError(f"engine expected a race result, got {raced!r}")
    now = clock()
    partner = backup.deployment
    if not raced.launched:  # the primary answered (or failed) first: the hedge never went
        if isinstance(raced.outcomes[0], StreamStarted):
            # No step before the stream's tracker (below): all the hedge holds goes back off
            # the call's path, from a turn of its own.
            gone = _detached(backup)
            later(guards, _withdrawn(guards, gone, primary.deployment))
        else:
            yield from run_phase(guards, _withdraw(guards, backup, primary.deployment))
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
    index = 1 - keep
    turn, span = sides[index]
    settlement = _settle_loser(
        guards,
        call,
        turn,
        span,
        raced.outcomes[index],
        latency=raced.latencies[index],
        now=now,
        settings=settings,
    )
    if isinstance(raced.outcomes[keep], StreamStarted):
        # No step may come between a stream's first chunk and its tracker (a flow closed
        # there would leave the open response to nobody: ``_answers.stream_started``), so the
        # loser's guard operations run off the call's path, on a turn of their own: the
        # loser's turn holds nothing from here, and nothing is let go of twice.
        later(guards, settlement)
    else:
        yield from run_phase(guards, settlement)
    chosen, chosen_span = sides[keep]
    return chosen, raced.outcomes[keep], raced.latencies[keep], chosen_span


@attrs.frozen(kw_only=True)
class RaceSettings:
    """What a race needs of its engine: its clocks, the calibrator answers teach, the body cap
    and the longest vendor wait honoured."""

    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    calibrator: Calibrator
    max_body_bytes: int
    max_retry_after_s: float


def _withdraw(guards: Guards, backup: Turn, primary: Deployment) -> Flow[None]:
    """Give back the retry a hedge that never went drew on the primary's budget, and its
    rate-limit grant (the rest goes back with the turn: ``Turn.close``)."""
    now = guards.now()
    yield lockstep(
        guards.retry_budget.refund_flow(primary.name, now), backup.release_grant(guards, now)
    )


def _detached(turn: Turn) -> Turn:
    """A copy of ``turn`` that takes over all it holds: ``turn`` holds nothing afterwards, so
    what the copy holds is let go of once, wherever its flow runs."""
    gone = attrs.evolve(turn)
    turn.permit, turn.grant, turn.reservation, turn.handed_over = None, None, None, True
    return gone


def _withdrawn(guards: Guards, backup: Turn, primary: Deployment) -> Flow[None]:
    """All a hedge that never went holds: its retry and its grant, then the rest."""
    yield from _withdraw(guards, backup, primary)
    yield from _close(guards, backup)


def _settle_loser(
    guards: Guards,
    call: Call,
    turn: Turn,
    span: AttemptSpan,
    outcome: Outcome | None,
    *,
    latency: float,
    now: float,
    settings: RaceSettings,
) -> Flow[None]:
    """What the call and the guards learn from the side not kept (the kept one is the
    caller's). The call learns it now (its attempts, its cost, the span); the returned flow is
    the guards' part, on a copy of the turn that takes over all it holds (``turn`` holds
    nothing once this returns), so it may run now or off the call's path."""
    gone = _detached(turn)
    if outcome is None or succeeded(outcome):
        # Cancelled, or answered after the winner: it was sent, so the vendor may bill it;
        # settle its reservation to what it reported, else to its worst case, and the call
        # counts that much (``guard.cost_usd``, the cap). Its rate-limit tokens are corrected
        # to its usage, or, cancelled before an answer, given back as any abandoned attempt's
        # are (``Turn.close``).
        span.cancel(now=now)
        result = (
            None
            if outcome is None
            else settle(outcome, gone.wire, gone.target, wall_clock=settings.wall_clock)[0]
        )
        # Embeddings are never hedged (``_embeddings.check_kinds``): a chat answer or none.
        usage = result.usage if isinstance(result, ChatCompletion) else None
        cost = stream_cost(gone.deployment, usage)
        call.settled(gone, cost)
        worst = gone.estimate.cost_usd_max
        call.bill(cost if cost is not None else worst, worst_usd=worst)
        call.note_cancelled(gone.target, latency=latency)
        return _cancelled(guards, gone, outcome, usage, settings.calibrator)
    _, error, status = settle(outcome, gone.wire, gone.target, wall_clock=settings.wall_clock)
    assert error is not None  # not a success, so settling it finds the failure
    span.end_error(error, status=status, now=now)
    noted = note_failure(
        guards,
        call,
        gone,
        number=1,
        error=error,
        status=status,
        latency=latency,
        max_retry_after_s=settings.max_retry_after_s,
    )
    return _failed(guards, gone, outcome, noted)


def _cancelled(
    guards: Guards,
    turn: Turn,
    outcome: Outcome | None,
    usage: Usage | None,
    calibrator: Calibrator,
) -> Flow[None]:
    guard_now = guards.now()
    flows: list[Flow[object]] = [turn.release_permit(guards, guard_now)]
    if outcome is None:  # started before ``account``, which takes the grant off the turn
        flows.append(turn.settle_grant(guards, guard_now))
    flows.append(account(guards, calibrator, turn, usage))
    # The vendor's headers first, as when the two ran one after the other.
    learning = learn(guards, turn, outcome)
    if learning is not None:
        yield from learning
    yield lockstep(*flows)
    turn.handed_over = True


def _failed(guards: Guards, turn: Turn, outcome: Outcome | None, noted: Flow[object]) -> Flow[None]:
    learning = learn(guards, turn, outcome)
    if learning is not None:
        yield from learning
    yield from noted
    # Its spend reservation: nothing was billed for a failure (``Turn.close``).
    yield from turn.close(guards, now=guards.now(), wall_now=guards.wall_now())
