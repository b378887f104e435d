"""Resilience under injected faults: real HTTP against FakeProvider, one client per scenario,
through Client and AsyncClient (asyncio and trio).

Each scenario asserts its figure from counts — requests the fake received, attempts per call,
breaker transitions — and, where the scenario is about time, from engine time on a
``StepClock`` (exact) or from wall time with slack. Each test reports what it measured through
the ``figures`` fixture (``pytest -rP tests/faults`` prints them).

Scaled-down settings, each said where it is used: the breaker's open interval (0.2 s) in the
outage scenario, and Retry-After (0.5 s instead of 2 s) in the shared-wait scenario.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

from guardedllm import Policy, defaults
from guardedllm.errors import (
    AllRoutesFailedError,
    CircuitOpenError,
    DeadlineExceededError,
    GuardedLLMError,
    ModelNotFoundError,
    RateLimitedError,
    StreamInterruptedError,
)
from guardedllm.guards import BreakerConfig, RetryBudgetConfig
from guardedllm.testing import FakeProvider
from support import Streamed

from ._session import Figures, OpenSession, Outcome, StepClock

MESSAGES = [{"role": "user", "content": "Hello there"}]
OPENAI_ID = "gpt-4o-mini-2024-07-18"
DEPLOYMENT = "gpt-4o-mini"
ASK: dict[str, Any] = {"model": DEPLOYMENT, "messages": MESSAGES}

# The outage scenarios: enough calls that the per-call cost dominates the start-up reserve,
# with max_attempts 3 so that unbounded retries would triple the load.
OUTAGE_CALLS = 200
OUTAGE_POLICY = Policy(max_attempts=3)


def budget_floor(config: RetryBudgetConfig, duration_s: float) -> float:
    """Retries the budget grants regardless of traffic over a run of ``duration_s``: its
    reserve (``min_retries_per_s * ttl_s``) once for every ttl window the run touches. A run
    shorter than ttl_s still gets one whole reserve, not ``min_retries_per_s * duration_s``."""
    windows = max(1, math.ceil(duration_s / config.ttl_s))
    return config.reserve * windows


def errors_of(outcomes: list[Outcome]) -> list[GuardedLLMError]:
    return [o.error for o in outcomes if o.error is not None]


# --------------------------------------------------------------------------- full outage


# minimum_calls is the default (10), named because the figure depends on it; the open
# interval is scaled down from 30 s and kept constant (no growth) so the run spans several.
OUTAGE_BREAKER = BreakerConfig(
    minimum_calls=10, open_s=0.2, backoff_multiplier=1.0, max_open_s=0.2, half_open_probes=2
)
STEP_S = 0.01  # engine time between sequential calls
BATCH = 8  # calls at one engine instant once the breaker is open
BATCH_STEP_S = 0.05  # engine time between batches: an open interval spans about four


def test_a_full_outage_costs_about_one_attempt_per_call_and_opens_the_breaker(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    clock = StepClock()
    budget = RetryBudgetConfig()
    session = sessions(
        clock=clock, breaker=OUTAGE_BREAKER, retry_budget=budget, policy=OUTAGE_POLICY
    )
    started = clock()

    # One call at a time until the breaker opens.
    outcomes: list[Outcome] = []
    calls_to_open: int | None = None
    for number in range(1, 21):
        outcomes.append(session.call(**ASK))
        clock.advance(STEP_S)
        if session.health(DEPLOYMENT).breaker.state == "open":
            calls_to_open = number
            break
    assert calls_to_open is not None, "the breaker did not open within 20 calls"
    attempts_to_open = len(fake_provider.requests)
    opened = session.transitions
    assert [(t.from_state, t.to_state, t.reason) for t in opened] == [
        ("closed", "open", "failure_rate")
    ]

    # The rest in batches of concurrent callers, each batch at one instant.
    per_batch: list[int] = []
    while len(outcomes) < OUTAGE_CALLS:
        before = len(fake_provider.requests)
        count = min(BATCH, OUTAGE_CALLS - len(outcomes))
        outcomes += session.gather(count, concurrency=BATCH, **ASK)
        per_batch.append(len(fake_provider.requests) - before)
        clock.advance(BATCH_STEP_S)
    duration = clock() - started

    attempts = len(fake_provider.requests)
    floor = budget_floor(budget, duration)
    assert all(not o.ok for o in outcomes)
    assert attempts <= 1.1 * OUTAGE_CALLS
    assert attempts <= 1.1 * OUTAGE_CALLS + floor
    # While open, the throttle refuses every call (nothing is accepted), so only probes and
    # the panic share reach the upstream: at most half_open_probes each time an open interval
    # ends, and one call in panic_every of those the breaker refused (this plan has one
    # deployment, so every refusal is the whole plan's).
    half_opened = [t for t in session.transitions if t.to_state == "half_open"]
    panicked = [o for o in outcomes if o.sent and o.attempts[0].outcome == "skipped"]
    refused = [o for o in outcomes if isinstance(o.error, CircuitOpenError)]
    assert len(panicked) == (len(refused) + len(panicked)) // OUTAGE_BREAKER.panic_every
    assert all(o.sent == 1 for o in panicked)  # a panic send is one attempt, never retried
    probes = attempts - attempts_to_open - len(panicked)
    assert max(per_batch) <= OUTAGE_BREAKER.half_open_probes + 1
    assert probes <= OUTAGE_BREAKER.half_open_probes * len(half_opened)
    # ... and the breaker does probe: once per open interval that ended during the run.
    longest = OUTAGE_BREAKER.open_interval(1, 0.0)
    assert len(half_opened) >= int((duration - calls_to_open * STEP_S) / (longest + BATCH_STEP_S))
    assert all(o.sent == 0 for o in refused)
    assert len(refused) >= OUTAGE_CALLS - calls_to_open - probes - len(panicked)
    # The refusal names what opened the breaker: its failure rate, then failed probes.
    causes = {(o.error.cause, o.error.rate, o.error.threshold) for o in refused}
    assert causes == {("failure_rate", 1.0, 0.5), ("probe_failed", None, None)}
    assert all("failure rate" in str(o.error) or "probe" in str(o.error) for o in refused)
    figures(
        calls=OUTAGE_CALLS,
        attempts=attempts,
        attempts_per_call=attempts / OUTAGE_CALLS,
        bound=1.1 * OUTAGE_CALLS + floor,
        calls_to_open=calls_to_open,
        attempts_to_open=attempts_to_open,
        half_open_episodes=len(half_opened),
        probes=probes,
        panic_sends=len(panicked),
        max_requests_per_batch_while_open=max(per_batch),
        engine_duration_s=duration,
    )


# Every driver at the 10 % the outage figure is quoted for; one at the default 20 % as well.
@pytest.mark.parametrize(
    ("driver", "percent"), [("sync", 0.1), ("asyncio", 0.1), ("trio", 0.1), ("asyncio", 0.2)]
)
def test_without_the_breaker_the_retry_budget_alone_bounds_an_outage(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures, percent: float
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    clock = StepClock()
    budget = RetryBudgetConfig(percent_can_retry=percent)
    # A breaker that never trips (far more calls than the run makes): the budget is alone.
    session = sessions(
        clock=clock,
        retry_budget=budget,
        breaker=BreakerConfig(minimum_calls=1_000_000),
        policy=OUTAGE_POLICY,
    )
    started = clock()
    outcomes: list[Outcome] = []
    while len(outcomes) < OUTAGE_CALLS:
        outcomes += session.gather(4, concurrency=4, **ASK)
        clock.advance(0.04)
    duration = clock() - started

    attempts = len(fake_provider.requests)
    floor = budget_floor(budget, duration)
    assert all(not o.ok for o in outcomes)
    assert sum(o.sent for o in outcomes) == attempts
    # Every retry paid for: percent of the calls, plus the reserve.
    assert attempts <= (1 + percent) * OUTAGE_CALLS + floor
    # ... and the budget is spent, not merely refused: retries do happen while it allows.
    assert attempts >= (1 + percent) * OUTAGE_CALLS + floor - 2
    assert session.health(DEPLOYMENT).breaker.state == "closed"
    figures(
        percent_can_retry=percent,
        calls=OUTAGE_CALLS,
        attempts=attempts,
        attempts_per_call=attempts / OUTAGE_CALLS,
        floor=floor,
        engine_duration_s=duration,
    )


# --------------------------------------------------------------------------- missing model


def test_a_missing_model_costs_one_attempt_per_call_then_none(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, not_found=True)
    session = sessions(policy=OUTAGE_POLICY)

    first = session.gather(8, concurrency=8, **ASK)
    sent_first = len(fake_provider.requests)
    assert all(o.sent <= 1 for o in first)  # a 404 is never retried
    assert 1 <= sent_first <= len(first)
    for error in errors_of(first):
        assert isinstance(error, ModelNotFoundError) or isinstance(
            error.__cause__, ModelNotFoundError
        ), repr(error)
    assert len(errors_of(first)) == len(first)
    health = session.health(DEPLOYMENT)
    assert health.unavailable is not None
    assert not health.available

    later = session.gather(40, concurrency=8, **ASK)
    assert len(fake_provider.requests) == sent_first  # flat: nothing more was sent
    assert all(o.sent == 0 for o in later)
    assert all(isinstance(o.error, ModelNotFoundError) for o in later)
    assert session.sleeps == []  # failed fast: no backoff, no wait
    # The caller's mistake, not the deployment's health: the breaker counted nothing.
    breaker = session.health(DEPLOYMENT).breaker
    assert (breaker.state, breaker.failures) == ("closed", 0)
    figures(calls=len(first) + len(later), requests=sent_first, sleeps=len(session.sleeps))


def test_a_missing_model_in_a_route_is_passed_over_without_sending(
    sessions: OpenSession, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, not_found=True)
    session = sessions()
    # A 404 marks the deployment once it is no stray (``defaults.UNAVAILABLE_STRIKES``).
    first = [session.call(model="support", messages=MESSAGES) for _ in range(3)]
    later = session.gather(10, concurrency=5, model="support", messages=MESSAGES)
    assert all(o.ok for o in first)
    assert all(o.ok for o in later)
    assert len(fake_provider.requests_for(model=OPENAI_ID)) == defaults.UNAVAILABLE_STRIKES
    assert all(o.deployment == "claude-haiku" for o in later)
    assert all(a.outcome == "skipped" for o in later for a in o.attempts[:1])
    assert session.sleeps == []


# --------------------------------------------------------------------------- Retry-After


RETRY_AFTER_S = 0.5  # scaled down from 2 s: the scenario is the same, the test 1.5 s faster
WAITERS = 6


def test_retry_after_holds_back_every_caller_of_the_deployment(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=RETRY_AFTER_S, times=1)
    session = sessions()

    limited_call = session.submit(**ASK)
    (limited,) = fake_provider.wait_for_requests(1)
    # The engine sleeps its own backoff only after recording the 429 (and the pause it sets),
    # so the first recorded sleep means every later caller must find the deployment paused.
    deadline = time.monotonic() + 5
    while not session.sleeps:
        assert time.monotonic() < deadline, "the 429 was never answered with a backoff"
        time.sleep(0.001)
    waiters = [session.submit(**ASK) for _ in range(WAITERS)]
    outcomes = [limited_call.result()] + [w.result() for w in waiters]

    assert all(o.ok for o in outcomes)
    requests = fake_provider.requests
    assert len(requests) == 1 + 1 + WAITERS  # the 429, its retry, one attempt per waiter
    earliest = min(r.received_at for r in requests[1:])
    assert earliest - limited.received_at >= RETRY_AFTER_S
    assert all(o.sent == 1 for o in outcomes[1:])  # they waited; they were not refused
    figures(
        retry_after_s=RETRY_AFTER_S,
        first_request_after_429_s=earliest - limited.received_at,
        sleeps=sorted(round(s, 3) for s in session.sleeps),
    )


def test_a_retry_after_past_the_deadline_fails_at_once(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, status=429, retry_after=3600)
    session = sessions(policy=Policy(deadline_s=5))

    outcome = session.call(**ASK)
    assert isinstance(outcome.error, RateLimitedError)
    assert outcome.error.retry_after == defaults.MAX_RETRY_AFTER_S  # the hour, cut to the cap
    assert outcome.elapsed_s < 1
    assert len(fake_provider.requests) == 1
    assert session.sleeps == []

    # Later callers find the deployment paused for that minute and fail locally, as fast.
    later = session.gather(4, concurrency=4, **ASK)
    assert all(isinstance(o.error, RateLimitedError) for o in later)
    assert all(o.sent == 0 and o.elapsed_s < 1 for o in later)
    assert len(fake_provider.requests) == 1
    figures(elapsed_s=outcome.elapsed_s, later_elapsed_s=max(o.elapsed_s for o in later))


# --------------------------------------------------------------------------- hangs


HANG_DEADLINE_S = 2.0


# The one scenario that must spend its deadline in real time: sync and asyncio only (trio runs
# the same driver code as asyncio, and a third run would cost another 2 s).
@pytest.mark.parametrize("driver", ["sync", "asyncio"])
def test_a_hanging_upstream_is_cut_at_the_deadline(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    fake_provider.script(model=OPENAI_ID, hang=True)
    session = sessions(policy=Policy(deadline_s=HANG_DEADLINE_S))

    first = session.submit(**ASK)
    time.sleep(0.2)
    together = [session.submit(**ASK) for _ in range(3)]
    outcomes = [first.result()] + [f.result() for f in together]

    assert all(isinstance(o.error, DeadlineExceededError) for o in outcomes)
    elapsed = [o.elapsed_s for o in outcomes]
    assert max(elapsed) <= HANG_DEADLINE_S + 0.1
    assert min(elapsed) >= HANG_DEADLINE_S - 0.05  # the deadline cut them, not something else
    figures(elapsed_s=[round(e, 3) for e in elapsed])


# --------------------------------------------------------------------------- recovery


def test_a_recovered_upstream_closes_the_breaker_within_its_open_interval(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    outage = fake_provider.script(model=OPENAI_ID, status=503)
    clock = StepClock()
    breaker = BreakerConfig()  # the defaults: 30 s open, 2 probes, 3 successes to close
    session = sessions(clock=clock, breaker=breaker)

    for _ in range(20):  # a call a second (engine time) for 20 s of outage
        session.call(**ASK)
        clock.advance(1.0)
    snapshot = session.health(DEPLOYMENT).breaker
    assert snapshot.state == "open"
    assert snapshot.open_until is not None

    outage.cancel()
    healthy_at = clock()
    step = 0.1  # ten calls a second now, so the probes' own pace adds little
    closed_at: float | None = None
    limit = math.ceil((breaker.open_interval(snapshot.trips, 0.0) + 1) / step)
    outcomes: list[Outcome] = []
    for _ in range(limit):
        outcomes.append(session.call(**ASK))
        if session.health(DEPLOYMENT).breaker.state == "closed":
            closed_at = clock()
            break
        clock.advance(step)
    assert closed_at is not None, "the breaker did not close within an open interval"

    time_to_close = closed_at - healthy_at
    probing = (breaker.half_open_successes - 1) * step  # successes needed, one per call
    slack = step + probing + 1e-6  # the first call after the interval, then the probes
    assert closed_at <= snapshot.open_until + slack
    assert time_to_close <= breaker.open_interval(snapshot.trips, 0.0) + slack
    # Before the interval ended only the panic share was sent (one refused call in
    # panic_every, answered now that the upstream is back); then exactly the probes that
    # closed it.
    panicked = [o for o in outcomes if o.sent and o.attempts[0].outcome == "skipped"]
    plain = [o for o in outcomes if not (o.sent and o.attempts[0].outcome == "skipped")]
    waited = [o for o in plain if isinstance(o.error, CircuitOpenError)]
    assert all(o.ok for o in panicked)
    assert len(panicked) == (len(waited) + len(panicked)) // breaker.panic_every
    assert all(o.sent == 0 for o in waited)
    assert [o.ok for o in plain[len(waited) :]] == [True] * breaker.half_open_successes
    assert [(t.to_state, t.reason) for t in session.transitions][-2:] == [
        ("half_open", "open_elapsed"),
        ("closed", "probes_succeeded"),
    ]
    after = session.call(**ASK)
    assert after.ok
    assert after.sent == 1
    figures(
        open_interval_s=breaker.open_interval(snapshot.trips, 0.0),
        open_left_when_healthy_s=snapshot.open_until - healthy_at,
        time_to_close_s=time_to_close,
    )


# --------------------------------------------------------------------------- flaky upstream


FLAKY_CALLS = 300
FLAKY_SEED = 20240611


def script_one_in_ten_failing(fake: FakeProvider, requests: int, seed: int) -> int:
    """Queue one rule per upcoming request: in every block of ten, one 500 at a seeded random
    place. Stratified rather than independent draws, so the failure rate is 10 % over any
    stretch of requests (a figure asserted from counts cannot then hinge on the seed), while
    where failures fall, and so which calls meet two in a row, is still random."""
    draw = random.Random(seed)
    failures = 0
    for _ in range(requests // 10):
        failing = draw.randrange(10)
        for place in range(10):
            if place == failing:
                fake.script(model=OPENAI_ID, status=500, times=1)
                failures += 1
            else:
                fake.script(model=OPENAI_ID, times=1)
    return failures


def test_ten_percent_random_500s_are_absorbed_without_opening_the_breaker(
    sessions: OpenSession, fake_provider: FakeProvider, figures: Figures
) -> None:
    script_one_in_ten_failing(fake_provider, 2 * FLAKY_CALLS, FLAKY_SEED)
    session = sessions(policy=Policy(max_attempts=3))

    outcomes = session.gather(FLAKY_CALLS, concurrency=4, **ASK)

    attempts = len(fake_provider.requests)
    succeeded = sum(1 for o in outcomes if o.ok)
    assert succeeded / FLAKY_CALLS >= 0.995
    assert attempts <= 1.12 * FLAKY_CALLS
    assert session.transitions == []
    breaker = session.health(DEPLOYMENT).breaker
    assert (breaker.state, breaker.trips) == ("closed", 0)
    assert breaker.failures == attempts - succeeded  # every 500 was counted, none tripped it
    figures(
        calls=FLAKY_CALLS,
        succeeded=succeeded,
        attempts=attempts,
        attempts_per_call=attempts / FLAKY_CALLS,
        breaker_failure_rate=breaker.failure_rate,
    )


# --------------------------------------------------------------------------- streams


def test_a_stream_cut_after_its_first_chunk_is_not_retried(
    sessions: OpenSession, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=3, cut_after_chunks=1)
    session = sessions()
    # The route could fall back to Claude: a committed stream must not.
    outcomes = [session.call(model="support", messages=MESSAGES, stream=True) for _ in range(3)]
    for outcome in outcomes:
        assert isinstance(outcome.error, StreamInterruptedError)
        assert outcome.error.received
        assert outcome.error.partial_content
    assert len(fake_provider.requests) == len(outcomes)
    assert fake_provider.requests_for(vendor="anthropic") == []


@pytest.mark.parametrize(
    ("times", "answered_by"),
    [(1, ["gpt-4o-mini", "gpt-4o-mini"]), (None, ["gpt-4o-mini", "gpt-4o-mini", "claude-haiku"])],
)
def test_a_stream_cut_before_its_first_chunk_is_retried_or_failed_over(
    sessions: OpenSession,
    fake_provider: FakeProvider,
    times: int | None,
    answered_by: list[str],
) -> None:
    fake_provider.script(model=OPENAI_ID, cut_after_chunks=0, times=times)
    session = sessions()
    outcome = session.call(model="support", messages=MESSAGES, stream=True)
    assert outcome.ok
    assert isinstance(outcome.value, Streamed)
    assert outcome.value.completed
    assert outcome.value.content
    assert [a.deployment for a in outcome.attempts] == answered_by
    assert [a.outcome for a in outcome.attempts] == ["error"] * (len(answered_by) - 1) + ["ok"]
    assert len(fake_provider.requests) == len(answered_by)


def test_a_failed_call_reports_every_attempt_it_sent(
    sessions: OpenSession, fake_provider: FakeProvider
) -> None:
    """The outage figures count requests; this checks the attempts a caller sees agree."""
    fake_provider.script(model=OPENAI_ID, status=503)
    session = sessions(policy=OUTAGE_POLICY)
    outcome = session.call(**ASK)
    assert isinstance(outcome.error, AllRoutesFailedError)
    assert outcome.sent == len(fake_provider.requests) == 3
