"""CircuitBreaker on virtual time: tripping, the growing open interval, half-open probes,
abandoned probes, and real threads racing through every state."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from guardedllm import defaults
from guardedllm.guards import BreakerConfig, Cause, CircuitBreaker, Permit, Transition
from guardedllm.guards.breaker import throttle_refusal
from guardedllm.state import StateBackend

# Small numbers keep scenarios short: 10 s window of 1 s slices, 4 calls to judge, half
# failing trips it; open 10 s, doubling to at most 40 s; 2 probes at a time, 2 to close.
CONFIG = BreakerConfig(
    window_s=10.0,
    slices=10,
    minimum_calls=4,
    failure_rate_threshold=0.5,
    slow_call_s=5.0,
    slow_call_rate_threshold=0.75,
    open_s=10.0,
    backoff_multiplier=2.0,
    max_open_s=40.0,
    open_jitter=0.0,
    half_open_probes=2,
    half_open_successes=2,
    probe_timeout_s=30.0,
)


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[Transition] = []

    def __call__(self, transition: Transition) -> None:
        self.transitions.append(transition)


def breaker(
    new_backend: Callable[[], StateBackend],
    config: BreakerConfig = CONFIG,
    random: float = 0.0,
) -> tuple[CircuitBreaker, Recorder]:
    recorder = Recorder()
    return CircuitBreaker(
        new_backend(), config, random=lambda: random, on_transition=recorder
    ), recorder


def call(
    b: CircuitBreaker, now: float, outcome: str = "failure", latency: float = 0.1, key: str = "d"
) -> tuple[Permit, Transition | None]:
    permit = b.acquire(key, now)
    assert permit.allowed, permit
    return permit, b.record(key, permit, outcome, latency, now)  # type: ignore[arg-type]


def trip(b: CircuitBreaker, now: float) -> Transition:
    for _ in range(CONFIG.minimum_calls - 1):
        assert call(b, now)[1] is None
    transition = call(b, now)[1]
    assert transition is not None
    return transition


# --------------------------------------------------------------------------- config


def test_defaults_come_from_defaults_module() -> None:
    config = BreakerConfig()
    assert config.window_s == defaults.BREAKER_WINDOW_S
    assert config.minimum_calls == defaults.BREAKER_MINIMUM_CALLS
    assert config.probe_timeout_s == defaults.BREAKER_PROBE_TIMEOUT_S
    assert config.throttle_k == defaults.BREAKER_THROTTLE_K
    assert config.panic_every == defaults.BREAKER_PANIC_EVERY


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("window_s", 0.0, "> 0"),
        ("minimum_calls", 0, ">= 1"),
        ("failure_rate_threshold", 0.0, "a fraction"),
        ("slow_call_rate_threshold", 1.5, "a fraction"),
        ("backoff_multiplier", 0.5, "a finite number >= 1"),
        ("max_open_s", 1.0, "finite and >= open_s"),
        ("open_jitter", 1.0, "a fraction"),
        ("half_open_probes", 0, ">= 1"),
        ("throttle_k", 0.5, "a number >= 1"),
        ("throttle_k", float("nan"), "a number >= 1"),
        ("panic_every", 0, ">= 1"),
    ],
)
def test_config_rejects_nonsense(field: str, value: float, rule: str) -> None:
    with pytest.raises(ValueError, match=f"BreakerConfig.{field} must be {rule}"):
        BreakerConfig(**{field: value})  # type: ignore[arg-type]


def test_open_interval_grows_caps_and_jitters_down() -> None:
    assert [CONFIG.open_interval(n, 0.0) for n in (1, 2, 3, 4, 10_000)] == [10, 20, 40, 40, 40]
    jittery = BreakerConfig(open_s=10.0, max_open_s=40.0, open_jitter=0.2)
    assert jittery.open_interval(1, 0.5) == pytest.approx(9.0)
    assert jittery.open_interval(5, 0.999) == pytest.approx(40 * (1 - 0.2 * 0.999))
    huge = BreakerConfig(open_s=1.0, backoff_multiplier=1e6, max_open_s=1e300)
    assert huge.open_interval(10_000, 0.0) == 1e300  # no overflow on long outages


# --------------------------------------------------------------------------- closed -> open


def test_closed_admits_and_needs_minimum_calls_to_trip(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, recorder = breaker(new_backend)
    for _ in range(CONFIG.minimum_calls - 1):
        permit, transition = call(b, 0.0)
        assert (permit.state, permit.probe, transition) == ("closed", False, None)
    transition = call(b, 0.0)[1]
    assert transition == Transition(
        key="d", from_state="closed", to_state="open", reason="failure_rate", at=0.0
    )
    assert recorder.transitions == [transition]


def test_opens_at_the_failure_rate_threshold_not_below(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend)
    call(b, 0.0, "success")
    call(b, 0.0, "success")
    assert call(b, 0.0, "failure")[1] is None  # 1 of 3: below minimum anyway
    assert call(b, 0.0, "success")[1] is None  # 1 of 4 = 25 %
    transition = call(b, 0.0, "failure")[1]  # 2 of 5 = 40 %
    assert transition is None
    assert call(b, 0.0, "failure")[1] is not None  # 3 of 6 = 50 %


def test_opens_on_slow_calls_even_when_they_succeed(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend)
    for _ in range(3):
        assert call(b, 0.0, "success", latency=5.0)[1] is None
    transition = call(b, 0.0, "success", latency=9.0)[1]
    assert transition is not None
    assert transition.reason == "slow_call_rate"


def test_old_failures_slide_out_of_the_window(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    for _ in range(3):
        call(b, 0.0)
    # 10 s later the first slice has left the 10-slice window: only 1 failure remains.
    for _ in range(2):
        assert call(b, 10.0, "success")[1] is None
    assert call(b, 10.0)[1] is None
    assert b.snapshot("d", 10.0).calls == 3


def test_ignored_outcomes_do_not_count(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    for _ in range(10):
        assert call(b, 0.0, "ignored")[1] is None
    snapshot = b.snapshot("d", 0.0)
    assert (snapshot.state, snapshot.calls) == ("closed", 0)


def test_breakers_are_per_key(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    assert not b.acquire("d", 1.0).allowed
    assert b.acquire("other", 1.0).allowed


# --------------------------------------------------------------------------- open


def test_open_refuses_with_the_time_left(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    trip(b, 100.0)
    permit = b.acquire("d", 104.0)
    assert (permit.allowed, permit.state, permit.retry_in_s) == (False, "open", 6.0)
    assert b.record("d", permit, "failure", 0.1, 104.0) is None  # nothing to record


def test_open_interval_is_jittered_down_by_the_injected_random(
    new_backend: Callable[[], StateBackend],
) -> None:
    config = BreakerConfig(open_s=10.0, max_open_s=10.0, open_jitter=0.5, minimum_calls=1)
    b, _ = breaker(new_backend, config, random=0.5)
    call(b, 0.0)
    assert b.snapshot("d", 0.0).open_until == 7.5


def test_calls_admitted_before_the_trip_still_record_harmlessly(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, recorder = breaker(new_backend)
    late = b.acquire("d", 0.0)
    trip(b, 0.0)
    assert b.record("d", late, "failure", 0.1, 1.0) is None
    assert len(recorder.transitions) == 1


# --------------------------------------------------------------------------- half-open


def test_half_open_admits_limited_probes_then_closes(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, recorder = breaker(new_backend)
    trip(b, 0.0)
    first = b.acquire("d", 10.0)
    assert (first.allowed, first.probe, first.state) == (True, True, "half_open")
    assert first.transition == Transition(
        key="d", from_state="open", to_state="half_open", reason="open_elapsed", at=10.0
    )
    second = b.acquire("d", 10.0)
    assert (second.allowed, second.probe, second.transition) == (True, True, None)
    third = b.acquire("d", 10.0)
    assert (third.allowed, third.state, third.retry_in_s) == (False, "half_open", None)

    assert b.record("d", first, "success", 0.1, 11.0) is None
    fourth = b.acquire("d", 11.0)  # the freed slot admits another probe
    assert fourth.allowed
    assert fourth.probe
    closed = b.record("d", second, "success", 0.1, 12.0)
    assert closed == Transition(
        key="d", from_state="half_open", to_state="closed", reason="probes_succeeded", at=12.0
    )
    assert b.record("d", fourth, "failure", 0.1, 12.0) is None  # a stale probe changes nothing
    assert [t.to_state for t in recorder.transitions] == ["open", "half_open", "closed"]
    snapshot = b.snapshot("d", 12.0)
    assert (snapshot.state, snapshot.calls, snapshot.trips, snapshot.open_until) == (
        "closed",
        0,
        0,
        None,
    )


def test_a_failed_probe_reopens_for_longer_until_the_cap(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    now, intervals = 0.0, []
    for _ in range(4):
        until = b.snapshot("d", now).open_until
        assert until is not None
        intervals.append(until - now)
        now = until
        probe = b.acquire("d", now)
        transition = b.record("d", probe, "failure", 0.1, now)
        assert transition is not None
        assert transition.reason == "probe_failed"
    assert intervals == [10.0, 20.0, 40.0, 40.0]
    assert b.snapshot("d", now).trips == 5


def test_closing_resets_the_trip_count_and_the_window(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    probe = b.acquire("d", 10.0)
    b.record("d", probe, "failure", 0.1, 10.0)  # open again, 20 s
    for _ in range(2):
        probe = b.acquire("d", 30.0)
        last = b.record("d", probe, "success", 0.1, 30.0)
    assert last is not None
    assert last.to_state == "closed"
    # The window starts empty (the 4 failures before count no more), and the next trip opens
    # for the base interval again.
    trip(b, 31.0)
    assert b.snapshot("d", 31.0).open_until == 41.0


def test_slow_probes_reopen_the_breaker(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    first, second = b.acquire("d", 10.0), b.acquire("d", 10.0)
    assert b.record("d", first, "success", 9.0, 19.0) is None
    transition = b.record("d", second, "success", 9.0, 19.0)
    assert transition is not None
    assert (transition.to_state, transition.reason) == ("open", "probes_slow")


def test_an_ignored_probe_frees_its_slot_and_counts_nothing(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    probes = [b.acquire("d", 10.0) for _ in range(2)]
    assert not b.acquire("d", 10.0).allowed
    assert b.record("d", probes[0], "ignored", 0.1, 10.0) is None
    assert b.acquire("d", 10.0).allowed
    assert b.snapshot("d", 10.0).state == "half_open"


def test_an_abandoned_probe_slot_expires(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    abandoned = [b.acquire("d", 10.0) for _ in range(2)]
    assert not b.acquire("d", 39.0).allowed
    rescued = b.acquire("d", 40.5)  # probe_timeout_s (30 s) after the slots were taken
    assert rescued.allowed
    assert rescued.probe
    # A result arriving after its slot expired counts nothing, even a failure.
    assert b.record("d", abandoned[0], "failure", 0.1, 41.0) is None
    assert b.snapshot("d", 41.0).state == "half_open"


def test_recording_a_probe_twice_counts_it_once(new_backend: Callable[[], StateBackend]) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    probe = b.acquire("d", 10.0)
    assert b.record("d", probe, "success", 0.1, 10.0) is None
    assert b.record("d", probe, "success", 0.1, 10.0) is None  # would have closed it
    assert b.snapshot("d", 10.0).state == "half_open"


# --------------------------------------------------------------------------- snapshot


def test_snapshot_reports_rates_and_does_not_change_state(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, recorder = breaker(new_backend)
    call(b, 0.0, "success", latency=6.0)
    call(b, 0.0, "failure")
    call(b, 0.0, "success")
    snapshot = b.snapshot("d", 0.5)
    assert (snapshot.calls, snapshot.failures, snapshot.slow_calls) == (3, 1, 1)
    assert snapshot.failure_rate == pytest.approx(1 / 3)
    assert snapshot.slow_rate == pytest.approx(1 / 3)
    assert call(b, 1.0)[1] is not None  # 2 of 4 failed
    assert b.snapshot("d", 5.0).state == "open"
    assert b.snapshot("d", 11.0).state == "half_open"  # what the next acquire will find
    assert [t.to_state for t in recorder.transitions] == ["open"]
    assert b.snapshot("d", 5.0).calls == 4  # the window that tripped it, still sliding


def test_an_unreadable_state_value_is_a_fresh_closed_breaker(
    new_backend: Callable[[], StateBackend],
) -> None:
    backend = new_backend()
    backend.value_cas("breaker:d", None, "garbage from elsewhere", now=0.0)
    b = CircuitBreaker(backend, CONFIG, random=lambda: 0.0)
    assert b.acquire("d", 0.0).allowed
    trip(b, 0.0)
    assert not b.acquire("d", 1.0).allowed


# --------------------------------------------------------------------------- throttle


def test_open_lets_calls_through_while_the_deployment_answers_enough(
    new_backend: Callable[[], StateBackend],
) -> None:
    """SRE's throttle: refused with probability max(0, (calls - 2 accepted) / (calls + 1))."""
    b, _ = breaker(new_backend, random=0.5)
    # Half of 4 calls failed: it opens; the fifth still goes, (4 - 2 * 2) / 5 = 0 refused.
    for outcome in ("success", "success", "failure", "failure", "failure"):
        call(b, 0.0, outcome)
    assert b.snapshot("d", 0.0).state == "open"
    # (5 - 2 * 2) / 6 = 1/6 < 0.5: the draw admits it, as a plain call counted in the window.
    admitted = b.acquire("d", 1.0)
    assert (admitted.allowed, admitted.probe, admitted.state) == (True, False, "open")
    assert b.record("d", admitted, "failure", 0.1, 1.0) is None
    assert b.snapshot("d", 1.0).calls == 6
    # Three more failures: (9 - 4) / 10 = 0.5, which the draw of 0.5 still meets; one more
    # and (10 - 4) / 11 is beyond it.
    for _ in range(3):
        call(b, 1.0)
    assert b.acquire("d", 1.0).allowed
    call(b, 1.0)
    refused = b.acquire("d", 1.0)
    assert (refused.allowed, refused.retry_in_s) == (False, 9.0)


