"""The metric instruments, created once per ``Telemetry``, and the gauges fed by callbacks.

Histograms carry the conventions' advised bucket boundaries as an advisory: an SDK uses them
unless the application configured a View of its own. Gauges are observed at collection time from
sources registered later (a breaker or budget is created after the client's telemetry), so each
gauge is created once here and reads whatever sources exist when the SDK collects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from guardedllm.telemetry import _semconv as sc

__all__ = ["BREAKER_STATES", "BreakerSource", "BudgetSource", "Instruments"]

_log = logging.getLogger("guardedllm.telemetry")

# A breaker source yields (deployment, state); a budget source yields (name, headroom).
BreakerSource = Callable[[], Iterable[tuple[str, str]]]
BudgetSource = Callable[[], Iterable[tuple[str, float]]]

# The states a breaker gauge reports, each as its own series: 1 for the state the breaker is
# in, 0 for the others (the conventions' pattern for states, as in hw.status), so a dashboard
# can sum "open" across deployments and an alert can fire on any series turning 1.
BREAKER_STATES: Final = ("closed", "open", "half_open")

_T = TypeVar("_T")


class Instruments:
    """Every instrument of one ``Telemetry``."""

    def __init__(self, meter: Meter) -> None:
        self.operation_duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk, from when the client issues the "
            "generation request to when the first chunk is received in the response stream.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.time_per_output_chunk = meter.create_histogram(
            sc.METRIC_TIME_PER_OUTPUT_CHUNK,
            unit="s",
            description="Time per output chunk, recorded for each chunk after the first.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.attempt_duration = meter.create_histogram(
            sc.METRIC_ATTEMPT_DURATION,
            unit="s",
            description="Duration of one HTTP attempt on one deployment.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.attempts = meter.create_counter(
            sc.METRIC_ATTEMPTS, unit="{attempt}", description="HTTP attempts sent, by outcome."
        )
        self.retries = meter.create_counter(
            sc.METRIC_RETRIES, unit="{retry}", description="Retries of a deployment, by reason."
        )
        self.fallbacks = meter.create_counter(
            sc.METRIC_FALLBACKS,
            unit="{fallback}",
            description="Moves to the next deployment of a route, by reason.",
        )
        self.cost = meter.create_counter(
            sc.METRIC_COST, unit=sc.UNIT_USD, description="Cost of completed calls, in USD."
        )
        self.retry_after_capped = meter.create_counter(
            sc.METRIC_RETRY_AFTER_CAPPED,
            unit="{response}",
            description="Vendor answers whose Retry-After asked for longer than "
            "max_retry_after_s, and were held to it.",
        )
        self.state_errors = meter.create_counter(
            sc.METRIC_STATE_ERRORS,
            unit="{error}",
            description="Failures of the shared state store; each sends the guards to this "
            "process's own state for a while.",
        )
        self.record_dropped = meter.create_counter(
            sc.METRIC_RECORD_DROPPED,
            unit="{record}",
            description="Call records the traffic recorder dropped instead of writing, by "
            "reason: its queue was full, the file could not be written, or the client closed.",
        )
        self.cost_overshoot = meter.create_counter(
            sc.METRIC_COST_OVERSHOOT,
            unit=sc.UNIT_USD,
            description="What vendors billed beyond the worst case reserved for an attempt, in "
            "USD: the most a spend budget or max_cost_usd can be overspent by.",
        )
        self._breakers: list[BreakerSource] = []
        self._retry_budgets: list[BudgetSource] = []
        self._spend_budgets: list[BudgetSource] = []
        meter.create_observable_gauge(
            sc.METRIC_BREAKER_STATE,
            callbacks=[self._observe_breakers],
            unit="1",
            description="1 for the state each deployment's circuit breaker is in, 0 otherwise.",
        )
        meter.create_observable_gauge(
            sc.METRIC_RETRY_BUDGET,
            callbacks=[self._observe(self._retry_budgets, sc.GUARDEDLLM_DEPLOYMENT)],
            unit="{retry}",
            description="Retries each deployment's retry budget allows right now.",
        )
        meter.create_observable_gauge(
            sc.METRIC_SPEND_BUDGET,
            callbacks=[self._observe(self._spend_budgets, sc.GUARDEDLLM_BUDGET)],
            unit=sc.UNIT_USD,
            description="What each spend budget has left to reserve, in USD.",
        )

    def add_breaker_source(self, source: BreakerSource) -> None:
        self._breakers.append(source)

    def add_retry_budget_source(self, source: BudgetSource) -> None:
        self._retry_budgets.append(source)

    def add_spend_budget_source(self, source: BudgetSource) -> None:
        self._spend_budgets.append(source)

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        observations: list[Observation] = []
        for source in tuple(self._breakers):
            for deployment, state in _read(source):
                for known in BREAKER_STATES:
                    observations.append(
                        Observation(
                            1 if state == known else 0,
                            {
                                sc.GUARDEDLLM_DEPLOYMENT: deployment,
                                sc.GUARDEDLLM_BREAKER_STATE: known,
                            },
                        )
                    )
                if state not in BREAKER_STATES:  # a state this version does not know
                    observations.append(
                        Observation(
                            1,
                            {
                                sc.GUARDEDLLM_DEPLOYMENT: deployment,
                                sc.GUARDEDLLM_BREAKER_STATE: state,
                            },
                        )
                    )
        return observations

    @staticmethod
    def _observe(
        sources: list[BudgetSource], key: str
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(float(value), {key: name})
                for source in tuple(sources)
                for name, value in _read(source)
            ]

        return observe


def _read(source: Callable[[], Iterable[_T]]) -> list[_T]:
    # One broken source must not hide the others' series (the SDK would drop the whole callback),
    # and a metrics collection must never raise into the exporter thread.
    try:
        return list(source())
    except Exception:
        _log.warning(
            "guardedllm telemetry: gauge source %r raised; its series are skipped this "
            "collection. Fix the callback registered with Telemetry.observe_*.",
            source,
            exc_info=True,
        )
        return []
