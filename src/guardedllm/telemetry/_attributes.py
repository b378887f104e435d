"""Span attributes from our values: the request, a response, a stream's chunks, usage.

Pure functions; callers build these only for spans that record (``span.is_recording()``), so an
unsampled call or an application without the OpenTelemetry SDK never pays for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from opentelemetry.util.types import AttributeValue

from guardedllm.telemetry import _semconv as sc
from guardedllm.types import ChatCompletion, ChatCompletionChunk, ChatRequest, Usage

Attributes = dict[str, AttributeValue]

# response_format types, as the conventions' gen_ai.output.type values.
_OUTPUT_TYPES = {"json_object": "json", "json_schema": "json", "text": "text"}


@attrs.frozen(kw_only=True)
class ResponseSummary:
    """What a completed attempt answered, as telemetry needs it (either kind of call)."""

    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    chunks: int | None = None  # for streams: how many chunks arrived


def operation_of(request: ChatRequest | None) -> str:
    """The call's ``gen_ai.operation.name``: "embeddings" for an embeddings call, else
    "chat"."""
    if request is not None and request.embedding is not None:
        return sc.OPERATION_EMBEDDINGS
    return sc.OPERATION_CHAT


def request_attributes(request: ChatRequest) -> Attributes:
    """The ``gen_ai.request.*`` attributes the caller's parameters give (model excluded: the call
    span names what was requested, each attempt span the vendor's model)."""
    attributes: Attributes = {
        sc.GEN_AI_OPERATION_NAME: operation_of(request),
        sc.GEN_AI_REQUEST_STREAM: request.stream,
    }
    if request.max_tokens is not None:
        attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.temperature is not None:
        attributes[sc.GEN_AI_REQUEST_TEMPERATURE] = float(request.temperature)
    if request.top_p is not None:
        attributes[sc.GEN_AI_REQUEST_TOP_P] = float(request.top_p)
    if request.stop:
        attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = list(request.stop)
    if request.seed is not None:
        attributes[sc.GEN_AI_REQUEST_SEED] = request.seed
    extra = request.extra
    choices = extra.get("n")
    if isinstance(choices, int) and choices != 1:  # the conventions record it only when != 1
        attributes[sc.GEN_AI_REQUEST_CHOICE_COUNT] = choices
    for key, name in (
        ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ):
        value = extra.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = float(value)
    output_type = _output_type(request)
    if output_type is not None:
        attributes[sc.GEN_AI_OUTPUT_TYPE] = output_type
    return attributes


def _output_type(request: ChatRequest) -> str | None:
    if request.response_format is None:
        return None
    kind: Any = request.response_format.get("type")
    return _OUTPUT_TYPES.get(kind) if isinstance(kind, str) else None


def usage_attributes(usage: Usage) -> Attributes:
    """Token counts in the conventions' terms: input includes cached tokens, output includes
    reasoning tokens (as both OpenAI's usage and the conventions count them)."""
    attributes: Attributes = {
        sc.GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
    }
    cached = usage.prompt_tokens_details.cached_tokens
    if cached:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    reasoning = usage.completion_tokens_details.reasoning_tokens
    if reasoning:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
    return attributes


def summary_attributes(summary: ResponseSummary) -> Attributes:
    attributes: Attributes = {}
    if summary.response_id:
        attributes[sc.GEN_AI_RESPONSE_ID] = summary.response_id
    if summary.response_model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = summary.response_model
    if summary.finish_reasons:
        attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = list(summary.finish_reasons)
    if summary.chunks is not None:
        attributes[sc.GUARDEDLLM_STREAM_CHUNKS] = summary.chunks
    return attributes


def summarize_completion(response: ChatCompletion) -> ResponseSummary:
    return ResponseSummary(
        response_id=response.id or None,
        response_model=response.model or None,
        finish_reasons=_reasons(c.finish_reason for c in response.choices),
    )


def summarize_chunks(chunks: Sequence[ChatCompletionChunk], *, detailed: bool) -> ResponseSummary:
    """A stream's id and model (from its first chunk, as every chunk repeats them) and, when
    ``detailed``, the finish reason of each choice, in choice order."""
    first = chunks[0] if chunks else None
    if first is None:
        return ResponseSummary(chunks=0)
    if not detailed:
        return ResponseSummary(
            response_id=first.id or None, response_model=first.model or None, chunks=len(chunks)
        )
    reasons: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                reasons[choice.index] = choice.finish_reason
    return ResponseSummary(
        response_id=first.id or None,
        response_model=first.model or None,
        finish_reasons=tuple(reasons[index] for index in sorted(reasons)),
        chunks=len(chunks),
    )


def _reasons(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(value for value in values if value is not None)
