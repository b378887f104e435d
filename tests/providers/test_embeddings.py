"""The embeddings wire formats, pure: bodies for OpenAI, Azure and Gemini, answers read into
one OpenAI shape (Gemini's floats encoded as OpenAI's base64 when asked), malformed answers and
vendor errors mapped as chat's are, and the guarded fields of a body refused."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
import pytest

from guardedllm._request import embedding_request
from guardedllm.errors import BadRequestError, InvalidRequestError, ResponseFormatError
from guardedllm.providers import Target, wire_format_for
from guardedllm.providers.base import EmbeddingWire
from guardedllm.types import ChatRequest

OPENAI = Target(
    deployment="small",
    provider="openai",
    kind="openai",
    base_url="https://api.openai.com/v1",
    model="text-embedding-3-small",
    api_key="sk-test",
)
AZURE = Target(
    deployment="az",
    provider="azure",
    kind="azure-openai",
    base_url="https://example.openai.azure.com",
    model="prod-embed",
    api_key="az",
    api_version="2024-10-21",
)
GEMINI = Target(
    deployment="gem",
    provider="gemini",
    kind="gemini",
    base_url="https://generativelanguage.googleapis.com",
    model="gemini-embedding-001",
    api_key="AIza",
)


def request(**kwargs: Any) -> ChatRequest:
    kwargs.setdefault("model", "m")
    return embedding_request(**kwargs)


def body_of(sent: httpx.Request) -> Any:
    return json.loads(sent.content)


def wire(kind: str) -> EmbeddingWire:
    found = wire_format_for(kind)
    assert isinstance(found, EmbeddingWire)
    return found


def parse(kind: str, target: Target, answer: Any, req: ChatRequest) -> Any:
    assert req.embedding is not None
    return wire(kind).parse_embeddings(json.dumps(answer).encode(), target, req.embedding)


def test_openai_and_azure_bodies() -> None:
    req = request(input=["a", [1, 2]], dimensions=64, encoding_format="base64", user="u1")
    sent = wire_format_for("openai").build_request(req, OPENAI)
    assert str(sent.url) == "https://api.openai.com/v1/embeddings"
    assert body_of(sent) == {
        "model": "text-embedding-3-small",
        "input": ["a", [1, 2]],
        "dimensions": 64,
        "encoding_format": "base64",
        "user": "u1",
    }
    sent = wire_format_for("azure-openai").build_request(request(input="a"), AZURE)
    assert sent.url.path == "/openai/deployments/prod-embed/embeddings"
    assert sent.url.params["api-version"] == "2024-10-21"
    assert body_of(sent) == {"input": "a"}


def test_gemini_bodies() -> None:
    one = wire_format_for("gemini").build_request(request(input="a", dimensions=8), GEMINI)
    assert one.url.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert body_of(one) == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 8,
    }
    batch = wire_format_for("gemini").build_request(request(input=["a", "b"]), GEMINI)
    assert batch.url.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in body_of(batch)["requests"]] == ["a", "b"]
    with pytest.raises(InvalidRequestError, match="token ids"):
        wire_format_for("gemini").build_request(request(input=[[1, 2]]), GEMINI)


def test_guarded_fields_are_refused_and_others_merged() -> None:
    with pytest.raises(InvalidRequestError, match="`input`"):
        wire_format_for("openai").build_request(
            request(input="a", extra_body={"input": "b"}), OPENAI
        )
    sent = wire_format_for("gemini").build_request(
        request(input="a", provider_options={"gemini": {"taskType": "RETRIEVAL_QUERY"}}), GEMINI
    )
    assert body_of(sent)["taskType"] == "RETRIEVAL_QUERY"


def test_gemini_floats_become_openais_base64() -> None:
    req = request(input=["a", "b"], encoding_format="base64")
    answer = {"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}]}
    resp = parse("gemini", GEMINI, answer, req)
    assert resp.usage is None  # Gemini reports none; the engine fills in the estimate
    raw = base64.b64decode(resp.data[1].embedding)
    assert struct.unpack("<2f", raw) == (0.25, 2.0)
    assert resp.model == "gemini-embedding-001"


def test_openai_answer_in_index_order() -> None:
    answer = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    resp = parse("openai", OPENAI, answer, request(input=["x", "y"]))
    assert [e.embedding for e in resp.data] == [[1.0, 0.0], [0.0, 1.0]]
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 3


@pytest.mark.parametrize(
    "answer",
    [
        {"data": "nope"},
        {"data": [{"index": 0, "embedding": ["x"]}]},
        {"data": [{"index": 0, "embedding": [1.0]}]},  # one vector for two inputs
        [],
    ],
)
def test_malformed_answers(answer: Any) -> None:
    with pytest.raises(ResponseFormatError, match="embeddings answer"):
        parse("openai", OPENAI, answer, request(input=["x", "y"]))


def test_vendor_errors_map_as_chats() -> None:
    body = json.dumps(
        {"error": {"message": "bad input", "type": "invalid_request_error", "code": None}}
    ).encode()
    error = wire_format_for("openai").parse_error(400, httpx.Headers(), body, OPENAI, now=0.0)
    assert isinstance(error, BadRequestError)


def test_anthropic_has_no_embeddings_endpoint() -> None:
    assert not isinstance(wire_format_for("anthropic"), EmbeddingWire)
