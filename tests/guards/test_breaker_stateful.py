"""CircuitBreaker against a model: hypothesis drives random acquires, records and clock moves,
and every answer must be the one the rules in breaker.py's docstring predict."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from guardedllm.guards import BreakerConfig, CircuitBreaker, Permit, Transition
from guardedllm.state import MemoryBackend, StateBackend

CONFIG = BreakerConfig(
    window_s=10.0,
    slices=10,
    minimum_calls=3,
    failure_rate_threshold=0.5,
    slow_call_s=4.0,
    slow_call_rate_threshold=0.75,
    open_s=5.0,
    backoff_multiplier=2.0,
    max_open_s=20.0,
    open_jitter=0.2,
    half_open_probes=2,
    half_open_successes=2,
    probe_timeout_s=8.0,
)
RANDOM = 0.375
SLICE_S = CONFIG.window_s / CONFIG.slices
# Successes twice as likely, so that runs reach half-open -> closed, not only open again.
OUTCOMES = st.sampled_from(["success", "success", "failure", "ignored"])
LATENCIES = st.sampled_from([0.5, 4.0, 9.0])


@attrs.define
class Held:
    """A permit the model's callers still hold: of which closed period or half-open episode."""

    permit: Permit
    tag: int
    acquired_at: float


@attrs.frozen
class Sample:
    closes: int
    slice: int
    failed: bool
    slow: bool


