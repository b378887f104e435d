"""A breaker never makes things worse than no guard: brownouts, outages and stray 404s on two
deployments, through Client and AsyncClient (asyncio and trio) against FakeProvider.

The targets are outcomes of the breaker's decision rule, asserted from counts: calls that
succeeded, attempts the fake received, transitions. Engine time is a ``StepClock``, moved a
fixed step between batches of calls, so every window and interval is exact; HTTP is real.
"""

from __future__ import annotations

import random
from typing import Any

from guardedllm import Policy, defaults
from guardedllm.errors import CircuitOpenError, ModelNotFoundError
from guardedllm.guards import BreakerConfig, RetryBudgetConfig
from guardedllm.testing import FakeProvider

from ._session import Figures, OpenSession, Outcome, StepClock

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
CLAUDE_ID = "claude-3-5-haiku-20241022"
# Two deployments on two vendors: the OpenAI one first, the Anthropic one as its fallback.
TWO: dict[str, Any] = {"model": "support", "messages": MESSAGES}
TWO_POLICY = Policy(fallback=("gpt-4o-mini", "claude-haiku"))

# The brownout of issue #16: 45 % of requests fail, evenly among 503, 500, 429 and 404.
BROWNOUT_CALLS = 80
BROWNOUT_RATE = 0.45
BROWNOUT_STATUSES = (503, 500, 429, 404)
BROWNOUT_SEED = 16  # the number; seeds 1 to 6 give 79-93 % at 1.44-1.56 attempts
BATCH = 4  # concurrent callers
STEP_S = 1.0  # engine time between batches: 80 calls over 20 s, inside every window


def script_brownout(fake: FakeProvider, model: str, requests: int, draw: random.Random) -> int:
    """Queue one rule per upcoming request to ``model``: a fault at ``BROWNOUT_RATE`` (seeded
    independent draws), else an answer. Returns the faults queued."""
    faults = 0
    for _ in range(requests):
        if draw.random() < BROWNOUT_RATE:
            status = draw.choice(BROWNOUT_STATUSES)
            if status == 404:
                fake.script(model=model, not_found=True, times=1)
            else:
                fake.script(model=model, status=status, times=1)
            faults += 1
        else:
            fake.script(model=model, times=1)
    return faults


