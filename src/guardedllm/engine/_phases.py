"""The phases of guard operations a call runs against the guards' state, each a function of
explicit inputs. On an in-process backend the engine calls them where it stands; on a shared
one each becomes one ``StateStep`` (``Engine.state``), run by the driver off its event loop.

Every phase records what it takes on the turn the moment it has it (a breaker permit, a
rate-limit grant), so a flow closed right after the phase still knows what to let go of; and
every ``now`` it passes to a guard is the guards' clock (``Guards.now``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guardedllm.engine._call import Turn
from guardedllm.engine._outcomes import account, learn
from guardedllm.guards import Mark, Permit
from guardedllm.guards.ratelimit import RateDecision
from guardedllm.telemetry import CallSpan
from guardedllm.types import Usage

if TYPE_CHECKING:
    from guardedllm.engine._guards import Guards
    from guardedllm.engine._steps import Outcome
    from guardedllm.estimate import Calibrator

__all__ = ["acquire", "admit", "readmit", "settle_answer"]


def admit(guards: Guards, turn: Turn) -> tuple[Mark | None, float, Permit | None]:
    """A first attempt's admission: the deployment's unavailable mark (then no permit), else
    the breaker's permit, held on ``turn`` when allowed; and the guards' ``now``."""
    now = guards.now()
    name = turn.deployment.name
    mark = guards.marks.unavailable(name, now)
    if mark is not None:
        return mark, now, None
    permit = guards.breaker.acquire(name, now)
    if permit.allowed:
        turn.permit = permit
    return None, now, permit


def readmit(guards: Guards, turn: Turn) -> tuple[Permit, bool]:
    """A retry's admission: the breaker's permit, then the retry budget's payment (in that
    order, so that a retry the breaker refuses costs the budget nothing). The permit is held
    on ``turn`` only when both agree; the flag says whether the budget paid."""
    now = guards.now()
    name = turn.deployment.name
    permit = guards.breaker.acquire(name, now)
    if not permit.allowed:
        return permit, False
    if not guards.retry_budget.try_withdraw(name, now):
        guards.breaker.record(name, permit, "ignored", 0.0, now)
        return permit, False
    turn.permit = permit
    return permit, True


def acquire(guards: Guards, turn: Turn) -> RateDecision:
    """A request and the turn's tokens from its deployment's rate limits; the grant is held on
    ``turn`` when given."""
    deployment = turn.deployment
    decision = guards.limiter.acquire(
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
    calibrator: Calibrator,
    turn: Turn,
    outcome: Outcome | None,
    usage: Usage | None,
    *,
    latency: float,
    span: CallSpan,
) -> float | None:
    """What the guards learn from an answer: the breaker's success, the rate limiter's
    correction and the vendor's headers, the spend settled. Returns its cost."""
    turn.record_permit(guards, "success", latency, guards.now(), span)
    # Settles the reservation even if its bookkeeping fails, so nothing after this line can
    # leave it held.
    cost = account(guards, calibrator, turn, usage)
    # The vendor's count of what is left includes this call; learning it after the usage
    # correction keeps the correction from handing back tokens the vendor already counted.
    learn(guards, turn, outcome)
    return cost