def test_a_full_outage_lets_one_in_calls_plus_one_through_and_an_empty_window_none(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend, random=0.75)
    trip(b, 0.0)  # nothing accepted: 4 / 5 = 0.8 refused
    assert not b.acquire("d", 0.0).allowed
    b2, _ = breaker(new_backend, random=0.85)
    trip(b2, 0.0)
    assert b2.acquire("d", 0.0).allowed
    # Once the window aged out while open, only the probes judge.
    b3, _ = breaker(new_backend, attrs.evolve(CONFIG, open_s=20.0, max_open_s=40.0), 0.999)
    trip(b3, 0.0)
    assert not b3.acquire("d", 15.0).allowed


def test_throttle_refusal_is_sres_formula() -> None:
    assert throttle_refusal(0, 0, 0, 2.0) == 1.0  # no evidence: refused (probes judge)
    assert throttle_refusal(10, 10, 0, 2.0) == 10 / 11
    assert throttle_refusal(10, 5, 0, 2.0) == 0.0
    assert throttle_refusal(10, 6, 0, 2.0) == 2 / 11
    assert throttle_refusal(10, 0, 10, 2.0) == 10 / 11  # slow calls are not accepted


def test_panic_lets_one_call_in_panic_every_through(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend, attrs.evolve(CONFIG, panic_every=5))
    trip(b, 0.0)
    permits = [b.panic("d", 1.0) for _ in range(12)]
    assert [p.allowed for p in permits] == [False, False, False, False, True] * 2 + [False] * 2
    through = permits[4]
    assert (through.probe, through.state) == (False, "open")
    assert b.record("d", through, "failure", 0.1, 1.0) is None  # counted, no transition
    assert b.snapshot("d", 1.0).calls == CONFIG.minimum_calls + 1


