"""The phases of guard operations a call runs against the guards' state, each a flow
(``guardedllm.state.flow``) of explicit inputs. On an in-process backend the engine runs them
where it stands; on a shared one each becomes one ``StateStep`` (``run_phase``), run by the
driver off its event loop.

Within a phase the guards' flows run side by side (``lockstep``): each round, every guard's
next operation goes to the store in one batch (on Redis, one pipeline: one round trip), so a
phase costs as many round trips as its longest chain of dependent operations. For a plain
call that answers at once: admit, reserve, acquire and settle are one round trip each.

Where the order of two guards mattered when they ran one after the other, it is kept by
undoing the rare unneeded one: a deployment found marked gives back the probe slot its breaker
may have handed out alongside; a retry the breaker refuses gets the retry budget's withdrawal
refunded; a reservation a budget refuses gets the retry budget's deposit taken back. The
vendor's rate-limit headers are learned after the usage correction (``sequence``), as before.

Every phase records what it takes on the turn the moment it has it (a breaker permit, a
rate-limit grant), so a flow closed right after the phase still knows what to let go of; and
every ``now`` it passes to a guard is the guards' clock (``Guards.now``).
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from guardedllm.engine._call import Call, Turn
from guardedllm.engine._guards import report_transition
from guardedllm.engine._outcomes import account, learn
from guardedllm.engine._steps import Late, Outcome, Stated, StateStep, Step
from guardedllm.guards import Mark, Permit
from guardedllm.guards.ratelimit import RateDecision
from guardedllm.registry import Deployment
from guardedllm.state.flow import Flow, lockstep, sequence
from guardedllm.telemetry import CallSpan
from guardedllm.types import Usage

if TYPE_CHECKING:
    from guardedllm.engine._guards import Guards
    from guardedllm.estimate import Calibrator

__all__ = [
    "acquire",
    "admit",
    "close_turns",
    "held",
    "holding",
    "later",
    "readmit",
    "run_phase",
    "settle_answer",
    "withdraw_hedge",
]

T = TypeVar("T")


def run_phase(
    guards: Guards, flow: Flow[T], call: Call | None = None
) -> Generator[Step, Outcome | None, T]:
    """``flow``, one phase of guard operations: on an in-process backend it runs at once,
    yielding nothing; on a shared one it is a ``StateStep`` the driver carries out off its
    event loop, and whatever the flow raises comes back here.

    With ``call`` (a phase before anything is sent: admission, reservation, rate limit), the
    step is bounded by the call's deadline as well as by the store's timeouts: once the
    deadline is nearer than the store could take (``Guards.step_wait_s``), the step carries
    what is left of it, and a step the driver stopped waiting for (``Late``) fails the call
    with its deadline error. The step then finishes in its thread, and what it took is let go
    of after it (``call.late``: see ``Engine._on_deployment``), so nothing is lost or applied
    twice. Phases after a send (an answer's settlement, a failure's record) carry no bound: an
    answer in hand is not thrown away for its bookkeeping, which the store's own timeouts
    bound."""
    if not guards.shared:
        return guards.run(flow)
    timeout: float | None = None
    if call is not None:
        left = call.deadline - call.clock()
        if left <= 0:
            flow.close()
            raise call.deadline_error()
        if guards.step_wait_s is None or left < guards.step_wait_s:
            timeout = left
    outcome = yield StateStep(run=partial(guards.run, flow), timeout_s=timeout)
    if isinstance(outcome, Late) and call is not None:
        call.late = outcome
        raise call.deadline_error()
    if not isinstance(outcome, Stated):  # the driver broke the protocol
        raise TypeError(f"engine expected a state step's result, got {outcome!r}")
    return cast("T", outcome.value)


def later(guards: Guards, flow: Flow[object]) -> None:
    """``flow`` where the caller cannot yield a step (it is being closed, or a stream is being
    handed over): at once on an in-process backend, else by the driver's background runner
    (``Guards.run_later``), so that no event loop waits on the store."""
    if guards.shared:
        guards.run_later(partial(guards.run, flow))
    else:
        guards.run(flow)


def held(turn: Turn, permit_flow: Flow[Permit]) -> Flow[Permit]:
    """The permit ``permit_flow`` gives, held on ``turn`` the moment it is allowed."""
    permit = yield from permit_flow
    if permit.allowed:
        turn.permit = permit
    return permit


def admit(
    guards: Guards, turn: Turn, *, panic: bool = False
) -> Flow[tuple[Mark | None, float, Permit | None]]:
    """A first attempt's admission: the deployment's unavailable mark (then no permit), else
    the breaker's permit, held on ``turn`` when allowed; and the guards' ``now``. The two are
    asked side by side; a permit given to a deployment found marked goes back unused (for a
    closed breaker that costs nothing: its permit holds no state). With ``panic`` (every
    deployment of the plan refused the call as open), the permit is the breaker's panic
    share (``CircuitBreaker.panic_flow``)."""
    now = guards.now()
    name = turn.deployment.name
    breaker = guards.breaker
    permit_flow = breaker.panic_flow(name, now) if panic else breaker.acquire_flow(name, now)
    mark, permit = yield lockstep(guards.marks.unavailable_flow(name, now), held(turn, permit_flow))
    if mark is not None:
        yield from turn.release_permit(guards, now)
        return mark, now, None
    return None, now, permit


def readmit(guards: Guards, turn: Turn) -> Flow[tuple[Permit, bool]]:
    """A retry's admission: the breaker's permit and the retry budget's payment, asked side by
    side; a retry the breaker refuses gets its payment refunded, so it costs the budget
    nothing, as when the breaker was asked first. The permit is held on ``turn`` only when
    both agree; the flag says whether the budget paid."""
    now = guards.now()
    name = turn.deployment.name
    permit, paid = yield lockstep(
        held(turn, guards.breaker.acquire_flow(name, now)),
        guards.retry_budget.try_withdraw_flow(name, now),
    )
    if not permit.allowed:
        if paid:
            yield from guards.retry_budget.refund_flow(name, now)
        return permit, False
    if not paid:
        yield from turn.release_permit(guards, now)
        return permit, False
    return permit, True


def acquire(guards: Guards, turn: Turn) -> Flow[RateDecision]:
    """A request and the turn's tokens from its deployment's rate limits; the grant is held on
    ``turn`` when given."""
    deployment = turn.deployment
    decision = yield from guards.limiter.acquire_flow(
        deployment.name,
        rpm=deployment.rpm,
        tpm=deployment.tpm,
        tokens=turn.tokens,
        now=guards.now(),
    )
    if decision.granted:
        turn.grant = "taken"
    return decision


def settle_answer(
    guards: Guards,
    calibrator: Calibrator | None,
    turn: Turn,
    outcome: Outcome | None,
    usage: Usage | None,
    *,
    latency: float,
    span: CallSpan,
) -> Flow[float | None]:
    """What the guards learn from an answer: the breaker's success, the rate limiter's
    correction and the vendor's headers, the spend settled. Returns its cost."""
    settlement = account(guards, calibrator, turn, usage)
    learning = learn(guards, turn, outcome)
    # The vendor's count of what is left includes this call; learning it after the usage
    # correction keeps the correction from handing back tokens the vendor already counted.
    accounted = settlement if learning is None else sequence(settlement, learning)
    # The settlement runs whatever the breaker's record does (a lockstep runs every flow to
    # its end), so nothing here can leave the reservation held.
    permit = turn.permit
    cost: Any
    if permit is None:
        cost = yield from accounted
    else:
        transition, cost = yield lockstep(
            guards.breaker.record_flow(
                turn.deployment.name, permit, "success", latency, guards.now()
            ),
            accounted,
        )
        turn.permit = None
        report_transition(transition, span)
    cost_usd: float | None = cost[0] if learning is not None else cost
    return cost_usd


def holding(turns: list[Turn]) -> bool:
    """Whether any of ``turns`` still holds guard state (a permit, a grant, a reservation)."""
    return turns[0].holds or (len(turns) > 1 and turns[1].holds)


def close_turns(guards: Guards, turns: list[Turn]) -> Flow[None]:
    """Let go of what the turns still hold, side by side."""
    now, wall_now = guards.now(), guards.wall_now()
    yield lockstep(*(turn.close(guards, now=now, wall_now=wall_now) for turn in turns))


def withdraw_hedge(guards: Guards, hedge: Turn, *, primary: Deployment) -> Flow[None]:
    """Give back all a hedge that will not go holds, the retry it drew on included."""
    now = guards.now()
    yield lockstep(
        guards.retry_budget.refund_flow(primary.name, now),
        hedge.close(guards, now=now, wall_now=guards.wall_now()),
    )
