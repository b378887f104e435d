"""The fake's embeddings endpoints: OpenAI's and Azure's ``POST .../embeddings``, Gemini's
``:embedContent`` and ``:batchEmbedContents``.

Vectors are deterministic: each is drawn from a SHA-256 stream of its text (or token ids) and
scaled to unit length, so the same input always gets the same vector, and different inputs
different ones, at the dimension asked for (``dimensions`` / ``outputDimensionality``) or the
vendor's usual one. Usage counts the inputs' tokens as the fake counts a prompt's; Gemini's
answers, as the real ones, carry no usage. ``encoding_format="base64"`` is answered as OpenAI
does: little-endian float32, base64.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping
from typing import Any

import attrs

from guardedllm.testing._replies import Failure, Rejected, Route, count_text_tokens
from guardedllm.testing._script import Vendor

__all__ = ["DEFAULT_DIMENSIONS", "EmbeddingExchange", "embeddings_answer", "read_embeddings"]

# The length of a vector when the request asks for none: text-embedding-3-small's (OpenAI,
# Azure) and gemini-embedding-001's.
DEFAULT_DIMENSIONS: Mapping[str, int] = {"openai": 1536, "azure": 1536, "gemini": 3072}


@attrs.frozen(kw_only=True)
class EmbeddingExchange:
    """What the fake understood of one valid embeddings request."""

    vendor: Vendor
    model: str
    inputs: tuple[str | tuple[int, ...], ...]
    dimensions: int
    base64: bool = False
    single: bool = False


def _invalid(message: str, param: str | None = None) -> Rejected:
    return Rejected(Failure(kind="invalid_request", status=400, message=message, param=param))


def _dimensions(value: object, vendor: Vendor, param: str) -> int:
    if value is None:
        return DEFAULT_DIMENSIONS[vendor]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(f"Invalid '{param}': expected a positive integer, got {value!r}.", param)
    return value


def _openai_inputs(value: object) -> tuple[tuple[str | tuple[int, ...], ...], bool]:
    def tokens(item: object) -> bool:
        return (
            isinstance(item, list)
            and bool(item)
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        )

    if isinstance(value, str) and value:
        return (value,), True
    if tokens(value):
        assert isinstance(value, list)
        return (tuple(value),), True
    if isinstance(value, list) and value:
        inputs: list[str | tuple[int, ...]] = []
        for item in value:
            if isinstance(item, str) and item:
                inputs.append(item)
            elif tokens(item):
                assert isinstance(item, list)
                inputs.append(tuple(item))
            else:
                raise _invalid("'$.input' is invalid. Please check the API reference.", "input")
        return tuple(inputs), False
    raise _invalid("'$.input' is invalid. Please check the API reference.", "input")


def read_embeddings(vendor: Vendor, route: Route, payload: Any) -> EmbeddingExchange:
    """The request as the vendor reads it; ``Rejected`` for what it would refuse."""
    if not isinstance(payload, Mapping):
        raise _invalid("The request body must be a JSON object.")
    if vendor == "gemini":
        return _read_gemini(route, payload)
    model = route.path_model if route.path_model is not None else payload.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter", "model")
    inputs, single = _openai_inputs(payload.get("input"))
    if len(inputs) > 2048:
        raise _invalid("'$.input' is invalid: at most 2048 inputs per request.", "input")
    form = payload.get("encoding_format", "float")
    if form not in ("float", "base64"):
        raise _invalid(f"Invalid 'encoding_format': {form!r}.", "encoding_format")
    return EmbeddingExchange(
        vendor=vendor,
        model=model,
        inputs=inputs,
        dimensions=_dimensions(payload.get("dimensions"), vendor, "dimensions"),
        base64=form == "base64",
        single=single,
    )


def _gemini_text(request: object, where: str) -> tuple[str, object]:
    content = request.get("content") if isinstance(request, Mapping) else None
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list) or not parts:
        raise _invalid(f"* {where}content: contents must not be empty")
    text = "".join(p.get("text", "") for p in parts if isinstance(p, Mapping))
    assert isinstance(request, Mapping)
    return text, request.get("outputDimensionality")


def _read_gemini(route: Route, payload: Mapping[str, Any]) -> EmbeddingExchange:
    model = route.path_model or ""
    if route.batch:
        requests = payload.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _invalid("* BatchEmbedContentsRequest.requests: must not be empty")
        if len(requests) > 100:
            raise _invalid("* BatchEmbedContentsRequest.requests: at most 100 requests")
        read = [_gemini_text(r, f"requests[{i}].") for i, r in enumerate(requests)]
        for index, request in enumerate(requests):
            if request.get("model") != f"models/{model}":
                raise _invalid(
                    f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each "
                    "request must be the batch's"
                )
        texts = tuple(text for text, _ in read)
        dimensions = read[0][1]
        single = False
    else:
        text, dimensions = _gemini_text(payload, "")
        texts, single = (text,), True
    return EmbeddingExchange(
        vendor="gemini",
        model=model,
        inputs=texts,
        dimensions=_dimensions(dimensions, "gemini", "outputDimensionality"),
        single=single,
    )


def vector_of(item: str | tuple[int, ...], dimensions: int) -> list[float]:
    """The input's deterministic unit vector of ``dimensions`` floats."""
    seed = item.encode() if isinstance(item, str) else repr(item).encode()
    raw = bytearray()
    counter = 0
    while len(raw) < 4 * dimensions:
        raw += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    numbers = [
        (int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 2**31) - 1.0 for i in range(dimensions)
    ]
    norm = math.sqrt(sum(x * x for x in numbers)) or 1.0
    # Rounded through float32, as vendors' vectors are: the base64 form then carries it exactly.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in numbers]


def _tokens(item: str | tuple[int, ...]) -> int:
    return count_text_tokens(item) if isinstance(item, str) else len(item)


def embeddings_answer(exchange: EmbeddingExchange) -> dict[str, Any]:
    """The vendor's answer body."""
    vectors = [vector_of(item, exchange.dimensions) for item in exchange.inputs]
    if exchange.vendor == "gemini":
        if exchange.single:
            return {"embedding": {"values": vectors[0]}}
        return {"embeddings": [{"values": v} for v in vectors]}
    tokens = sum(_tokens(item) for item in exchange.inputs)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": (
                    base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii")
                    if exchange.base64
                    else v
                ),
            }
            for index, v in enumerate(vectors)
        ],
        "model": exchange.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