class BreakerModel(RuleBasedStateMachine):
    def __init__(self, backend: StateBackend | None = None) -> None:
        super().__init__()
        self.seen: list[Transition] = []
        self.breaker = CircuitBreaker(
            backend or MemoryBackend(),
            CONFIG,
            random=lambda: RANDOM,
            on_transition=self.seen.append,
        )
        self.now = 0.0
        self.state: Literal["closed", "open", "half_open"] = "closed"
        self.trips = 0
        self.until = 0.0
        self.closes = 0  # how many times it closed: names the current window
        self.episode = 0  # how many times it went half-open
        self.probe_ok = 0
        self.probe_slow = 0
        self.last_probe_ok = 0.0
        self.samples: list[Sample] = []
        self.held: list[Held] = []
        self.expected: list[Transition] = []

    # ---------------------------------------------------------------- the model's rules

    def _open(self, reason: str) -> Transition:
        self.trips += 1
        self.until = self.now + CONFIG.open_interval(self.trips, RANDOM)
        return self._move("open", reason)

    def _move(self, to: Literal["closed", "open", "half_open"], reason: str) -> Transition:
        transition = Transition(
            key="d",
            from_state=self.state,
            to_state=to,
            reason=reason,  # type: ignore[arg-type]
            at=self.now,
        )
        self.state = to
        self.expected.append(transition)
        return transition

    def _live_probes(self) -> int:
        return sum(
            1
            for h in self.held
            if h.permit.probe
            and h.tag == self.episode
            and self.now <= h.acquired_at + CONFIG.probe_timeout_s
        )

    def _window(self) -> tuple[int, int, int]:
        first = math.floor(self.now / SLICE_S) - CONFIG.slices + 1
        recent = [s for s in self.samples if s.closes == self.closes and s.slice >= first]
        return len(recent), sum(s.failed for s in recent), sum(s.slow for s in recent)

    # ---------------------------------------------------------------- rules

    @rule(quarters=st.integers(min_value=1, max_value=40))
    def advance(self, quarters: int) -> None:
        self.now += quarters / 4

    @rule()
    def acquire(self) -> None:
        permit = self.breaker.acquire("d", self.now)
        expected_transition = None
        if self.state == "open" and self.now >= self.until:
            expected_transition = self._move("half_open", "open_elapsed")
            self.episode += 1
            self.probe_ok = self.probe_slow = 0
        assert permit.transition == expected_transition
        if self.state == "half_open" and self._live_probes() < CONFIG.half_open_probes:
            assert (permit.allowed, permit.probe) == (True, True)
            self.held.append(Held(permit, self.episode, self.now))
        elif self.state != "closed":
            # The adaptive throttle: refused with SRE's probability (the draw is RANDOM).
            calls, failures, slow_calls = self._window()
            accepted = max(0, calls - failures - slow_calls)
            refusal = (calls - CONFIG.throttle_k * accepted) / (calls + 1) if calls else 1.0
            throttled = refusal <= RANDOM
            assert (permit.allowed, permit.probe) == (throttled, False)
            if throttled:
                assert permit.retry_in_s is None
                self.held.append(Held(permit, self.closes, self.now))
            elif self.state == "open":
                assert permit.retry_in_s == self.until - self.now
            else:
                assert permit.retry_in_s is None
        else:
            assert (permit.allowed, permit.probe) == (True, False)
            self.held.append(Held(permit, self.closes, self.now))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), outcome=OUTCOMES, latency=LATENCIES)
    def record(self, data: st.DataObject, outcome: str, latency: float) -> None:
        self._record(self.held.pop(data.draw(st.integers(0, len(self.held) - 1))), outcome, latency)

    @rule(outcome=OUTCOMES, latency=LATENCIES)
    def call(self, outcome: str, latency: float) -> None:
        """Acquire and, when admitted, record at once: the common case, and the way through
        half-open to closed."""
        held = len(self.held)
        self.acquire()
        if len(self.held) > held:
            self._record(self.held.pop(), outcome, latency)

    def _record(self, held: Held, outcome: str, latency: float) -> None:
        got = self.breaker.record("d", held.permit, outcome, latency, self.now)  # type: ignore[arg-type]
        slow = latency >= CONFIG.slow_call_s
        expected = None
        if not held.permit.probe:
            if outcome != "ignored":
                slice_ = math.floor(self.now / SLICE_S)
                self.samples.append(Sample(held.tag, slice_, outcome == "failure", slow))
                calls, failures, slow_calls = self._window()
                judged = self.state == "closed" and held.tag == self.closes
                if judged and calls >= CONFIG.minimum_calls:
                    if failures / calls >= CONFIG.failure_rate_threshold:
                        expected = self._open("failure_rate")
                    elif slow_calls / calls >= CONFIG.slow_call_rate_threshold:
                        expected = self._open("slow_call_rate")
        elif (
            self.now <= held.acquired_at + CONFIG.probe_timeout_s
            and outcome != "ignored"
            and self.state == "half_open"
            and held.tag == self.episode
        ):
            if outcome == "failure":
                expected = self._open("probe_failed")
            else:
                if self.now > self.last_probe_ok + CONFIG.window_s:
                    self.probe_ok = self.probe_slow = 0  # old successes are forgotten
                self.last_probe_ok = self.now
                self.probe_slow += slow
                self.probe_ok += 1
                if self.probe_ok >= CONFIG.half_open_successes:
                    if self.probe_slow / self.probe_ok >= CONFIG.slow_call_rate_threshold:
                        expected = self._open("probes_slow")
                    else:
                        expected = self._move("closed", "probes_succeeded")
                        self.closes += 1
                        self.trips = 0
        assert got == expected

    # ---------------------------------------------------------------- invariants

    @invariant()
    def transitions_are_reported_as_predicted(self) -> None:
        assert self.seen == self.expected

    @invariant()
    def snapshot_agrees(self) -> None:
        snapshot = self.breaker.snapshot("d", self.now)
        effective = self.state
        if effective == "open" and self.now >= self.until:
            effective = "half_open"
        assert snapshot.state == effective
        assert snapshot.trips == self.trips
        assert snapshot.open_until == (None if self.state == "closed" else self.until)
        calls, failures, slow_calls = self._window()
        assert (snapshot.calls, snapshot.failures, snapshot.slow_calls) == (
            calls,
            failures,
            slow_calls,
        )

    @invariant()
    def never_more_live_probes_than_slots(self) -> None:
        assert self._live_probes() <= CONFIG.half_open_probes

    @invariant()
    def open_intervals_stay_within_bounds(self) -> None:
        if self.state != "closed":
            interval = CONFIG.open_interval(self.trips, RANDOM)
            assert CONFIG.open_s * (1 - CONFIG.open_jitter) <= interval <= CONFIG.max_open_s


def test_the_breaker_answers_what_the_model_predicts(
    new_backend: Callable[[], StateBackend],
) -> None:
    """Run on each backend."""
    run_state_machine_as_test(
        lambda: BreakerModel(new_backend()),
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None),
    )
