"""A ``Telemetry`` wired to the OpenTelemetry SDK's in-memory span exporter and metric reader,
and the values the engine hands the recorder (requests, responses, chunks)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guardedllm.telemetry import Telemetry
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatRequest,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    FinishReason,
    Usage,
)

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"


class Recorded:
    """What one test's ``Telemetry`` exported."""

    def __init__(self, *, record_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(
            self.tracer_provider, self.meter_provider, record_content=record_content
        )
        self._metrics: dict[str, Metric] | None = None

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def metrics(self) -> dict[str, Metric]:
        """Every metric collected, by name (collected once per test: the reader is cumulative)."""
        if self._metrics is None:
            self._metrics = self.collect(self.reader)
        return self._metrics

    @staticmethod
    def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
        data = reader.get_metrics_data()
        return {
            metric.name: metric
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def points(self, name: str) -> list[Any]:
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []

    def point(self, name: str, **attributes: Any) -> Any:
        """The one point of metric ``name`` whose attributes include ``attributes`` (dots in
        attribute names written as double underscores)."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        found = [
            p for p in self.points(name) if all(p.attributes.get(k) == v for k, v in wanted.items())
        ]
        assert len(found) == 1, f"{name}: expected one point with {wanted}, got {found}"
        return found[0]


def chat_request(**overrides: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "model": "support",
        "messages": (
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where is my parcel?"},
        ),
        "max_tokens": 200,
        "temperature": 0.3,
        "top_p": 0.9,
    }
    values.update(overrides)
    return ChatRequest(**values)


def completion(
    text: str = "It ships today.",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    usage: Usage | None = None,
) -> ChatCompletion:
    return ChatCompletion(
        id="chatcmpl-1",
        created=1700000000,
        model=model,
        choices=(
            Choice(index=0, message=ChatCompletionMessage(content=text), finish_reason="stop"),
        ),
        usage=usage if usage is not None else Usage.of(30, 12, cached_tokens=10),
    )


def chunks(*texts: str, finish: FinishReason = "stop") -> list[ChatCompletionChunk]:
    """A stream's chunks: one per text, the last choice finishing, then the usage chunk."""
    result = [
        ChatCompletionChunk(
            id="chatcmpl-s",
            created=1700000000,
            model="claude-3-5-haiku-20241022",
            choices=(
                ChunkChoice(
                    index=0,
                    delta=ChoiceDelta(content=text),
                    finish_reason=finish if i == len(texts) - 1 else None,
                ),
            ),
        )
        for i, text in enumerate(texts)
    ]
    result.append(
        ChatCompletionChunk(
            id="chatcmpl-s",
            created=1700000000,
            model="claude-3-5-haiku-20241022",
            choices=(),
            usage=Usage.of(40, 8),
        )
    )
    return result