# --------------------------------------------------------------------------- cause


def test_the_stored_state_keeps_what_opened_the_breaker(
    new_backend: Callable[[], StateBackend],
) -> None:
    b, _ = breaker(new_backend)
    trip(b, 0.0)
    refused = b.acquire("d", 1.0)
    cause = Cause.decode(refused.cause)
    assert cause == Cause(reason="failure_rate", rate=1.0, threshold=0.5)
    assert cause.describe() == (
        "its failure rate (100% of the calls in its window failed, at or above the 50% threshold)"
    )
    assert b.snapshot("d", 1.0).cause == cause
    # A failed probe re-opens it: the cause says so, with no rate.
    probe = b.acquire("d", 10.0)
    b.record("d", probe, "failure", 0.1, 10.0)
    assert b.snapshot("d", 10.0).cause == Cause(reason="probe_failed")
    assert Cause.decode(b.acquire("d", 10.0).cause) == Cause(reason="probe_failed")


def test_a_state_stored_before_causes_were_kept_still_decodes(
    new_backend: Callable[[], StateBackend],
) -> None:
    backend = new_backend()
    backend.value_cas("breaker:d", None, "open 1 0 1 30.0", now=0.0)
    b = CircuitBreaker(backend, CONFIG, random=lambda: 0.0)
    refused = b.acquire("d", 1.0)
    assert (refused.allowed, refused.state, refused.retry_in_s, refused.cause) == (
        False,
        "open",
        29.0,
        "",
    )
    assert b.snapshot("d", 1.0).cause is None
    assert Cause.decode("") is None
    assert Cause.decode("failure_rate:x:0.5") is None


