"""What telemetry costs per call, measured with telemetry off, with no SDK installed, and with
the SDK exporting to memory, two ways:

1. The recorder alone. Each candidate drives the recorder exactly as the engine does for a
   non-streaming call answered by its first attempt (``start_call``, ``start_attempt``,
   ``AttemptSpan.end_ok``, ``CallSpan.end_ok``), on prebuilt values, so only telemetry's own
   work is timed, next to one whole guarded call (the reference).
2. Whole calls. ``Client.chat.completions.create`` through an ``httpx.MockTransport``, the
   client given each ``Telemetry`` in turn, against the same client with telemetry disabled:
   what an application pays per call, recorder and engine wiring included.

The three telemetries:

- ``Telemetry.disabled()``: the floor (a few attribute lookups and early returns);
- ``global no-op API``: ``Telemetry()`` with no SDK installed, what every application that does
  not configure OpenTelemetry pays (non-recording spans, proxy instruments);
- ``SDK, in-memory export``: opentelemetry-sdk's TracerProvider with a SimpleSpanProcessor into
  an InMemorySpanExporter and a MeterProvider with an InMemoryMetricReader (every span sampled,
  every attribute built, every metric aggregated).

This process never installs global providers, so other sections of ``run.py`` are unaffected.

Run alone:  python benchmarks/bench_telemetry.py [--quick]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import httpx
from _harness import FULL, QUICK, Mode, Section, Target, interleave
from _payloads import ENVIRON, MAX_TOKENS, MESSAGES, completion_handler, guarded_client, registry

from guardedllm import Client
from guardedllm.estimate import Estimate
from guardedllm.telemetry import Telemetry
from guardedllm.types import (
    Attempt,
    ChatCompletion,
    ChatCompletionMessage,
    ChatRequest,
    Choice,
    GuardInfo,
    Usage,
)

# The recorder overhead with no SDK installed, as a share of one guarded call's CPU.
GOAL = 0.05
# A whole call with no SDK installed, against the same call with telemetry disabled. The
# recorder's own share is measured precisely above (about 1 %); whole calls on a busy 2-core
# machine vary by a few percent round to round, so this goal only catches wiring that costs
# more than the recorder does.
CLIENT_GOAL = 1.10

DISABLED = "Telemetry.disabled()"
NO_SDK = "global no-op API (no SDK)"
SDK = "SDK, in-memory export"
REFERENCE = "guardedllm Client call"

# Spans kept by the in-memory exporter before it is cleared, so a long sample does not grow.
_EXPORTER_CAPACITY = 10_000

REQUEST = ChatRequest(
    model="chat", messages=tuple(MESSAGES), max_tokens=MAX_TOKENS, temperature=0.2
)
RESPONSE = ChatCompletion(
    id="chatcmpl-bench",
    created=1700000000,
    model="gpt-4o-mini-2024-07-18",
    choices=(
        Choice(index=0, message=ChatCompletionMessage(content="Hello!"), finish_reason="stop"),
    ),
    usage=Usage.of(25, 9, cached_tokens=0),
)
ESTIMATE = Estimate(
    deployment="gpt-4o-mini",
    input_tokens=25,
    max_output_tokens=MAX_TOKENS,
    cost_usd_max=0.0001,
    cost_usd_expected=0.00003,
    fits_context=True,
    exact=True,
    tokenizer="o200k_base",
)
GUARD = GuardInfo(
    requested="chat",
    route="chat",
    route_reason="alias 'chat'",
    deployment="gpt-4o-mini",
    attempts=(Attempt(deployment="gpt-4o-mini", provider="openai", number=1, outcome="ok"),),
    estimate=ESTIMATE,
    cost_usd=0.0000091,
)


def simulated_call(telemetry: Telemetry) -> Callable[[], object]:
    """One call's recorder usage, as the engine makes it."""

    def call() -> None:
        span = telemetry.start_call(requested="chat", request=REQUEST)
        attempt = span.start_attempt(
            deployment="gpt-4o-mini",
            provider_kind="openai",
            provider_name="openai",
            vendor_model="gpt-4o-mini-2024-07-18",
            server_url="https://api.openai.com/v1",
            number=1,
        )
        attempt.end_ok(RESPONSE, status=200, cost_usd=0.0000091)
        span.end_ok(GUARD)

    return call


