"""Calls as users write them: each result has the type the openai package would give it."""

from __future__ import annotations

from typing import Any, assert_type

from guardedllm import (
    AsyncClient,
    AsyncStream,
    ChatCompletion,
    ChatCompletionChunk,
    Client,
    CreateEmbeddingResponse,
    Estimate,
    Stream,
)
from guardedllm.params import ChatCompletionMessageParam, ChatCompletionToolParam

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
]
TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
]


def sync(client: Client, flag: bool) -> None:
    response = client.chat.completions.create(model="m", messages=MESSAGES)
    assert_type(response, ChatCompletion)
    assert_type(response.choices[0].message.content, str | None)
    assert_type(response.model_dump(exclude_none=True), dict[str, Any])
    assert_type(response.model_dump_json(), str)
    literal = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Hi"}],
        stream=False,
        temperature=0.2,
        max_tokens=10,
        tools=TOOLS,
        tool_choice="auto",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        extra_body={"top_k": 5},
        provider_options={
            "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            "gemini": {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
        },
        reasoning_effort="low",
    )
    assert_type(literal.choices[0].message.reasoning_content, str | None)
    assert_type(literal, ChatCompletion)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert_type(stream, Stream[ChatCompletionChunk])
    with stream as chunks:
        for chunk in chunks:
            assert_type(chunk, ChatCompletionChunk)
    either = client.chat.completions.create(model="m", messages=MESSAGES, stream=flag)
    assert_type(either, ChatCompletion | Stream[ChatCompletionChunk])
    assert_type(client.estimate(model="m", messages=MESSAGES, max_tokens=5), Estimate)
    vectors = client.embeddings.create(model="e", input=["a", "b"], dimensions=256)
    assert_type(vectors, CreateEmbeddingResponse)
    assert_type(vectors.data[0].embedding, list[float] | str)


async def asynchronous(client: AsyncClient) -> None:
    response = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert_type(response, ChatCompletion)
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert_type(stream, AsyncStream[ChatCompletionChunk])
    async with stream as chunks:
        async for chunk in chunks:
            assert_type(chunk, ChatCompletionChunk)
    vectors = await client.embeddings.create(model="e", input="a", encoding_format="base64")
    assert_type(vectors, CreateEmbeddingResponse)