class InterleavingBackend:
    """A backend that runs ``interleave`` once, just after the next probe slot is taken:
    another caller acting between two of the breaker's backend operations."""

    def __init__(self, backend: StateBackend) -> None:
        self.backend = backend
        self.interleave: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "run_batch":  # one operation at a time, so that each passes value_cas here
            raise AttributeError(name)
        return getattr(self.backend, name)

    def value_cas(
        self,
        key: str,
        expected: str | None,
        value: str | None,
        *,
        expires_at: float | None = None,
        now: float,
    ) -> bool:
        done = self.backend.value_cas(key, expected, value, expires_at=expires_at, now=now)
        if done and ":probe:" in key and value is not None and self.interleave is not None:
            interleave, self.interleave = self.interleave, None
            interleave()
        return done


def test_a_probe_slot_taken_as_the_breaker_reopens_admits_nothing(
    new_backend: Callable[[], StateBackend],
) -> None:
    backend = InterleavingBackend(new_backend())
    b = CircuitBreaker(backend, CONFIG, random=lambda: 0.0)  # type: ignore[arg-type]
    trip(b, 0.0)
    first = b.acquire("d", 10.0)
    assert first.probe
    backend.interleave = lambda: b.record("d", first, "failure", 0.1, 10.0)
    second = b.acquire("d", 10.0)  # takes slot 1 just as the first probe's failure reopens it
    assert (second.allowed, second.state) == (False, "open")
    assert b.snapshot("d", 10.0).trips == 2


