"""Send guardedllm's spans and metrics to an OpenTelemetry collector over OTLP/HTTP.

Run it with ``python examples/telemetry_otlp.py``. It sends only when you say where: set
``OTEL_EXPORTER_OTLP_ENDPOINT`` (for example ``http://localhost:4318`` for a local collector,
Jaeger or Grafana Alloy); without it, it explains and exits without sending anything. The
calls themselves go to a local FakeProvider (no keys needed). The exporter is the application's
dependency, not guardedllm's:

    pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http

The standard ``OTEL_*`` variables configure the exporters (``OTEL_EXPORTER_OTLP_HEADERS`` for
an API token, ``OTEL_SERVICE_NAME`` ...); this script sets none of them itself.
"""

from __future__ import annotations

import os
import sys

import guardedllm
from guardedllm.testing import FakeProvider

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
INSTALL = "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"

CONFIG = """
[providers.openai]
kind = "openai"
base_url = "{openai}"
api_key_env = "OPENAI_API_KEY"

[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[aliases]
chat = "gpt-4o-mini"
"""


def main() -> int:
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as missing:
        print(f"The OTLP exporter is not installed ({missing.name}). Install it with:")
        print(f"    {INSTALL}")
        return 0
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        print("No OTLP endpoint configured, so nothing is sent. Point it at your collector:")
        print("    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318")
        return 0

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "guardedllm-example")}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    metrics.set_meter_provider(meter_provider)

    with FakeProvider() as fake:
        registry = guardedllm.Registry.from_toml_text(CONFIG.format(openai=fake.openai_base_url))
        environ = {"OPENAI_API_KEY": "sk-example"}
        with guardedllm.Client(registry, environ=environ) as client:
            fake.script(status=429, retry_after=0, times=1)  # one retry, to see it in the trace
            response = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Hello!"}]
            )
            print(response.choices[0].message.content)
    # Flush before exiting: the batch processor and the metric reader export in the background.
    tracer_provider.shutdown()
    meter_provider.shutdown()
    print(f"Sent to {next(os.environ[n] for n in ENDPOINT_VARIABLES if os.environ.get(n))}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
