"""``Telemetry``: one client's tracer, meter and instruments, and the start of every call."""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.metrics import _internal as _metrics_api
from opentelemetry.trace import TracerProvider

from guardedllm._version import __version__
from guardedllm.telemetry import _semconv as sc
from guardedllm.telemetry._attributes import operation_of
from guardedllm.telemetry._call import NOOP_CALL, CallSpan, start_span
from guardedllm.telemetry._instruments import BreakerSource, BudgetSource, Instruments
from guardedllm.types import ChatRequest

__all__ = ["Telemetry"]

# The type of the API's global meter provider before an application installs one: calls then
# skip metrics work entirely. The API makes the tracing equivalent public (ProxyTracerProvider)
# but not this one; if a future API moves it, metrics are simply always recorded to the proxy.
try:
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _PROXY_METER_PROVIDER
except ImportError:  # pragma: no cover - depends on the installed opentelemetry-api
    _PROXY_METER_PROVIDER = None  # type: ignore[assignment,misc]

# Where the API keeps the global providers it has (None until one is set, by code or from the
# environment on the first ``get_*_provider()``, which ``Telemetry`` makes when it is created).
# Read there rather than through ``get_tracer_provider()`` and ``get_meter_provider()``, which
# look the environment up on every call: both cost 17,000 instructions (about 3 us) per guarded
# call while no SDK is installed (counted under callgrind). An API that keeps them elsewhere is
# asked.
_UNKNOWN = object()


def _tracer_provider_set() -> bool:
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # pragma: no cover - depends on the installed opentelemetry-api
        provider = trace.get_tracer_provider()
    return provider is not None and not isinstance(provider, trace.ProxyTracerProvider)


def _meter_provider_set() -> bool:
    if _PROXY_METER_PROVIDER is None:  # pragma: no cover - see above
        return True
    provider = getattr(_metrics_api, "_METER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # pragma: no cover - see above
        provider = metrics.get_meter_provider()
    return provider is not None and not isinstance(provider, _PROXY_METER_PROVIDER)


class Telemetry:
    """Spans and metrics for one client, through opentelemetry-api only.

    ``tracer_provider`` / ``meter_provider`` default to the global ones, which do nothing until
    the application installs an SDK (``opentelemetry.trace.set_tracer_provider``...), as any
    instrumented library behaves. ``record_content=True`` adds the messages and answers to the
    spans (as the conventions' opt-in ``gen_ai.client.inference.operation.details`` event); off
    by default, since prompts hold user data. ``clock`` is the monotonic clock durations are
    measured with when the caller passes no ``now``.

    Create one per client: the tracer, meter and instruments are made here, once.
    ``Telemetry.disabled()`` records nothing at all, at the cost of a few attribute lookups.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        record_content: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tracers = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        meters = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self.record_content = record_content
        self._clock = clock
        self._tracer = tracers.get_tracer(
            sc.INSTRUMENTATION_NAME, __version__, schema_url=sc.SCHEMA_URL
        )
        meter = meters.get_meter(sc.INSTRUMENTATION_NAME, __version__, schema_url=sc.SCHEMA_URL)
        self._instruments: Instruments | None = Instruments(meter)
        # Whether each signal can record: decided now for given providers, and at every call
        # for the global ones, which an application may install after creating its client.
        self._global_tracing = tracer_provider is None
        self._global_metrics = meter_provider is None
        self._tracing = not isinstance(tracer_provider, trace.NoOpTracerProvider)
        self._metrics = not isinstance(meter_provider, metrics.NoOpMeterProvider)

    @classmethod
    def disabled(cls) -> Telemetry:
        """A ``Telemetry`` that records nothing, whatever providers are installed."""
        telemetry = cls(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())
        telemetry._instruments = None
        return telemetry

    @property
    def enabled(self) -> bool:
        return self._instruments is not None

    def start_call(
        self,
        *,
        requested: str,
        request: ChatRequest,
        parent_context: Context | None = None,
        now: float | None = None,
    ) -> CallSpan:
        """Start the span of one logical call, ``chat {requested}`` (the alias, route or model
        name the caller asked for), as a child of ``parent_context``: the context the driver
        captured when the call began (default: the current one, read now). The span is not made
        current; see ``CallSpan``."""
        instruments = self._instruments if self._metrics_installed() else None
        tracer = self._tracer if self._tracing_installed() else None
        if instruments is None and tracer is None:  # no SDK: nothing would be recorded
            return NOOP_CALL
        parent = parent_context if parent_context is not None else otel_context.get_current()
        operation = operation_of(request)
        span = start_span(
            tracer,
            f"{operation} {requested}",
            parent,
            {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_REQUEST_MODEL: requested},
        )
        call = CallSpan(
            span=span,
            parent=parent,
            tracer=tracer,
            instruments=instruments,
            clock=self._clock,
            record_content=self.record_content,
            request=request,
            requested=requested,
            started=now if now is not None else self._clock(),
        )
        if span.is_recording():
            span.set_attributes(call._base_attributes())
        return call

    # A global provider once installed stays (the API refuses to replace it): a client that
    # has seen one stops looking, as for a provider it was given.

    def _tracing_installed(self) -> bool:
        if self._global_tracing:
            if not _tracer_provider_set():
                return False
            self._global_tracing, self._tracing = False, True
        return self._tracing

    def _metrics_installed(self) -> bool:
        if self._instruments is None:
            return False
        if self._global_metrics:
            if not _meter_provider_set():
                return False
            self._global_metrics, self._metrics = False, True
        return self._metrics

    def state_error(self, store: str, on_error: str) -> None:
        """The shared state store failed (``guardedllm.state.errors``)."""
        if self._metrics_installed():
            assert self._instruments is not None
            self._instruments.state_errors.add(
                1, {sc.GUARDEDLLM_STATE_STORE: store, sc.GUARDEDLLM_STATE_ON_ERROR: on_error}
            )

    def record_dropped(self, reason: str, count: int = 1) -> None:
        """The traffic recorder dropped ``count`` records (``guardedllm.record.dropped``).
        Called from the recorder's writer thread as well as from calls."""
        if self._metrics_installed():
            assert self._instruments is not None
            self._instruments.record_dropped.add(count, {sc.GUARDEDLLM_RECORD_REASON: reason})

    # ---------------------------------------------------------------- gauges

    def observe_breakers(self, source: BreakerSource) -> None:
        """Report circuit breaker states: ``source()`` yields ``(deployment, state)`` pairs,
        ``state`` one of "closed", "open", "half_open". Read at each metrics collection, from
        the SDK's thread: it must be quick and thread-safe."""
        if self._instruments is not None:
            self._instruments.add_breaker_source(source)

    def observe_retry_budgets(self, source: BudgetSource) -> None:
        """Report retry budget headroom: ``source()`` yields ``(deployment, retries available)``."""
        if self._instruments is not None:
            self._instruments.add_retry_budget_source(source)

    def observe_spend_budgets(self, source: BudgetSource) -> None:
        """Report spend budget headroom: ``source()`` yields ``(budget name, USD left)``."""
        if self._instruments is not None:
            self._instruments.add_spend_budget_source(source)
