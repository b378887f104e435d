"""Telemetry off: ``Telemetry.disabled()``, the API's global no-op providers, and a Python where
the OpenTelemetry SDK cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from opentelemetry import context as otel_context
from opentelemetry import trace

from guardedllm.errors import ServerError
from guardedllm.telemetry import Telemetry
from guardedllm.types import Usage

from ._recording import OPENAI_URL, Recorded, chat_request, chunks, completion


def drive_every_method(telemetry: Telemetry) -> None:
    call = telemetry.start_call(requested="support", request=chat_request())
    call.set_estimate(None)  # type: ignore[arg-type]  # never read when nothing records
    call.event("guardedllm.hedge", {"a": 1})
    attempt = call.start_attempt(
        deployment="d",
        provider_kind="openai",
        provider_name="p",
        vendor_model="m",
        server_url=OPENAI_URL,
        number=1,
    )
    attempt.end_error(ServerError("x", status=500), status=500)
    attempt = call.start_attempt(
        deployment="d",
        provider_kind="openai",
        provider_name="p",
        vendor_model="m",
        server_url=OPENAI_URL,
        number=2,
        reason="500",
    )
    headers: dict[str, str] = {}
    attempt.inject(headers)
    attempt.first_chunk()
    attempt.next_chunk()
    attempt.end_stream(chunks("hi"), usage=Usage.of(1, 1))
    attempt.end_ok(completion(), status=200)
    call.end_ok()
    call.abandon()
    telemetry.observe_breakers(lambda: [("d", "open")])


def test_disabled_telemetry_records_nothing_even_with_an_sdk_installed() -> None:
    recorded = Recorded()
    disabled = Telemetry.disabled()
    assert not disabled.enabled
    drive_every_method(disabled)
    assert recorded.spans() == []
    # Calls and attempts of a disabled Telemetry are shared inert objects: nothing per call.
    first = disabled.start_call(requested="a", request=chat_request())
    assert first is disabled.start_call(requested="b", request=chat_request())
    attempt = first.start_attempt(
        deployment="d",
        provider_kind="openai",
        provider_name="p",
        vendor_model="m",
        server_url=OPENAI_URL,
        number=1,
    )
    # Its contexts are the caller's own, so attaching one changes nothing.
    assert first.context == otel_context.get_current()
    assert attempt.context == otel_context.get_current()


def test_the_global_no_op_providers_record_nothing_and_raise_nothing() -> None:
    telemetry = Telemetry()  # the global providers
    drive_every_method(telemetry)
    call = telemetry.start_call(requested="support", request=chat_request())
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # no SDK installed
        assert not call.is_recording


# Blocks every import of opentelemetry.sdk, as in an application that never installed it.
_WITHOUT_SDK = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class BlockSdk(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, BlockSdk())
    try:
        import opentelemetry.sdk.trace
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the blocker failed: opentelemetry.sdk imported")

    import guardedllm
    from guardedllm.errors import ServerError
    from guardedllm.telemetry import Telemetry
    from guardedllm.types import ChatCompletion, ChatCompletionMessage, ChatRequest, Choice, Usage

    request = ChatRequest(model="support", messages=({"role": "user", "content": "hi"},))
    answer = ChatCompletion(
        id="c", created=1, model="m", usage=Usage.of(3, 2),
        choices=(
            Choice(index=0, message=ChatCompletionMessage(content="hello"), finish_reason="stop"),
        ),
    )
    for telemetry in (Telemetry(record_content=True), Telemetry.disabled()):
        call = telemetry.start_call(requested="support", request=request)
        attempt = call.start_attempt(
            deployment="d", provider_kind="anthropic", provider_name="p", vendor_model="m",
            server_url="https://api.anthropic.com", number=1,
        )
        attempt.end_error(ServerError("x", status=529), status=529)
        attempt = call.start_attempt(
            deployment="d", provider_kind="anthropic", provider_name="p", vendor_model="m",
            server_url="https://api.anthropic.com", number=2, reason="529",
        )
        attempt.end_ok(answer, status=200, cost_usd=0.1)
        call.end_ok()
        telemetry.observe_spend_budgets(lambda: [("daily", 1.0)])

    assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")], "SDK imported"
    print("ok")
    """
)


def _python(code: str) -> str:
    """What ``code`` prints, run in a Python of its own (warnings as errors); it must succeed."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_guardedllm_and_telemetry_work_where_the_sdk_cannot_be_imported() -> None:
    assert _python(_WITHOUT_SDK).strip() == "ok"


# A Telemetry made before the application installs its SDK, through the API's globals.
_INSTALLED_LATER = textwrap.dedent(
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from guardedllm.telemetry import Telemetry
    from guardedllm.types import ChatRequest

    request = ChatRequest(model="support", messages=({"role": "user", "content": "hi"},))
    telemetry = Telemetry()
    before = telemetry.start_call(requested="before", request=request)
    assert not before.is_recording
    before.end_ok()

    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracers)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    for name in ("after", "again"):  # the second once the client has seen the SDK
        call = telemetry.start_call(requested=name, request=request)
        assert call.is_recording
        call.end_ok()
    print(sorted(span.name for span in exporter.get_finished_spans()))
    data = reader.get_metrics_data()
    names = {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    print("gen_ai.client.operation.duration" in names)
    """
)


def test_an_sdk_installed_after_the_client_is_made_records_from_then_on() -> None:
    printed = _python(_INSTALLED_LATER)
    assert printed.split("\n")[:2] == ["['chat after', 'chat again']", "True"]