def run_batches(
    session: Any, clock: StepClock, calls: int, step_s: float = STEP_S, **ask: Any
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    while len(outcomes) < calls:
        outcomes += session.gather(min(BATCH, calls - len(outcomes)), concurrency=BATCH, **ask)
        clock.advance(step_s)
    return outcomes


def test_a_brownout_on_two_deployments_is_absorbed(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    draw = random.Random(BROWNOUT_SEED)
    for model in (OPENAI_ID, CLAUDE_ID):
        script_brownout(fake_provider, model, 4 * BROWNOUT_CALLS, draw)
    clock = StepClock()
    # A seeded draw for the breaker's throttle (and the backoff's jitter).
    session = sessions(clock=clock, policy=TWO_POLICY, random=random.Random(BROWNOUT_SEED).random)

    outcomes = run_batches(session, clock, BROWNOUT_CALLS, **TWO)

    attempts = len(fake_provider.requests)
    succeeded = sum(1 for o in outcomes if o.ok)
    refused = sum(1 for o in outcomes for a in o.attempts if a.outcome == "skipped")
    figures(
        calls=BROWNOUT_CALLS,
        succeeded=succeeded,
        success_rate=succeeded / BROWNOUT_CALLS,
        attempts=attempts,
        attempts_per_call=attempts / BROWNOUT_CALLS,
        skipped=refused,
        transitions=[(t.deployment, t.to_state, t.reason) for t in session.transitions],
        marked=[d for d in ("gpt-4o-mini", "claude-haiku") if session.health(d).unavailable],
    )
    assert succeeded >= 0.75 * BROWNOUT_CALLS
    assert attempts <= 1.6 * BROWNOUT_CALLS
    # No deployment was taken out: neither marked for its stray 404s nor refusing calls.
    assert not any(session.health(d).unavailable for d in ("gpt-4o-mini", "claude-haiku"))
    assert refused <= 0.05 * BROWNOUT_CALLS


# --------------------------------------------------------------------------- 404s

ONE: dict[str, Any] = {"model": "gpt-4o-mini", "messages": MESSAGES}
STRAY_CALLS = 40


def missing(outcome: Outcome) -> bool:
    """The call ended on a 404: its own (as the cause of the plan's error), or a mark's."""
    error = outcome.error
    return isinstance(error, ModelNotFoundError) or isinstance(
        getattr(error, "__cause__", None), ModelNotFoundError
    )


def test_stray_404s_among_answers_do_not_take_the_deployment_out(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    # A stray 404 as the very first answer (nothing answered yet), then two more among
    # answers within the minute: as many 404s as mark a missing model, but outnumbered.
    strays = (0, 15, 30)
    for place in range(STRAY_CALLS):
        fake_provider.script(model=OPENAI_ID, not_found=place in strays, times=1)
    clock = StepClock()
    session = sessions(clock=clock)

    outcomes: list[Outcome] = []
    for _ in range(STRAY_CALLS):  # one at a time: the first 404 meets an empty window
        outcomes.append(session.call(**ONE))
        clock.advance(STEP_S / BATCH)

    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == len(strays)  # the calls that met a 404: none retried
    assert all(missing(o) and o.sent == 1 for o in failed)
    assert session.health("gpt-4o-mini").unavailable is None
    assert len(fake_provider.requests) == STRAY_CALLS
    figures(calls=STRAY_CALLS, failed=len(failed), requests=len(fake_provider.requests))


def test_a_persistent_404_marks_the_deployment_after_a_few_requests(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, not_found=True)
    clock = StepClock()
    session = sessions(clock=clock, policy=Policy(max_attempts=3))

    outcomes = [session.call(**ONE) for _ in range(20)]

    assert all(missing(o) for o in outcomes)
    assert all(o.sent <= 1 for o in outcomes)  # never retried
    assert len(fake_provider.requests) == defaults.UNAVAILABLE_STRIKES
    assert session.health("gpt-4o-mini").unavailable is not None
    figures(calls=len(outcomes), requests=len(fake_provider.requests))


# --------------------------------------------------------------------------- all open

ALL_OPEN_CALLS = 200


def test_when_every_deployment_is_open_a_bounded_share_still_goes(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    fake_provider.script(model=CLAUDE_ID, status=503)
    clock = StepClock()
    session = sessions(clock=clock, policy=TWO_POLICY)
    for _ in range(40):  # until both breakers open
        session.call(**TWO)
        clock.advance(0.01)
        if all(session.health(d).breaker.state == "open" for d in ("gpt-4o-mini", "claude-haiku")):
            break
    else:
        raise AssertionError("the breakers did not both open")
    before = len(fake_provider.requests)

    # 200 calls in 5 s of engine time, well inside the 30 s open interval: no probe goes.
    outcomes = run_batches(session, clock, ALL_OPEN_CALLS, step_s=0.1, **TWO)

    panicked = [o for o in outcomes if o.sent]
    sent = len(fake_provider.requests) - before
    # One call in panic_every goes, as one attempt; the rest are refused without sending.
    share = BreakerConfig().panic_every
    assert len(panicked) == sent == ALL_OPEN_CALLS // share
    refused = [o for o in outcomes if not o.sent]
    assert all(isinstance(o.error, CircuitOpenError) for o in refused)
    assert {o.error.cause for o in refused if isinstance(o.error, CircuitOpenError)} == {
        "failure_rate"
    }
    figures(calls=ALL_OPEN_CALLS, sent=sent, share=sent / ALL_OPEN_CALLS)


# --------------------------------------------------------------------------- retry budget


def test_a_fallback_s_first_attempt_is_not_paid_from_the_failing_deployment_s_budget(
    sessions: OpenSession, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    # A budget that never pays a retry: the fallback must still go.
    session = sessions(
        policy=TWO_POLICY, retry_budget=RetryBudgetConfig(percent_can_retry=0, min_retries_per_s=0)
    )
    outcomes = [session.call(**TWO) for _ in range(3)]
    assert all(o.ok and o.deployment == "claude-haiku" for o in outcomes)
    assert [[a.deployment for a in o.attempts if a.outcome != "skipped"] for o in outcomes] == [
        ["gpt-4o-mini", "claude-haiku"]
    ] * 3
