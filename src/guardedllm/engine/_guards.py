"""The guards one client holds, over one state backend, and how their events are reported.

Each guard is a pure state machine (``guardedllm.guards``); this bundle only builds them from
their settings, so the engine can consult them in the order ``_engine.py`` documents.

It also holds the one decision about time that guards share: on an in-process backend, the
engine's clocks; on a shared one (``shared = True``, such as ``RedisBackend``), the backend's
``clock()`` (the store's time) for ``now`` and ``wall_now`` alike, since ``time.monotonic`` is
not comparable between processes and hosts' wall clocks disagree. Every ``now`` the engine
passes to a guard comes from ``Guards.now``; deadlines keep the engine's own clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from guardedllm import defaults
from guardedllm.errors import ArgumentError
from guardedllm.guards import (
    BreakerConfig,
    CircuitBreaker,
    DeploymentHealth,
    RateLimiter,
    RetryBudget,
    RetryBudgetConfig,
    SpendBudget,
    SpendLedger,
    Transition,
    UnavailableMarks,
    deployment_health,
)
from guardedllm.state import MemoryBackend, StateBackend
from guardedllm.state.failover import ON_ERROR, FailoverBackend, OnError
from guardedllm.state.flow import Flow, runner
from guardedllm.telemetry import EVENT_BREAKER_TRANSITION, EVENT_LOCAL_STATE, CallSpan, Telemetry
from guardedllm.telemetry import _semconv as sc

__all__ = ["Guards", "report_transition"]

logger = logging.getLogger("guardedllm")

T = TypeVar("T")


class Guards:
    """Breaker, retry budget, unavailable marks, spend ledger and rate limiter, sharing one
    backend (in memory unless the client is given another)."""

    def __init__(
        self,
        *,
        deployments: Sequence[str],
        state: StateBackend | None,
        breaker: BreakerConfig | None,
        retry_budget: RetryBudgetConfig | None,
        budgets: Sequence[SpendBudget],
        random: Callable[[], float],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        telemetry: Telemetry,
        on_error: OnError = "local",
    ) -> None:
        if on_error not in ON_ERROR:
            raise ArgumentError(f'state_on_error must be "local" or "refuse"; got {on_error!r}')
        if state is None:
            state = MemoryBackend()
        elif getattr(state, "shared", False) and not isinstance(state, FailoverBackend):
            # A shared store that fails must not fail calls: this process's own state serves
            # meanwhile (spend budgets refuse instead under "refuse").
            state = FailoverBackend(
                state,
                on_error=on_error,
                on_failure=lambda error: telemetry.state_error(error.store, on_error),
            )
        self.state: StateBackend = state
        self._run = runner(state)
        self.on_error: OnError = on_error
        self.breaker = CircuitBreaker(self.state, breaker, random=random)
        self.retry_budget = RetryBudget(self.state, retry_budget)
        self.marks = UnavailableMarks(self.state)
        self.ledger = SpendLedger(self.state, budgets)
        self.limiter = RateLimiter(self.state)
        self._deployments = tuple(deployments)
        # Whether a guard operation may be I/O (a round trip to a store every process shares):
        # then the engine yields it to the driver (``_phases.run_phase``) instead of running it.
        self.shared: bool = bool(getattr(self.state, "shared", False))
        # Set by a driver with an event loop: runs guard operations on a shared store in the
        # background where a flow cannot yield them (``_phases.later``). By default, at once.
        self.run_later: Callable[[Callable[[], object]], None] = _run_now
        store_clock = getattr(self.state, "clock", None) if self.shared else None
        self.now: Callable[[], float] = store_clock if callable(store_clock) else clock
        # The longest a state step can take by the store's own timeouts (None: not known, as
        # for a redis.Redis the application made): a call nearer its deadline than this bounds
        # its steps by the deadline (``_phases.run_phase``).
        timeout = getattr(self.state, "timeout_s", None) if self.shared else None
        self.step_wait_s: float | None = (
            timeout * defaults.STATE_STEP_TIMEOUTS if timeout is not None else None
        )
        self.wall_now: Callable[[], float] = store_clock if callable(store_clock) else wall_clock
        telemetry.observe_breakers(self._breaker_states)
        telemetry.observe_retry_budgets(self._retry_balances)
        telemetry.observe_spend_budgets(self._spend_headroom)

    def run(self, flow: Flow[T]) -> T:
        """Carry out a flow of guard operations (``guardedllm.state.flow``) on the backend, its
        independent operations batched (one round trip each round on a shared store)."""
        return self._run(flow)

    def local_ops(self) -> int:
        """How many operations the guards served from this process's own state because the
        shared store failed (0 without a shared store)."""
        state = self.state
        return state.local_ops if isinstance(state, FailoverBackend) else 0

    def note_local_state(self, span: CallSpan, local_ops: int) -> None:
        """A span event when some of a call's guard operations ran on this process's own state
        (the shared store failed meanwhile: ``FailoverBackend``); ``local_ops`` is what
        ``local_ops()`` said when the call began."""
        if self.local_ops() != local_ops:
            span.event(EVENT_LOCAL_STATE, {sc.GUARDEDLLM_STATE_ON_ERROR: self.on_error})

    def health(self) -> dict[str, DeploymentHealth]:
        """Every deployment's breaker, retry budget, unavailable mark and vendor Retry-After,
        read now."""
        now = self.now()
        return {
            name: deployment_health(
                name,
                now,
                breaker=self.breaker,
                budget=self.retry_budget,
                marks=self.marks,
                limiter=self.limiter,
            )
            for name in self._deployments
        }

    def _breaker_states(self) -> Iterator[tuple[str, str]]:
        now = self.now()
        for name in self._deployments:
            yield name, self.breaker.snapshot(name, now).state

    def _retry_balances(self) -> Iterator[tuple[str, float]]:
        now = self.now()
        for name in self._deployments:
            yield name, self.retry_budget.balance(name, now)

    def _spend_headroom(self) -> Iterator[tuple[str, float]]:
        for status in self.ledger.statuses(wall_now=self.wall_now()):
            yield status.name, status.remaining_usd


def _run_now(run: Callable[[], object]) -> None:
    run()


def report_transition(transition: Transition | None, span: CallSpan) -> None:
    """Tell the world a breaker changed state: a span event on the call, and a log record
    (a warning when it opens, info otherwise)."""
    if transition is None:
        return
    span.event(
        EVENT_BREAKER_TRANSITION,
        {
            sc.GUARDEDLLM_DEPLOYMENT: transition.key,
            sc.GUARDEDLLM_BREAKER_FROM: transition.from_state,
            sc.GUARDEDLLM_BREAKER_TO: transition.to_state,
            sc.GUARDEDLLM_BREAKER_REASON: transition.reason,
        },
    )
    level = logging.WARNING if transition.to_state == "open" else logging.INFO
    logger.log(
        level,
        "circuit breaker for %s: %s -> %s (%s)",
        transition.key,
        transition.from_state,
        transition.to_state,
        transition.reason,
    )
