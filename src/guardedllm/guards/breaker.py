"""``CircuitBreaker``: stop sending to a deployment that is failing, then probe it back, and
never turn a brownout into an outage.

One breaker state per deployment key, with resilience4j's ``CircuitBreakerStateMachine``
semantics over a time-based sliding window (``SlidingTimeWindowMetrics``) and Envoy's growing
ejection time::

    closed --(>= minimum_calls in window and failure or slow-call rate >= threshold)--> open
    open --(open interval elapsed, noticed by the next acquire)--> half_open
    half_open --(a probe fails, or too many probes were slow)--> open (a longer interval)
    half_open --(half_open_successes probes succeeded)--> closed (fresh window, trips = 0)

(Probe successes are forgotten once none has arrived for ``window_s``, like any old evidence.)

What each source gave, and why:
- resilience4j: the states, the time-based window with ``minimum_calls``, the failure and
  slow-call thresholds, half-open with a few permitted calls. Alone, its open state refuses
  every call for the whole interval: under 45 % random faults the window's noise crosses 50 %
  often, and a plan whose deployments all tripped answered nothing for 30 s — worse than no
  guard (55 % answered).
- Google SRE, "Handling Overload", client-side adaptive throttling: while open (and half-open
  past the probe slots) a call is refused with probability
  ``max(0, (calls - K * accepted) / (calls + 1))`` over the window, K = ``throttle_k`` (2), a
  call let through being sent and counted like any other. A deployment is thus offered about K
  times what it accepts: one answering half its calls or more is hardly refused (the brownout
  passes through), one answering nothing is refused all but 1 in ``calls + 1``. Unlike the
  book, refused calls are not counted as requests: counting them is what lets SRE's client
  adapt without a breaker, whereas here the open state already holds the outage and the probes
  bring it back; and not counting them costs a refusal no write. An empty window (the evidence
  aged out while open) refuses: the probes judge then.
- Envoy's panic threshold and ``max_ejection_percent``: when too few hosts are healthy Envoy
  ignores ejection, since ejecting them all guarantees failure. Here, when every deployment of
  a call's plan refused it as open, the engine sends it to the least bad one anyway, but
  bounded: one such call in ``panic_every`` (``panic``: a counter per key, atomic on every
  backend), as one attempt. A full outage then costs ~1/``panic_every`` extra attempts per call,
  and a plan never answers nothing for a whole interval.
- Envoy's ejection time: the open interval grows on consecutive trips, capped, jittered.
- Finagle's ``RetryBudget`` and Envoy's retry budget, kept per upstream (``retry_budget.py``):
  a fallback's first attempt is a first attempt on its own deployment, never paid from the
  failing one's budget; and the engine does not retry a browning-out deployment when the plan
  has another (``engine/_failures.py``).
- The cause of opening (which threshold, the rate and the threshold) is stored with the
  state, so a refusal anywhere in a fleet can name it (``Cause``).

Rules the code keeps:
- The state is one backend value, changed only by ``value_cas``. It carries an ``epoch`` that
  grows on every transition, so a transition decided on a stale read never applies, and a
  permit from an earlier episode can never move the current state.
- The window is one backend sliding window of ``slices`` slices over three metrics (calls,
  failures, slow calls), named by the window's generation (the epoch at which the breaker last
  closed); the backend keeps running totals, so a record costs the same whatever the number
  of slices. Closing starts a new generation: the old window is abandoned, not cleared.
- A half-open probe holds one of ``half_open_probes`` slot values, taken by a CAS from absent
  and expiring after ``probe_timeout_s``: a caller that crashed or abandoned its call cannot
  wedge the breaker half-open. A probe's result counts only if it still held its slot.
- A permit the throttle or the panic share gave while open is a plain permit of the window's
  generation: its record counts in the window (so the throttle adapts) and never moves the
  state (only a record in the closed state trips the breaker).
- The stored state is one line of text; its sixth field, the cause, is optional, so a state
  written before causes were kept decodes (without one).
- ``record(..., "ignored")`` counts nothing but frees a probe slot: for outcomes that say
  nothing about the deployment's health (429 belongs to the rate limiter, a 4xx is the
  caller's fault, a call abandoned by its deadline or cancelled).
- The open interval is ``open_s * backoff_multiplier ** (trips - 1)``, capped at
  ``max_open_s``, then shortened by up to ``open_jitter`` of itself so processes holding
  separate breakers for one deployment do not all probe at the same instant.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

import attrs

from guardedllm.guards._breaker_values import (
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    Cause,
    Outcome,
    Permit,
    State,
    Transition,
    TransitionReason,
    closed_permit,
    decoded,
    state_key,
)
from guardedllm.state import flow as ops
from guardedllm.state.base import StateBackend
from guardedllm.state.flow import Flow, Op, run

__all__ = [
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "Cause",
    "CircuitBreaker",
    "Outcome",
    "Permit",
    "Transition",
    "TransitionReason",
    "throttle_refusal",
]

# How many times an operation re-reads the state after losing a CAS race. Each loss means
# another caller made a transition; a handful of losses in a row means the state is flapping,
# and a conservative answer (refuse the call, skip the transition) is safe.
_CAS_TRIES = 4


# --------------------------------------------------------------------------- the breaker


def throttle_refusal(calls: float, failures: float, slow_calls: float, k: float) -> float:
    """The chance an open breaker refuses a call, from its window: Google SRE's client-side
    throttling, ``max(0, (calls - k * accepted) / (calls + 1))``, where a call is accepted
    when it neither failed nor was slow (a slow failure counts twice, which errs towards
    refusing). An empty window (the evidence aged out while open) refuses: probes judge then."""
    if calls < 1:
        return 1.0
    accepted = max(0.0, calls - failures - slow_calls)
    return max(0.0, (calls - k * accepted) / (calls + 1))


class CircuitBreaker:
    """Per-deployment circuit breakers over a ``StateBackend``; keys are
    ``breaker:<key>:...``. Every method takes ``now`` (seconds on the caller's clock) and is
    safe to call from many threads and tasks at once. ``random`` draws the open-interval
    jitter; ``on_transition`` is called after each transition is stored (it must not raise)."""

    def __init__(
        self,
        backend: StateBackend,
        config: BreakerConfig | None = None,
        *,
        random: Callable[[], float],
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.backend = backend
        self.config = config or BreakerConfig()
        self._random = random
        self._on_transition = on_transition

    # ---------------------------------------------------------------- acquire

    def acquire(self, key: str, now: float) -> Permit:
        """May a call go to ``key`` now? Closed: yes. Open: no, until the interval ends; then
        half-open, where a call is admitted as a probe while a probe slot is free."""
        return run(self.backend, self.acquire_flow(key, now))

    def acquire_flow(self, key: str, now: float) -> Flow[Permit]:
        """``acquire`` as a flow of backend operations (``guardedllm.state.flow``)."""
        transition: Transition | None = None
        for _ in range(_CAS_TRIES):
            raw = yield ops.value_get(state_key(key), now=now)
            state = decoded(raw)
            if state.name == "closed":
                return closed_permit(key, state.epoch, state.window)
            if state.name == "open":
                if now < state.until:
                    return (yield from self._throttle(key, state, now, state.until - now))
                half_open = attrs.evolve(state, name="half_open", epoch=state.epoch + 1)
                transition = yield from self._move(
                    key, raw, state, half_open, reason="open_elapsed", now=now
                )
                if transition is None:
                    continue  # someone else moved it; look again
                state = half_open
            permit = yield from self._take_probe(key, state, now, transition)
            if permit is not None:
                return permit
        return Permit(key=key, allowed=False, probe=False, state=state.name, transition=transition)

    def _take_probe(
        self, key: str, state: State, now: float, transition: Transition | None
    ) -> Flow[Permit | None]:
        """A probe permit in half-open ``state``, a refusal when every slot is held, or None
        when the state moved on meanwhile (look again)."""
        token = secrets.token_hex(8)
        expires = now + self.config.probe_timeout_s
        for index in range(self.config.half_open_probes):
            slot = self._key(key, state.epoch, f"probe:{index}")
            if not (yield ops.value_cas(slot, None, token, expires_at=expires, now=now)):
                continue
            # The slot is ours; make sure it still belongs to the current episode, so a
            # breaker that re-opened meanwhile does not let this call through.
            if (yield from self._read(key, now))[1] == state:
                return Permit(
                    key=key,
                    allowed=True,
                    probe=True,
                    state="half_open",
                    transition=transition,
                    epoch=state.epoch,
                    window=state.window,
                    slot=slot,
                    token=token,
                    cause=state.cause,
                )
            yield ops.value_cas(slot, token, None, now=now)
            return None
        if (yield from self._read(key, now))[1] != state:
            return None
        permit = yield from self._throttle(key, state, now, None)
        return attrs.evolve(permit, transition=transition)

    def _throttle(
        self, key: str, state: State, now: float, retry_in_s: float | None
    ) -> Flow[Permit]:
        """The adaptive throttle of an open breaker (or a half-open one with every probe slot
        held): a call is refused with probability ``throttle_refusal`` of the window (see the
        module docstring), else it goes, counted like any closed-state call."""
        calls, failures, slow_calls = yield self._window(key, state.window, now)
        allowed = self._random() >= throttle_refusal(
            calls, failures, slow_calls, self.config.throttle_k
        )
        return Permit(
            key=key,
            allowed=allowed,
            probe=False,
            state=state.name,
            retry_in_s=None if allowed else retry_in_s,
            epoch=state.epoch,
            window=state.window,
            cause=state.cause,
        )

    def panic(self, key: str, now: float) -> Permit:
        """A call whose every deployment refused it as open (see the module docstring)."""
        return run(self.backend, self.panic_flow(key, now))

    def panic_flow(self, key: str, now: float) -> Flow[Permit]:
        """``panic`` as a flow of backend operations: one in ``panic_every`` such calls is
        let through to ``key`` anyway, as one plain attempt counted in the window."""
        counter = f"breaker:{key}:panic"
        (_, count), raw = yield [
            ops.counter_add(
                counter, 1.0, limit=None, expires_at=now + self.config.window_s, now=now
            ),
            ops.value_get(state_key(key), now=now),
        ]
        state = decoded(raw)
        allowed = round(count) % self.config.panic_every == 0
        return Permit(
            key=key,
            allowed=allowed,
            probe=False,
            state=state.name,
            epoch=state.epoch,
            window=state.window,
            cause=state.cause,
        )

    # ---------------------------------------------------------------- record

    def record(
        self, key: str, permit: Permit, outcome: Outcome, latency_s: float, now: float
    ) -> Transition | None:
        """Count the outcome of a call admitted by ``permit``; returns the transition it
        caused, if any. A refused permit records nothing."""
        return run(self.backend, self.record_flow(key, permit, outcome, latency_s, now))

    def record_flow(
        self, key: str, permit: Permit, outcome: Outcome, latency_s: float, now: float
    ) -> Flow[Transition | None]:
        """``record`` as a flow of backend operations (``guardedllm.state.flow``)."""
        if not permit.allowed:
            return None
        if permit.probe:
            return (yield from self._record_probe(key, permit, outcome, latency_s, now))
        if outcome == "ignored":
            return None
        index = self._slice(now)
        # One atomic add of the three metrics, which returns the window's running totals, and
        # the state read after it in the same batch (so after the add, as one call after the
        # other would: a trip decided elsewhere meanwhile is seen).
        totals, raw = yield [
            ops.window_add(
                self._key(key, permit.window, "window"),
                (
                    1.0,
                    1.0 if outcome == "failure" else 0.0,
                    1.0 if latency_s >= self.config.slow_call_s else 0.0,
                ),
                slice_index=index,
                slices=self.config.slices,
                expires_at=(index + self.config.slices) * self._slice_s,
                now=now,
            ),
            ops.value_get(state_key(key), now=now),
        ]
        calls, failures, slow_calls = totals
        state = decoded(raw)
        if state.name != "closed" or state.window != permit.window:
            return None  # already tripped, or a permit from an earlier closed period
        if calls < self.config.minimum_calls:
            return None
        cause: Cause
        if failures / calls >= self.config.failure_rate_threshold:
            rate, threshold = failures / calls, self.config.failure_rate_threshold
            cause = Cause(reason="failure_rate", rate=rate, threshold=threshold)
        elif slow_calls / calls >= self.config.slow_call_rate_threshold:
            rate, threshold = slow_calls / calls, self.config.slow_call_rate_threshold
            cause = Cause(reason="slow_call_rate", rate=rate, threshold=threshold)
        else:
            return None
        opened = self._opened(state, now, cause)
        return (yield from self._move(key, raw, state, opened, reason=cause.reason, now=now))

    def _record_probe(
        self, key: str, permit: Permit, outcome: Outcome, latency_s: float, now: float
    ) -> Flow[Transition | None]:
        assert permit.slot is not None  # every probe permit holds a slot
        # Freeing the slot claims the result: a second record of the same permit, or one that
        # arrives after the slot expired (and may be someone else's now), counts nothing.
        if not (yield ops.value_cas(permit.slot, permit.token, None, now=now)):
            return None
        if outcome == "ignored":
            return None
        raw, state = yield from self._read(key, now)
        if state.name != "half_open" or state.epoch != permit.epoch:
            return None
        if outcome == "failure":
            return (
                yield from self._move(
                    key,
                    raw,
                    state,
                    self._opened(state, now, Cause(reason="probe_failed")),
                    reason="probe_failed",
                    now=now,
                )
            )
        # Probe results are evidence while recent: both counters expire window_s after the
        # latest success (adding 0 to the slow one keeps the pair expiring together).
        expires = now + self.config.window_s
        ok_key = self._key(key, state.epoch, "probe_ok")
        slow_key = self._key(key, state.epoch, "probe_slow")
        slow = 1.0 if latency_s >= self.config.slow_call_s else 0.0
        # Slow first, as in record: a reader never sees a success without its slowness (one
        # batch keeps its order).
        _, (_, succeeded) = yield [
            ops.counter_add(slow_key, slow, limit=None, expires_at=expires, now=now),
            ops.counter_add(ok_key, 1.0, limit=None, expires_at=expires, now=now),
        ]
        if succeeded < self.config.half_open_successes:
            return None
        slow = (yield ops.counters_get([slow_key], now=now)).get(slow_key, 0.0)
        if slow / succeeded >= self.config.slow_call_rate_threshold:
            cause = Cause(
                reason="probes_slow",
                rate=slow / succeeded,
                threshold=self.config.slow_call_rate_threshold,
            )
            opened = self._opened(state, now, cause)
            return (yield from self._move(key, raw, state, opened, reason="probes_slow", now=now))
        closed = State(
            name="closed", epoch=state.epoch + 1, window=state.epoch + 1, trips=0, until=0.0
        )
        return (yield from self._move(key, raw, state, closed, reason="probes_succeeded", now=now))

    # ---------------------------------------------------------------- snapshot

    def snapshot(self, key: str, now: float) -> BreakerSnapshot:
        """``key``'s breaker as the next ``acquire`` would find it (an open breaker whose
        interval has ended shows as half-open), without changing anything."""
        return run(self.backend, self._snapshot(key, now))

    def snapshot_flow(self, key: str, now: float) -> Flow[BreakerSnapshot]:
        """``snapshot`` as a flow of backend operations (``guardedllm.state.flow``)."""
        return self._snapshot(key, now)

    def _snapshot(self, key: str, now: float) -> Flow[BreakerSnapshot]:
        _, state = yield from self._read(key, now)
        name = state.name
        if name == "open" and now >= state.until:
            name = "half_open"
        calls, failures, slow_calls = yield self._window(key, state.window, now)
        return BreakerSnapshot(
            key=key,
            state=name,
            calls=round(calls),
            failures=round(failures),
            slow_calls=round(slow_calls),
            open_until=state.until if state.name != "closed" else None,
            trips=state.trips,
            cause=Cause.decode(state.cause) if state.cause else None,
        )

    # ---------------------------------------------------------------- pieces

    @property
    def _slice_s(self) -> float:
        return self.config.window_s / self.config.slices

    def _slice(self, now: float) -> int:
        return math.floor(now / self._slice_s)

    def _window(self, key: str, window: int, now: float) -> Op:
        """The read of calls, failures and slow calls in the ``slices`` slices ending with
        ``now``'s."""
        return ops.window_get(
            self._key(key, window, "window"),
            width=3,
            slice_index=self._slice(now),
            slices=self.config.slices,
            now=now,
        )

    def _opened(self, state: State, now: float, cause: Cause) -> State:
        trips = state.trips + 1
        until = now + self.config.open_interval(trips, self._random())
        return attrs.evolve(
            state,
            name="open",
            epoch=state.epoch + 1,
            trips=trips,
            until=until,
            cause=cause.encode(),
        )

    def _read(self, key: str, now: float) -> Flow[tuple[str | None, State]]:
        raw = yield ops.value_get(state_key(key), now=now)
        return raw, decoded(raw)

    def _move(
        self,
        key: str,
        raw: str | None,
        old: State,
        new: State,
        *,
        reason: TransitionReason,
        now: float,
    ) -> Flow[Transition | None]:
        """Store ``new`` if the state is still ``raw``; the transition, or None if another
        caller changed the state first (its transition stands instead)."""
        if not (yield ops.value_cas(state_key(key), raw, new.encode(), now=now)):
            return None
        transition = Transition(
            key=key, from_state=old.name, to_state=new.name, reason=reason, at=now
        )
        if self._on_transition is not None:
            self._on_transition(transition)
        return transition

    @staticmethod
    def _key(key: str, epoch: int, name: str) -> str:
        return f"breaker:{key}:{epoch}:{name}"
