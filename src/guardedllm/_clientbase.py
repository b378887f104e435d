"""What ``Client`` and ``AsyncClient`` share beyond the engine: construction from a registry or
a config file (with the config's spend budgets, shared state store and traffic recorder), and
the read-only views of guard state. The drivers add only sending, sleeping and streaming."""

from __future__ import annotations

import os
import random as _random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from guardedllm import defaults
from guardedllm.errors import ArgumentTypeError, ConfigError, ConfigProblem
from guardedllm.registry import RecordConfig, Registry, StateConfig
from guardedllm.registry._check import dotted

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
    from guardedllm.record import Recorder
    from guardedllm.state import RedisBackend, StateBackend
    from guardedllm.state.failover import OnError
    from guardedllm.telemetry import Telemetry

__all__ = ["ClientBase", "open_store"]

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
        record: RecordConfig | Recorder | None = None,
        owns_http: bool,
    ) -> None:
        from guardedllm.engine._engine import Engine  # guards and OpenTelemetry load here

        _check_arguments(type(self).__name__, registry, policy, environ, budgets)
        budgets = _all_budgets(registry, budgets)
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
        self._opened_state: RedisBackend | None = None
        self._recorder: Recorder | None = None
        if record is not None:
            self._record_with(record)

    def _record_with(self, record: RecordConfig | Recorder) -> None:
        from guardedllm.record import Recorder  # the writer loads with a client that records

        recorder = Recorder(record) if isinstance(record, RecordConfig) else record
        recorder.count_drops(self._engine.telemetry.record_dropped)
        self._recorder = self._engine.recorder = recorder

    @classmethod
    def from_config(
        cls: type[C], path: str | os.PathLike[str], *, env: str | None = None, **kwargs: Any
    ) -> C:
        """A client for the config file at ``path``, with environment ``env`` applied.

        The config's ``[budgets.NAME]`` apply, as they do for any client of a registry that
        holds them, with any ``budgets=`` given here. With a ``[state]`` table the client keeps
        guard state in that store (a ``RedisBackend`` of its own, connecting on first use, with
        the table's ``on_error`` unless ``state_on_error=`` is given here), unless ``state=`` is
        given here: a backend passed in code replaces the config's store. Closing the client
        closes the store it opened. With a ``[record]`` table the client records its calls
        there (``RecordConfig``), unless ``record=`` is given here."""
        source = os.fspath(path)
        registry = Registry.from_toml(path, env=env)
        opened = None
        if registry.state is not None and kwargs.get("state") is None:
            opened = kwargs["state"] = open_store(registry.state, source)
            kwargs.setdefault("state_on_error", registry.state.on_error)
        if registry.record is not None:
            kwargs.setdefault("record", registry.record)
        try:
            client = cls(registry, **kwargs)
        except ConfigError as error:
            if opened is not None:
                opened.close()
            raise ConfigError(error.problems, source=error.source or source) from None
        except BaseException:
            if opened is not None:
                opened.close()
            raise
        client._opened_state = opened
        return client

    def _close_state(self) -> None:
        """Close the connections of the store ``from_config`` opened for this client, if any
        (for the drivers' ``close``; redis-py also closes them when the client is collected)."""
        opened, self._opened_state = self._opened_state, None
        if opened is not None:
            opened.close()

    def _close_recorder(self) -> None:
        """Write what the recorder holds and close its file (waits, bounded: a thread's job
        for the async client)."""
        recorder = self._recorder
        if recorder is not None:
            recorder.close()

    @property
    def recorder(self) -> Recorder | None:
        """The traffic recorder (``record=`` or the config's ``[record]``), None without one:
        ``written`` and ``dropped`` count its records so far."""
        return self._recorder

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
        guards = self._engine.guards
        return guards.ledger.statuses(wall_now=guards.wall_now(), routes=routes, keys=keys)

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


def _check_arguments(
    name: str,
    registry: object,
    policy: object,
    environ: object,
    budgets: object,
) -> None:
    """A typed error naming the argument, for the mistakes a new user makes first (a config
    file's path where the registry goes, a dict where a ``Policy`` goes), instead of an
    ``AttributeError`` from deep inside the engine."""
    from guardedllm.guards import SpendBudget
    from guardedllm.policy import Policy

    if isinstance(registry, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"{name}() takes a guardedllm.Registry, not a path: to load the config file "
            f"{os.fspath(registry)!r}, use {name}.from_config({os.fspath(registry)!r})"
        )
    if not isinstance(registry, Registry):
        raise ArgumentTypeError(
            f"{name}() takes a guardedllm.Registry (Registry.from_toml(path) or "
            f"Registry.from_dict(...)), or use {name}.from_config(path); got "
            f"{type(registry).__name__}"
        )
    if policy is not None and not isinstance(policy, Policy):
        raise ArgumentTypeError(
            f"{name}(policy=...) takes a guardedllm.Policy, e.g. Policy(max_attempts=2); got "
            f"{type(policy).__name__}"
        )
    if environ is not None and not isinstance(environ, Mapping):
        raise ArgumentTypeError(
            f"{name}(environ=...) takes a mapping of variable names to values (such as "
            f"os.environ), or None for the process's; got {type(environ).__name__}"
        )
    if isinstance(budgets, (str, bytes, Mapping)) or not isinstance(budgets, Sequence):
        raise ArgumentTypeError(
            f"{name}(budgets=...) takes a list of guardedllm.guards.SpendBudget; got "
            f"{type(budgets).__name__}"
        )
    for budget in budgets:
        if not isinstance(budget, SpendBudget):
            raise ArgumentTypeError(
                f"{name}(budgets=...) takes a list of guardedllm.guards.SpendBudget; one of "
                f"them is a {type(budget).__name__}"
            )


def _all_budgets(registry: Registry, in_code: Sequence[SpendBudget]) -> tuple[SpendBudget, ...]:
    """The registry's budgets (its config's ``[budgets.NAME]``), then those passed in code; a
    name both use is refused, since which limit it stands for would depend on their order."""
    configured = {budget.name for budget in registry.budgets}
    clashes = [
        ConfigProblem(
            key=dotted("budgets", budget.name),
            message="is also the name of a budget passed in code (budgets=...): rename one of "
            "them, or drop one, so that each name stands for one limit",
        )
        for budget in in_code
        if budget.name is not None and budget.name in configured
    ]
    if clashes:
        raise ConfigError(clashes)
    return (*registry.budgets, *in_code)


def open_store(config: StateConfig, source: str) -> RedisBackend:
    """The ``RedisBackend`` a ``[state]`` table describes (it connects on first use). Also for
    ``AsyncClient``: its driver runs state operations off the event loop."""
    try:
        from guardedllm.state.redis import RedisBackend
    except ImportError as error:
        if error.name is None or not error.name.startswith("redis"):
            raise
        problem = ConfigProblem(
            key="state",
            message="needs redis-py, which is not installed: pip install 'guardedllm[redis]' "
            "(or remove [state] to keep guard state in each process's memory)",
        )
        raise ConfigError([problem], source=source) from None
    try:
        return RedisBackend.from_url(
            config.url,
            password_env=config.password_env,
            key_prefix=config.key_prefix,
            timeout_s=config.timeout_s,
        )
    except ConfigError as error:  # the password variable is not set
        raise ConfigError(error.problems, source=source) from None
