"""guardedllm's OpenTelemetry spans and metrics, printed to the console.

Run it with ``python examples/telemetry_console.py`` (no keys, no network: the calls go to a local
FakeProvider). guardedllm depends on opentelemetry-api only; exporting is the application's
choice, so this example installs the SDK's console exporters as the global providers, as an
application would at startup, before making three calls:

- one that the fake answers at once;
- one whose first attempt gets a 503 and is retried (a ``guardedllm.retry`` event, two attempt
  spans under the call span);
- a stream (``gen_ai.client.operation.time_to_first_chunk``).

The metrics are printed once, when the meter provider shuts down at the end. Needs the SDK:
``pip install opentelemetry-sdk``.
"""

from __future__ import annotations

from collections.abc import Callable

import guardedllm
from guardedllm.testing import FakeProvider

CONFIG = """
[providers.openai]
kind = "openai"
base_url = "{openai}"
api_key_env = "OPENAI_API_KEY"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "ANTHROPIC_API_KEY"

[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[models.claude-haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00

[routes.support]
fallback = ["gpt-4o-mini", "claude-haiku"]
"""

ENVIRON = {"OPENAI_API_KEY": "sk-example", "ANTHROPIC_API_KEY": "sk-ant-example"}


def install_console_exporters() -> Callable[[], object] | None:
    """Install the SDK's console exporters globally; returns what flushes them at exit (None
    when the SDK is not installed)."""
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        return None
    resource = Resource.create({"service.name": "guardedllm-telemetry-example"})
    tracer_provider = TracerProvider(resource=resource)
    # SimpleSpanProcessor prints each span as it ends; production uses BatchSpanProcessor.
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    # One export, at shutdown: an interval longer than this script runs.
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    return meter_provider.shutdown


def main() -> None:
    shutdown = install_console_exporters()
    if shutdown is None:
        print("This example prints through the OpenTelemetry SDK: pip install opentelemetry-sdk")
        return
    messages = [{"role": "user", "content": "Where is my parcel?"}]
    with FakeProvider() as fake:
        config = CONFIG.format(openai=fake.openai_base_url, anthropic=fake.anthropic_base_url)
        registry = guardedllm.Registry.from_toml_text(config)
        with guardedllm.Client(registry, environ=ENVIRON) as client:
            client.chat.completions.create(model="support", messages=messages, max_tokens=50)

            fake.script(model="gpt-4o-mini-2024-07-18", status=503, times=1)
            retried = client.chat.completions.create(model="support", messages=messages)
            print(f"# retried call: {len(retried.guard.attempts)} attempts")

            for _ in client.chat.completions.create(
                model="support", messages=messages, stream=True
            ):
                pass
    shutdown()  # prints the metrics


if __name__ == "__main__":
    main()
