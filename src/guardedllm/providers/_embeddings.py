"""Embeddings on the wire: the bodies of OpenAI's ``POST /embeddings`` (Azure's and
OpenAI-compatible servers' alike) and Gemini's ``:embedContent`` / ``:batchEmbedContents``, and
their answers read into one OpenAI-shaped ``CreateEmbeddingResponse``. Pure.

One shape whatever the vendor: ``encoding_format="base64"`` is OpenAI's little-endian float32
bytes in base64, and Gemini's float answers are encoded the same way, so a caller decodes every
vendor's vectors with one line. Gemini reports no usage for embeddings: its answers carry none,
and the engine fills in the pre-flight estimate (whose notes say so).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from typing import Any

from guardedllm.errors import InvalidRequestError, ResponseFormatError
from guardedllm.providers.base import GuardedFields, Target, decode_json, merge_vendor_fields
from guardedllm.types import (
    ChatRequest,
    CreateEmbeddingResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingUsage,
)

__all__ = [
    "encode_floats",
    "gemini_embedding_body",
    "openai_embedding_body",
    "parse_gemini_embeddings",
    "parse_openai_embeddings",
]

# The fields of an embeddings body the guards count on: the inputs are what the estimate,
# the batch limits and the spend reservation were worked out for.
_OPENAI_GUARDED: GuardedFields = {
    ("model",): "pass model= to create",
    ("input",): "pass input= to create",
}
_GEMINI_GUARDED: GuardedFields = {
    ("content",): "pass input= to create",
    ("requests",): "pass input= to create",
}


def encode_floats(vector: list[float]) -> str:
    """``vector`` as OpenAI's base64 encoding: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def openai_embedding_body(
    request: ChatRequest, embedding: EmbeddingRequest, target: Target, *, include_model: bool
) -> dict[str, Any]:
    inputs = [item if isinstance(item, str) else list(item) for item in embedding.inputs]
    body: dict[str, Any] = {"model": target.model} if include_model else {}
    body["input"] = inputs[0] if embedding.single else inputs
    if embedding.dimensions is not None:
        body["dimensions"] = embedding.dimensions
    if embedding.encoding_format == "base64":
        body["encoding_format"] = "base64"
    if request.user is not None:
        body["user"] = request.user
    return merge_vendor_fields(body, request, target, _OPENAI_GUARDED)


def gemini_embedding_body(
    request: ChatRequest, embedding: EmbeddingRequest, target: Target, model_path: str
) -> dict[str, Any]:
    """``embedContent``'s body for one input, ``batchEmbedContents``' for a list."""
    texts = []
    for index, item in enumerate(embedding.inputs):
        if not isinstance(item, str):
            raise InvalidRequestError(
                f"{target.deployment}: input[{index}] is a list of token ids, which Gemini "
                "does not take; pass the text."
            )
        texts.append(item)

    # Gemini's models answer in any length up to their own: the deployment's declared one
    # unless the caller asks for another (OpenAI's take ``dimensions`` only from the caller:
    # text-embedding-ada-002 refuses it).
    dimensions = embedding.dimensions or target.dimensions

    def one(text: str) -> dict[str, Any]:
        part: dict[str, Any] = {"model": model_path, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            part["outputDimensionality"] = dimensions
        return part

    body = one(texts[0]) if embedding.single else {"requests": [one(t) for t in texts]}
    return merge_vendor_fields(body, request, target, _GEMINI_GUARDED)


def _malformed(target: Target, body: bytes, what: str) -> ResponseFormatError:
    return ResponseFormatError(
        f"{target.deployment}: the embeddings answer from {target.provider} {what}; the vendor "
        "answered something that is not an embeddings response.",
        deployment=target.deployment,
        excerpt=body[:200].decode("utf-8", "replace"),
    )


def _vector(value: object) -> list[float] | None:
    if type(value) is not list or not value:
        return None
    out: list[float] = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return None
        out.append(float(number))
    return out if all(math.isfinite(x) for x in out) else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def parse_openai_embeddings(
    body: bytes, target: Target, embedding: EmbeddingRequest
) -> CreateEmbeddingResponse:
    data = decode_json(body, target, what="embeddings answer")
    if not isinstance(data, Mapping) or type(data.get("data")) is not list:
        raise _malformed(target, body, "has no `data` list")
    items: list[Embedding] = []
    for position, raw in enumerate(data["data"]):
        if not isinstance(raw, Mapping):
            raise _malformed(target, body, f"has data[{position}] that is not an object")
        index = _count(raw.get("index", position))
        vector = raw.get("embedding")
        if isinstance(vector, str) and embedding.encoding_format == "base64":
            value: list[float] | str = vector
        else:
            floats = _vector(vector)
            if floats is None:
                raise _malformed(target, body, f"has no vector of numbers at data[{position}]")
            value = encode_floats(floats) if embedding.encoding_format == "base64" else floats
        if index is None:
            raise _malformed(target, body, f"has no index at data[{position}]")
        items.append(Embedding(index=index, embedding=value))
    if len(items) != len(embedding.inputs):
        raise _malformed(
            target, body, f"has {len(items)} vectors for {len(embedding.inputs)} inputs"
        )
    usage = data.get("usage")
    reported: EmbeddingUsage | None = None
    if isinstance(usage, Mapping):
        prompt = _count(usage.get("prompt_tokens"))
        total = _count(usage.get("total_tokens", prompt))
        if prompt is not None and total is not None:
            reported = EmbeddingUsage(prompt_tokens=prompt, total_tokens=total)
    model = data.get("model")
    return CreateEmbeddingResponse(
        data=tuple(sorted(items, key=lambda e: e.index)),
        model=model if isinstance(model, str) else target.model,
        usage=reported,
    )


def parse_gemini_embeddings(
    body: bytes, target: Target, embedding: EmbeddingRequest
) -> CreateEmbeddingResponse:
    data = decode_json(body, target, what="embeddings answer")
    if not isinstance(data, Mapping):
        raise _malformed(target, body, "is not an object")
    if embedding.single:
        raw = [data.get("embedding")]
    elif type(data.get("embeddings")) is list:
        raw = data["embeddings"]
    else:
        raise _malformed(target, body, "has no `embeddings` list")
    if len(raw) != len(embedding.inputs):
        raise _malformed(target, body, f"has {len(raw)} vectors for {len(embedding.inputs)} inputs")
    items = []
    for index, item in enumerate(raw):
        floats = _vector(item.get("values") if isinstance(item, Mapping) else None)
        if floats is None:
            raise _malformed(target, body, f"has no `values` of numbers for input {index}")
        value = encode_floats(floats) if embedding.encoding_format == "base64" else floats
        items.append(Embedding(index=index, embedding=value))
    return CreateEmbeddingResponse(data=tuple(items), model=target.model, usage=None)
