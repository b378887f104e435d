"""What ``Client`` and ``AsyncClient`` share beyond the engine: construction from a registry or
a config file, and the read-only views of guard state. The drivers add only sending, sleeping
and streaming."""

from __future__ import annotations

import os
import random as _random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from guardedllm import defaults
from guardedllm.registry import Registry

if TYPE_CHECKING:
    from guardedllm.engine._routing import ShadowResult, ShadowStats
    from guardedllm.estimate import CalibrationStats
    from guardedllm.guards import (
        BreakerConfig,
        DeploymentHealth,
        RetryBudgetConfig,
        SpendBudget,
        SpendStatus,
    )
    from guardedllm.policy import Policy
    from guardedllm.state import StateBackend
    from guardedllm.state.failover import OnError
    from guardedllm.telemetry import Telemetry

__all__ = ["ClientBase"]

C = TypeVar("C", bound="ClientBase")


class ClientBase:
    def __init__(
        self,
        registry: Registry,
        *,
        policy: Policy | None,
        environ: Mapping[str, str] | None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        max_response_bytes: int = defaults.MAX_RESPONSE_BYTES,
        state: StateBackend | None = None,
        breaker: BreakerConfig | None = None,
        retry_budget: RetryBudgetConfig | None = None,
        budgets: Sequence[SpendBudget] = (),
        telemetry: Telemetry | None = None,
        state_on_error: OnError = "local",
        owns_http: bool,
    ) -> None:
        from guardedllm.engine._engine import Engine  # guards and OpenTelemetry load here

        self._engine = Engine(
            registry,
            policy=policy,
            environ=environ,
            clock=clock,
            random=random,
            max_body_bytes=max_response_bytes,
            state=state,
            breaker=breaker,
            retry_budget=retry_budget,
            budgets=budgets,
            telemetry=telemetry,
            state_on_error=state_on_error,
        )
        self._owns_http = owns_http

    @classmethod
    def from_config(
        cls: type[C], path: str | os.PathLike[str], *, env: str | None = None, **kwargs: Any
    ) -> C:
        """A client for the config file at ``path``, with environment ``env`` applied."""
        return cls(Registry.from_toml(path, env=env), **kwargs)

    @property
    def registry(self) -> Registry:
        return self._engine.registry

    def health(self) -> dict[str, DeploymentHealth]:
        """Each deployment's circuit breaker, retry budget, unavailable mark and the vendor
        Retry-After holding its calls back, now."""
        return self._engine.guards.health()

    def spend(
        self, *, routes: Sequence[str] = (), keys: Sequence[str] = ()
    ) -> tuple[SpendStatus, ...]:
        """Every spend budget's status now: spent, reserved by calls in flight, remaining.
        Per-route and per-key budgets report the ``routes`` and ``keys`` named."""
        return self._engine.guards.ledger.statuses(wall_now=time.time(), routes=routes, keys=keys)

    def estimation_stats(self) -> dict[str, CalibrationStats]:
        """How far each deployment's token estimates have run from the vendor's counts, and
        the calibration factor learned from them (see ``guardedllm.estimate.Calibrator``)."""
        return self._engine.calibrator.stats()

    def shadow_results(self) -> list[ShadowResult]:
        """The most recent shadow copies (up to ``defaults.SHADOW_RESULTS_KEPT``), oldest
        first, each beside the call it copied: outcome, latency, cost, the candidate's answer,
        and whether its text matched the caller's."""
        return self._engine.shadows.results()

    def shadow_stats(self) -> dict[str, ShadowStats]:
        """Per route with a shadow: copies sent, skipped for ``max_in_flight``, answered,
        failed, identical answers, latency and cost totals for both sides, copies running."""
        return self._engine.shadows.stats()