# --------------------------------------------------------------------------- concurrency


def test_threads_keep_one_transition_chain_and_the_probe_limit(
    new_backend: Callable[[], StateBackend],
) -> None:
    # Slots never expire here: a probe thread may sleep through many seconds of the shared
    # virtual clock while the others spin, and expiry is tested on its own above.
    b, recorder = breaker(new_backend, attrs.evolve(CONFIG, probe_timeout_s=1e9))
    threads, rounds = 8, 300
    lock = threading.Lock()
    clock = [0.0]
    in_flight: Counter[int] = Counter()  # probes holding a slot, by half-open episode
    most_in_flight = [0]
    start = threading.Barrier(threads)

    def tick() -> float:
        with lock:
            clock[0] += 0.03
            return clock[0]

    def worker(n: int) -> None:
        start.wait()
        for i in range(rounds):
            now = tick()
            permit = b.acquire("d", now)
            if not permit.allowed:
                continue
            if permit.probe:
                with lock:
                    in_flight[permit.epoch] += 1
                    most_in_flight[0] = max(most_in_flight[0], in_flight[permit.epoch])
                time.sleep(0.001)  # a probe in flight: let other threads try to join it
                with lock:
                    in_flight[permit.epoch] -= 1
            # An outage for the first 20 s, then a healthy deployment that flickers while
            # closed (every 7th call fails: not enough to trip it again).
            done = tick()
            failed = done < 20 or (not permit.probe and (n + i) % 7 == 0)
            b.record("d", permit, "failure" if failed else "success", 0.1, done)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    # Never exceeded. (Reached too, as a rule; but on a loaded machine, with each operation a
    # round trip to Redis, the threads may not overlap enough to fill every slot.)
    assert 1 <= most_in_flight[0] <= CONFIG.half_open_probes
    transitions = recorder.transitions
    assert {t.to_state for t in transitions} == {"open", "half_open", "closed"}
    assert transitions[0].from_state == "closed"
    for before, after in itertools.pairwise(transitions):
        assert after.from_state == before.to_state  # one chain: no transition lost or doubled