def sdk_telemetry() -> tuple[Telemetry, Callable[[], None]]:
    """A Telemetry on the SDK exporting to memory, and a function that empties the exporter."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def clear() -> None:
        if len(exporter.get_finished_spans()) > _EXPORTER_CAPACITY:
            exporter.clear()

    return Telemetry(tracer_provider, meter_provider), clear


def telemetries(notes: list[str]) -> dict[str, tuple[Telemetry, Callable[[], None]]]:
    """Each telemetry measured, with what keeps its exporter from growing (a no-op for the
    two that export nothing)."""

    def nothing() -> None:
        pass

    result = {DISABLED: (Telemetry.disabled(), nothing), NO_SDK: (Telemetry(), nothing)}
    try:
        result[SDK] = sdk_telemetry()
    except ImportError:
        notes.append("opentelemetry-sdk is not installed: the SDK candidates were skipped")
    return result


def recorder_candidates(notes: list[str]) -> dict[str, Callable[[], object]]:
    result: dict[str, Callable[[], object]] = {}
    for name, (telemetry, clear) in telemetries(notes).items():
        result[name] = _then(simulated_call(telemetry), clear)
    client = guarded_client(httpx.MockTransport(completion_handler))
    result[REFERENCE] = lambda: client.chat.completions.create(
        model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
    )
    return result


def client_candidates(notes: list[str]) -> dict[str, Callable[[], object]]:
    """A whole guarded call per candidate, each through its own client and telemetry."""
    result: dict[str, Callable[[], object]] = {}
    for name, (telemetry, clear) in telemetries(notes).items():
        client = Client(
            registry(),
            transport=httpx.MockTransport(completion_handler),
            environ=ENVIRON,
            telemetry=telemetry,
        )

        def call(client: Client = client) -> object:
            return client.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS
            )

        result[f"Client, {name}"] = _then(call, clear)
    return result


def _then(first: Callable[[], object], second: Callable[[], None]) -> Callable[[], object]:
    def both() -> object:
        result = first()
        second()
        return result

    return both


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    recorder = Section("6. Telemetry recorder CPU per call (non-streaming, one attempt)")
    samples = interleave(recorder_candidates(recorder.notes), mode)
    reference = samples[REFERENCE]
    for name, values in samples.items():
        recorder.add(
            name, values, "us/call", scale=1e6, baseline=reference, baseline_label=REFERENCE
        )
    recorder.notes.append(
        "ratios are to one whole guarded call through a MockTransport (with no SDK installed), "
        "paired by round; the recorder runs on prebuilt values"
    )
    targets = [
        Target(
            "telemetry recorder with no SDK installed vs one guarded call",
            recorder.ratio(NO_SDK),
            GOAL,
            higher_is_better=False,
            basis="global no-op API, the recorder calls of one non-streaming call",
        )
    ]

    calls = Section("6b. Guarded Client call CPU by telemetry (MockTransport, one attempt)")
    samples = interleave(client_candidates(calls.notes), mode)
    baseline_label = f"Client, {DISABLED}"
    baseline = samples[baseline_label]
    for name, values in samples.items():
        calls.add(
            name, values, "us/call", scale=1e6, baseline=baseline, baseline_label=baseline_label
        )
    calls.notes.append(
        "whole calls through the client, recorder and engine wiring included; ratios are to "
        "the same call with telemetry disabled, paired by round"
    )
    targets.append(
        Target(
            "guarded call with no SDK installed vs telemetry disabled",
            calls.ratio(f"Client, {NO_SDK}"),
            CLIENT_GOAL,
            higher_is_better=False,
            basis="Client.chat.completions.create through a MockTransport",
        )
    )
    return [recorder, calls], targets


def main() -> None:
    from _harness import render

    mode: Any = QUICK if "--quick" in sys.argv else FULL
    sections, targets = run(mode)
    print(render(sections))
    for target in targets:
        print(target.line())


if __name__ == "__main__":
    main()
