"""Whole calls through Client and AsyncClient (asyncio, trio) against FakeProvider over real
loopback HTTP, for every wire format, streaming and not."""

from __future__ import annotations

import json

import pytest

from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from support import DEPLOYMENTS, ENVIRON, Call, Streamed

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the test suite."},
]

# Where each deployment's requests land on the fake, and which header carries its key.
WIRE = {
    "gpt-4o-mini": (
        "/v1/chat/completions",
        "authorization",
        "Bearer " + ENVIRON["TEST_OPENAI_KEY"],
    ),
    "azure-4o": (
        "/openai/deployments/prod-gpt-4o/chat/completions",
        "api-key",
        ENVIRON["TEST_AZURE_KEY"],
    ),
    "llama": ("/v1/chat/completions", "authorization", None),
    "claude-haiku": ("/v1/messages", "x-api-key", ENVIRON["TEST_ANTHROPIC_KEY"]),
    "gemini-flash": (
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "x-goog-api-key",
        ENVIRON["TEST_GEMINI_KEY"],
    ),
}


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_call_reaches_each_vendor_and_comes_back_openai_shaped(
    call: Call, fake_provider: FakeProvider, deployment: str
) -> None:
    fake_provider.script(content="Hello, suite!")
    response = call(model=deployment, messages=MESSAGES, max_tokens=50)

    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == "Hello, suite!"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0
    assert response.usage.completion_tokens > 0
    guard = response.guard
    assert guard is not None
    assert guard.deployment == deployment
    assert [(a.deployment, a.outcome, a.status) for a in guard.attempts] == [
        (deployment, "ok", 200)
    ]
    assert guard.estimate.input_tokens > 0
    assert guard.cost_usd is not None
    if deployment != "llama":  # the local model is free
        assert guard.cost_usd > 0

    (request,) = fake_provider.requests
    path, header, value = WIRE[deployment]
    assert request.path == path
    assert request.headers.get(header) == value
    assert request.stream is False


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_a_stream_from_each_vendor_yields_openai_chunks_and_completes(
    call: Call, fake_provider: FakeProvider, deployment: str
) -> None:
    fake_provider.script(content="one two three four five six", chunks=3)
    result = call(model=deployment, messages=MESSAGES, max_tokens=50, stream=True)

    assert isinstance(result, Streamed)
    assert result.completed
    assert result.content == "one two three four five six"
    assert result.chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in result.chunks if c.choices]
    assert finishes[-1] == "stop"
    # Without stream_options.include_usage the usage-only chunk stays hidden, as with openai.
    assert all(chunk.choices for chunk in result.chunks)
    assert result.guard.cost_usd is not None
    assert fake_provider.requests[0].stream is True


def test_include_usage_shows_the_usage_chunk(call: Call, fake_provider: FakeProvider) -> None:
    result = call(
        model="claude-haiku",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(result, Streamed)
    last = result.chunks[-1]
    assert last.choices == ()
    assert last.usage is not None
    assert last.usage.completion_tokens > 0


@pytest.mark.parametrize("deployment", ["gpt-4o-mini", "claude-haiku", "gemini-flash"])
def test_tool_calls_come_back_as_openai_tool_calls(
    call: Call, fake_provider: FakeProvider, deployment: str
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    fake_provider.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    response = call(model=deployment, messages=MESSAGES, tools=tools)

    assert isinstance(response, ChatCompletion)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Oslo"}


def test_an_alias_and_a_route_resolve_and_say_why(call: Call, fake_provider: FakeProvider) -> None:
    by_alias = call(model="chat", messages=MESSAGES)
    by_route = call(model="support", messages=MESSAGES)
    assert by_alias.guard.deployment == "gpt-4o-mini"
    assert "chat" in by_alias.guard.route_reason
    assert by_route.guard.route == "support"
    assert by_route.guard.deployment == "gpt-4o-mini"
    assert fake_provider.requests[0].json["model"] == "gpt-4o-mini-2024-07-18"
