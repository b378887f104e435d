"""The Google Gemini API wire format (generativelanguage.googleapis.com, provider kind "gemini").

Requests arrive OpenAI-shaped and leave as ``POST {base_url}/v1beta/models/{model}:generateContent``
(or ``:streamGenerateContent?alt=sse``), authenticated by ``x-goog-api-key``; answers come back
OpenAI-shaped. Translating the request lives in ``_gemini_request``, reading answers (bodies,
streams, errors) in ``_gemini_response``; each module states its rules.

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from guardedllm.errors import InvalidRequestError, ProviderError
from guardedllm.providers._embeddings import gemini_embedding_body, parse_gemini_embeddings
from guardedllm.providers._gemini_request import request_body
from guardedllm.providers._gemini_response import (
    GeminiStreamDecoder,
    parse_error_payload,
    parse_response,
)
from guardedllm.providers.base import (
    Target,
    first_header,
    post_request,
    read_count,
    retry_after_seconds,
)
from guardedllm.types import (
    ChatCompletion,
    ChatRequest,
    CreateEmbeddingResponse,
    EmbeddingRequest,
)

__all__ = ["DEFAULT_API_VERSION", "GeminiStreamDecoder", "GeminiWire"]

# The API version when the provider config names none: every feature used here
# (responseJsonSchema, thoughtsTokenCount, functionCall ids) is in v1beta, not all of it in v1.
DEFAULT_API_VERSION = "v1beta"


class GeminiWire:
    """The Gemini ``generateContent`` API. Pure: builds requests, parses bodies."""

    kind = "gemini"

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        model = _model_path(target)
        embedding = request.embedding
        if embedding is not None:
            content = _json_bytes(gemini_embedding_body(request, embedding, target, model))
        else:
            content = _json_bytes(request_body(request, target))
        version = target.api_version or DEFAULT_API_VERSION
        headers = {"content-type": "application/json"}
        params: dict[str, str] = {}
        if embedding is not None:
            method = "embedContent" if embedding.single else "batchEmbedContents"
        elif request.stream:
            method = "streamGenerateContent"
            params["alt"] = "sse"
            headers["accept"] = "text/event-stream"
        else:
            method = "generateContent"
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        headers.update(target.headers)
        return post_request(
            target,
            f"{version}/{model}:{method}",
            params=params,
            headers=list(headers.items()),
            content=content,
        )

    def build_count_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        # countTokens with a whole generateContentRequest counts system instruction and tools
        # too, as generateContent bills them.
        body = {
            "generateContentRequest": {
                "model": _model_path(target),
                **request_body(request, target),
            }
        }
        headers = {"content-type": "application/json"}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        headers.update(target.headers)
        path = f"{target.api_version or DEFAULT_API_VERSION}/{_model_path(target)}:countTokens"
        return post_request(target, path, headers=list(headers.items()), content=_json_bytes(body))

    def parse_count(self, body: bytes, target: Target) -> int:
        return read_count(body, target, "totalTokens")

    def parse_response(self, body: bytes, target: Target) -> ChatCompletion:
        return parse_response(body, target)

    def parse_embeddings(
        self, body: bytes, target: Target, embedding: EmbeddingRequest
    ) -> CreateEmbeddingResponse:
        return parse_gemini_embeddings(body, target, embedding)

    def parse_error(
        self, status: int, headers: httpx.Headers, body: bytes, target: Target, *, now: float
    ) -> ProviderError:
        return parse_error_payload(
            status,
            body,
            target,
            request_id=first_header(headers, "x-request-id"),
            retry_after=retry_after_seconds(headers, now=now),
        )

    def stream_decoder(self, target: Target) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(target)


def _model_path(target: Target) -> str:
    """``models/<id>``, or the id as given when it names its own collection (tunedModels/...)."""
    return target.model if "/" in target.model else f"models/{target.model}"


def _json_bytes(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"The request holds a value that is not JSON ({exc}); pass only strings, "
            "numbers, booleans, lists and dicts in messages, tools, response_format, "
            "extra_body and provider_options."
        ) from None
