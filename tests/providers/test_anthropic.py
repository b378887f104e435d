"""The Anthropic Messages API wire format: request JSON, answers, errors and streams."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import anthropic
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm import errors
from guardedllm.providers.anthropic import (
    ANTHROPIC_VERSION,
    JSON_TOOL_NAME,
    AnthropicStreamDecoder,
    AnthropicWire,
)
from guardedllm.providers.base import StreamDecoder, Target, WireFormat
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatRequest,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    Function,
    ThinkingBlock,
    ToolCall,
    Usage,
)

# Recent anthropic SDKs ship on httpx2 and refuse httpx objects; older ones use httpx itself.
sdk_httpx = importlib.import_module("httpx2") if importlib.util.find_spec("httpx2") else httpx

SECRET = "sk-ant-api03-Zq8XrT5vLm2NpQ7wYk3HdBf9Jc6Gs1Ae4Ru0Ox"

TARGET = Target(
    deployment="claude-haiku",
    provider="anthropic",
    kind="anthropic",
    base_url="https://api.anthropic.com",
    model="claude-3-5-haiku-20241022",
    api_key=SECRET,
    max_output_tokens=8192,
)

WIRE = AnthropicWire()
HI = ({"role": "user", "content": "Hi"},)


def build(**fields: Any) -> dict[str, Any]:
    """The JSON body AnthropicWire sends for a ChatRequest with ``fields``."""
    fields.setdefault("messages", HI)
    request = WIRE.build_request(ChatRequest(model="claude-haiku", **fields), TARGET)
    body: dict[str, Any] = json.loads(request.content)
    return body


def refused(**fields: Any) -> errors.InvalidRequestError:
    fields.setdefault("messages", HI)
    with pytest.raises(errors.InvalidRequestError) as info:
        WIRE.build_request(ChatRequest(model="claude-haiku", **fields), TARGET)
    assert SECRET not in str(info.value)
    return info.value


def test_it_meets_the_wire_format_protocols() -> None:
    wire: WireFormat = WIRE
    decoder: StreamDecoder = wire.stream_decoder(TARGET)
    assert isinstance(decoder, AnthropicStreamDecoder)


# --------------------------------------------------------------------------- the HTTP request


def test_request_line_and_headers() -> None:
    target = Target(
        deployment="d",
        provider="anthropic",
        kind="anthropic",
        base_url="https://api.anthropic.com/",
        model="claude-sonnet-4-5",
        api_key=SECRET,
        headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    request = WIRE.build_request(ChatRequest(model="d", messages=HI, max_tokens=5), target)
    assert request.method == "POST"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "authorization" not in request.headers
    assert request.content == (
        b'{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"Hi"}]}'
    )


def test_no_key_means_no_auth_header_and_api_version_overrides() -> None:
    target = Target(
        deployment="d",
        provider="p",
        kind="anthropic",
        base_url="http://127.0.0.1:9/proxy",
        model="m",
        api_version="2099-01-01",
    )
    request = WIRE.build_request(ChatRequest(model="d", messages=HI, max_tokens=5), target)
    assert "x-api-key" not in request.headers
    assert request.headers["anthropic-version"] == "2099-01-01"
    assert str(request.url) == "http://127.0.0.1:9/proxy/v1/messages"


def test_the_key_stays_out_of_the_target_repr() -> None:
    assert SECRET not in repr(TARGET)
    assert SECRET not in str(TARGET)


def test_minimal_body_takes_max_tokens_from_the_deployment() -> None:
    assert build() == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 8192,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert build(max_tokens=300)["max_tokens"] == 300
    assert build(extra={"max_completion_tokens": 40})["max_tokens"] == 40
    assert build(max_tokens=40, extra={"max_completion_tokens": 40})["max_tokens"] == 40


def test_max_tokens_is_required_when_the_deployment_has_no_ceiling() -> None:
    target = Target(
        deployment="bare", provider="p", kind="anthropic", base_url="https://x", model="m"
    )
    with pytest.raises(errors.InvalidRequestError, match=r"max_tokens.*'bare'.*max_output_tokens"):
        WIRE.build_request(ChatRequest(model="bare", messages=HI), target)
    assert "max_completion_tokens" in str(
        refused(max_tokens=10, extra={"max_completion_tokens": 20})
    )


def test_sampling_parameters_stop_user_and_stream() -> None:
    body = build(
        max_tokens=10,
        temperature=0.2,
        top_p=0.9,
        stop=("END", "\n\n"),
        user="user-42",
        stream=True,
    )
    assert body == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END", "\n\n"],
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


def test_system_and_developer_messages_join_into_system() -> None:
    body = build(
        messages=(
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": [{"type": "text", "text": "No emoji."}]},
        )
    )
    assert body["system"] == "You are terse.\n\nAnswer in French.\n\nNo emoji."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_tool_conversation_translates_and_merges_turns() -> None:
    body = build(
        messages=(
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Which is warmer?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "assistant", "content": [{"type": "text", "text": " By 3 degrees."}]},
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Rome."},
                {"type": "text", "text": " By 3 degrees."},
            ],
        },
    ]


def test_assistant_tool_call_without_content_and_with_empty_arguments() -> None:
    body = build(
        messages=(
            {"role": "user", "content": "Time?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}
                ],
            },
        )
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "c", "name": "now", "input": {}}],
    }


def test_an_echoed_refusal_is_what_the_assistant_said() -> None:
    body = build(
        messages=(
            {"role": "user", "content": "Do a bad thing"},
            {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            {"role": "user", "content": "OK"},
        )
    )
    assert body["messages"][1] == {"role": "assistant", "content": "I can't help with that."}


def test_images_become_image_blocks() -> None:
    body = build(
        messages=(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg", "detail": "auto"},
                    },
                ],
            },
        )
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("url", "detail", "says"),
    [
        ("data:image/bmp;base64,Qk0=", None, "data URL"),
        ("data:image/png,rawbytes", None, "data URL"),
        ("data:image/png;base64,", None, "data URL"),
        ("ftp://example.com/cat.png", None, "http"),
        ("https://example.com/cat.png", "high", "detail"),
    ],
)
def test_images_anthropic_cannot_take_are_refused(url: str, detail: str | None, says: str) -> None:
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    message = {"role": "user", "content": [{"type": "image_url", "image_url": image}]}
    assert says in str(refused(messages=(message,)))


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tools_and_tool_choice(tool_choice: Any, expected: dict[str, Any] | None) -> None:
    body = build(tools=(TOOL,), tool_choice=tool_choice)
    assert body["tools"] == [ANTHROPIC_TOOL]
    assert body.get("tool_choice") == expected


def test_tool_without_parameters_strict_tool_and_frozen_containers() -> None:
    frozen_schema = MappingProxyType({"type": "object", "required": ("q",)})
    body = build(
        tools=(
            {"type": "function", "function": {"name": "ping"}},
            {
                "type": "function",
                "function": {"name": "find", "parameters": frozen_schema, "strict": True},
            },
        )
    )
    assert body["tools"] == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
        {"name": "find", "input_schema": {"type": "object", "required": ["q"]}, "strict": True},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        ("none", {"type": "none"}),
    ],
)
def test_parallel_tool_calls_false_disables_parallel_tool_use(
    tool_choice: Any, expected: dict[str, Any]
) -> None:
    body = build(tools=(TOOL,), tool_choice=tool_choice, extra={"parallel_tool_calls": False})
    assert body["tool_choice"] == expected


def test_response_format_json_object_is_a_forced_tool() -> None:
    body = build(response_format={"type": "json_object"})
    assert body["tools"] == [
        {
            "name": JSON_TOOL_NAME,
            "description": "Give your answer as a JSON object through this tool.",
            "input_schema": {"type": "object"},
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_response_format_json_schema_is_a_forced_tool_with_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    body = build(
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "math_answer",
                "description": "The result.",
                "schema": schema,
                "strict": True,
            },
        }
    )
    assert body["tools"] == [
        {
            "name": "json_response",
            "description": "Give your answer, a math_answer object, through this tool. The result.",
            "input_schema": schema,
            "strict": True,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_response_format_text_asks_for_nothing() -> None:
    assert build(response_format={"type": "text"}) == build()


def test_extra_parameters_that_change_nothing_are_accepted() -> None:
    extra = {
        "n": 1,
        "logprobs": False,
        "parallel_tool_calls": True,
        "stream_options": {"include_usage": True},
        "presence_penalty": None,
    }
    assert build(extra=extra) == build()


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"seed": 7}, "seed"),
        ({"extra": {"presence_penalty": 0.5}}, "presence_penalty"),
        ({"extra": {"n": 2}}, "`n`"),
        ({"extra": {"logprobs": True}}, "logprobs"),
        ({"extra": {"max_completion_tokens": "10"}}, "max_completion_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"tools": ({"type": "web_search"},)}, "web_search"),
        ({"tools": ({"type": "function", "function": {"description": "x"}},)}, "name"),
        ({"tools": ({"type": "function", "function": {"name": "json_response"}},)}, "reserved"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"response_format": {"type": "json_object"}, "tools": (TOOL,)}, "response_format"),
        ({"response_format": {"type": "json_object"}, "tool_choice": "none"}, "response_format"),
        ({"response_format": {"type": "yaml"}}, "yaml"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "array"}},
                }
            },
            "object",
        ),
    ],
)
def test_what_anthropic_cannot_express_is_refused_by_name(
    fields: dict[str, Any], says: str
) -> None:
    message = str(refused(**fields))
    assert says in message
    assert message.startswith("Anthropic cannot take this request: ")


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        (({"content": "Hi"},), "no `role`"),
        (({"role": "narrator", "content": "Hi"},), "'narrator'"),
        (({"role": "function", "name": "f", "content": "1"},), "name"),
        (("Hi",), "not a message object"),
        (({"role": "user", "content": "Hi"}, {"role": "tool", "content": "1"}), "tool_call_id"),
        (({"role": "user", "content": ""},), "no content"),
        (({"role": "user", "content": 42},), "string or a list"),
        (({"role": "user", "content": "Hi", "name": "alice"},), "name"),
        (({"role": "system", "content": "Be nice."},), "at least one user"),
        (
            ({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},),
            "input_audio",
        ),
        (({"role": "user", "content": [{"type": "text"}]},), "text must be a string"),
        (
            (
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
            ),
            "image_url",
        ),
        (({"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}), "neither"),
        (
            (
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "image_url"}]},
            ),
            "image_url",
        ),
        (
            (
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "function_call": {"name": "f"}},
            ),
            "function_call",
        ),
    ],
)
def test_malformed_messages_are_refused(messages: tuple[Any, ...], says: str) -> None:
    assert says in str(refused(messages=messages))


def call(arguments: str, **overrides: Any) -> dict[str, Any]:
    tool_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    tool_call.update(overrides)
    return {"role": "assistant", "content": None, "tool_calls": [tool_call]}


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (call("{not json"), "not a JSON object"),
        (call("[1, 2]"), "not a JSON object"),
        (call("{}", id=""), "id"),
        (call("{}", type="custom"), "function tool call"),
        (call("{}", function={"name": "f"}), "string name and string arguments"),
        ({"role": "assistant", "tool_calls": "call it"}, "must be a list"),
    ],
)
def test_malformed_tool_calls_are_refused(message: dict[str, Any], says: str) -> None:
    assert says in str(refused(messages=({"role": "user", "content": "Hi"}, message)))


# --------------------------------------------------------------------------- whole answers


def parse(body: Mapping[str, Any]) -> ChatCompletion:
    return WIRE.parse_response(json.dumps(body).encode(), TARGET)


def message_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 11,
            "service_tier": "standard",
        },
    }
    body.update(overrides)
    return body


def test_a_text_answer() -> None:
    assert parse(message_body()) == ChatCompletion(
        id="msg_01XFDUDYJgAACzvnptvVoYEL",
        created=0,
        model="claude-3-5-haiku-20241022",
        choices=(
            Choice(
                index=0,
                message=ChatCompletionMessage(content="Hello! How can I help you today?"),
                finish_reason="stop",
            ),
        ),
        usage=Usage.of(12, 11),
    )


def test_a_tool_use_answer_with_thinking() -> None:
    completion = parse(
        message_body(
            content=[
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB"},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": {"city": "Zürich", "unit": "celsius"},
                },
                {"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}},
            ],
            stop_reason="tool_use",
        )
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message == ChatCompletionMessage(
        content="Let me check.",
        # The thinking text is the reasoning, never content; a redacted block shows as no
        # text, and both blocks are kept whole to be passed back.
        reasoning_content="The user wants weather.",
        thinking_blocks=(
            ThinkingBlock(type="thinking", thinking="The user wants weather.", signature="EqQB"),
            ThinkingBlock(type="redacted_thinking", data="EmwKAhgB"),
        ),
        tool_calls=(
            ToolCall(
                id="toolu_01A09q90qw90lq917835lq9",
                function=Function(
                    name="get_weather", arguments='{"city":"Zürich","unit":"celsius"}'
                ),
            ),
            ToolCall(id="toolu_02", function=Function(name="now", arguments="{}")),
        ),
    )


def test_the_forced_json_tool_answer_is_content() -> None:
    completion = parse(
        message_body(
            content=[
                {
                    "type": "tool_use",
                    "id": "toolu_9",
                    "name": JSON_TOOL_NAME,
                    "input": {"answer": 42},
                }
            ],
            stop_reason="tool_use",
        )
    )
    choice = completion.choices[0]
    assert choice.message == ChatCompletionMessage(content='{"answer":42}')
    assert choice.finish_reason == "stop"
    assert json.loads(choice.message.content or "") == {"answer": 42}


def test_multiple_text_blocks_join_and_no_text_means_none() -> None:
    joined = parse(
        message_body(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    )
    assert joined.choices[0].message.content == "ab"
    empty = parse(message_body(content=[], stop_reason="max_tokens"))
    assert empty.choices[0].message.content is None


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
        (None, None),
    ],
)
def test_stop_reasons_map_to_finish_reasons(
    stop_reason: str | None, finish_reason: str | None
) -> None:
    assert parse(message_body(stop_reason=stop_reason)).choices[0].finish_reason == finish_reason


def test_a_refusal_carries_anthropics_explanation() -> None:
    completion = parse(
        message_body(
            content=[],
            stop_reason="refusal",
            stop_details={
                "type": "refusal",
                "category": "cyber",
                "explanation": "Refused by policy.",
            },
        )
    )
    assert completion.choices[0].message.refusal == "Refused by policy."
    assert completion.choices[0].finish_reason == "content_filter"


def test_usage_adds_cache_tokens_to_the_prompt_and_reads_thinking_tokens() -> None:
    usage = parse(
        message_body(
            usage={
                "input_tokens": 50,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 2000,
                "output_tokens": 300,
                "output_tokens_details": {"thinking_tokens": 120},
            }
        )
    ).usage
    assert usage == Usage.of(3050, 300, cached_tokens=2000, reasoning_tokens=120)
    assert usage is not None
    assert usage.total_tokens == 3350
    null_caches = {"input_tokens": 5, "cache_read_input_tokens": None, "output_tokens": 1}
    assert parse(message_body(usage=null_caches)).usage == Usage.of(5, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "`response`"),
        (json.dumps(message_body(id=None)).encode(), "response.id"),
        (json.dumps(message_body(model=7)).encode(), "response.model"),
        (json.dumps(message_body(content="hi")).encode(), "response.content"),
        (json.dumps(message_body(content=["hi"])).encode(), "response.content[0]"),
        (json.dumps(message_body(content=[{"type": "text"}])).encode(), "response.content[0].text"),
        (
            json.dumps(
                message_body(content=[{"type": "tool_use", "id": "t", "name": "f", "input": "x"}])
            ).encode(),
            "response.content[0].input",
        ),
        (json.dumps(message_body(usage=None)).encode(), "response.usage"),
        (
            json.dumps(message_body(usage={"input_tokens": 1})).encode(),
            "response.usage.output_tokens",
        ),
        (
            json.dumps(message_body(usage={"input_tokens": "1", "output_tokens": 1})).encode(),
            "input_tokens",
        ),
        (
            json.dumps(message_body(usage={"input_tokens": True, "output_tokens": 1})).encode(),
            "input_tokens",
        ),
        (json.dumps(message_body(stop_reason=3)).encode(), "stop_reason"),
    ],
)
def test_malformed_answers_raise_response_format_error(body: bytes, field: str) -> None:
    with pytest.raises(errors.ResponseFormatError) as info:
        WIRE.parse_response(body, TARGET)
    assert field in str(info.value)
    assert str(info.value).startswith("claude-haiku: ")
    assert info.value.deployment == "claude-haiku"


# --------------------------------------------------------------------------- errors


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": "req_body",
        }
    ).encode()


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "error_type", "message", "headers", "cls", "retry_after"),
    [
        (
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            {},
            errors.BadRequestError,
            None,
        ),
        (401, "authentication_error", "invalid x-api-key", {}, errors.AuthenticationError, None),
        (403, "permission_error", "no access", {}, errors.PermissionDeniedError, None),
        (404, "not_found_error", "model: claude-x", {}, errors.ModelNotFoundError, None),
        (404, "not_found_error", "Not Found", {}, errors.NotFoundError, None),
        (408, "timeout_error", "timed out", {}, errors.RequestTimeoutError, None),
        (409, "conflict_error", "conflict", {}, errors.ConflictError, None),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum size",
            {},
            errors.RequestTooLargeError,
            None,
        ),
        (422, "invalid_request_error", "bad", {}, errors.BadRequestError, None),
        (429, "rate_limit_error", "slow down", {"retry-after": "7"}, errors.RateLimitedError, 7.0),
        (
            429,
            "rate_limit_error",
            "slow down",
            {"retry-after": "7", "retry-after-ms": "1500"},
            errors.RateLimitedError,
            1.5,
        ),
        (
            429,
            "rate_limit_error",
            "slow down",
            {"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"},
            errors.RateLimitedError,
            20.0,
        ),
        (500, "api_error", "Internal server error", {}, errors.ServerError, None),
        (503, "api_error", "unavailable", {"retry-after": "2"}, errors.ServerError, 2.0),
        (529, "overloaded_error", "Overloaded", {}, errors.OverloadedError, None),
        (500, "overloaded_error", "Overloaded", {}, errors.OverloadedError, None),
    ],
)
def test_error_statuses_map_to_typed_errors(
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str],
    cls: type[errors.ProviderError],
    retry_after: float | None,
) -> None:
    response_headers = httpx.Headers({"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy", **headers})
    error = WIRE.parse_error(
        status, response_headers, error_body(error_type, message), TARGET, now=NOW
    )
    assert type(error) is cls
    assert error.status == status
    assert error.code == error_type
    assert error.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"
    assert error.retry_after == retry_after
    assert error.deployment == "claude-haiku"
    assert message in str(error)
    assert "req_011CSHoEeqs5C35K2UUqR7Fy" in str(error)


def test_the_body_request_id_is_the_fallback() -> None:
    error = WIRE.parse_error(500, httpx.Headers(), error_body("api_error", "boom"), TARGET, now=NOW)
    assert error.request_id == "req_body"


def test_a_non_anthropic_error_body_still_gives_the_status_class() -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    error = WIRE.parse_error(502, httpx.Headers(), html, TARGET, now=NOW)
    assert type(error) is errors.ServerError
    assert error.code is None
    assert "502 Bad Gateway" in str(error)
    assert "no Anthropic error object" in str(error)


def test_a_key_echoed_by_the_vendor_never_reaches_the_error() -> None:
    body = error_body("authentication_error", f"invalid x-api-key: {SECRET}")
    error = WIRE.parse_error(401, httpx.Headers(), body, TARGET, now=NOW)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in error.body


# --------------------------------------------------------------------------- streams


def sse(*events: Mapping[str, Any], newline: str = "\n") -> bytes:
    lines = [
        f"event: {event['type']}{newline}data: {json.dumps(event)}{newline}{newline}"
        for event in events
    ]
    return "".join(lines).encode()


MSG_ID = "msg_01T9gJmcmP1R7fQ2XWq3aPzE"
MODEL = "claude-sonnet-4-5-20250929"


def message_start(**usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": MSG_ID,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": MODEL,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 25, "output_tokens": 1},
        },
    }


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def text_delta(index: int, text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


def json_delta(index: int, part: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": part},
    }


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, **usage: Any) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage or {"output_tokens": 15},
    }


PING = {"type": "ping"}
STOP = {"type": "message_stop"}

TEXT_STREAM = sse(
    message_start(),
    block_start(0, {"type": "text", "text": ""}),
    PING,
    text_delta(0, "Hello"),
    text_delta(0, " there, "),
    text_delta(0, "naïve 🌍!"),
    block_stop(0),
    message_delta("end_turn"),
    STOP,
)

TOOL_STREAM = sse(
    message_start(
        input_tokens=377, cache_creation_input_tokens=0, cache_read_input_tokens=0, output_tokens=1
    ),
    block_start(0, {"type": "thinking", "thinking": ""}),
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Paris."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "EqQB"},
    },
    block_stop(0),
    block_start(1, {"type": "text", "text": ""}),
    text_delta(1, "I'll check."),
    block_stop(1),
    block_start(
        2,
        {
            "type": "tool_use",
            "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
            "name": "get_weather",
            "input": {},
        },
    ),
    json_delta(2, ""),
    json_delta(2, '{"locati'),
    json_delta(2, 'on": "P'),
    json_delta(2, 'aris"}'),
    block_stop(2),
    block_start(3, {"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}}),
    block_stop(3),
    message_delta("tool_use", output_tokens=65),
    STOP,
)


def chunk(delta: ChoiceDelta, finish_reason: Any = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=MSG_ID,
        created=0,
        model=MODEL,
        choices=(ChunkChoice(index=0, delta=delta, finish_reason=finish_reason),),
    )


def usage_chunk(usage: Usage) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=MSG_ID, created=0, model=MODEL, choices=(), usage=usage)


def tool_delta(index: int, **fields: Any) -> ChoiceDelta:
    name = fields.pop("name", None)
    arguments = fields.pop("arguments", None)
    function = ChoiceDeltaToolCallFunction(name=name, arguments=arguments)
    return ChoiceDelta(tool_calls=(ChoiceDeltaToolCall(index=index, function=function, **fields),))


def decode(data: bytes, pieces: list[bytes] | None = None) -> list[ChatCompletionChunk]:
    decoder = WIRE.stream_decoder(TARGET)
    chunks: list[ChatCompletionChunk] = []
    for piece in pieces if pieces is not None else [data]:
        chunks.extend(decoder.feed(piece))
    chunks.extend(decoder.close())
    assert decoder.done
    return chunks


def test_a_text_stream() -> None:
    assert decode(TEXT_STREAM) == [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content="Hello")),
        chunk(ChoiceDelta(content=" there, ")),
        chunk(ChoiceDelta(content="naïve 🌍!")),
        chunk(ChoiceDelta(), "stop"),
        usage_chunk(Usage.of(25, 15)),
    ]


def test_a_tool_stream_counts_tool_calls_not_blocks() -> None:
    signed = ThinkingBlock(type="thinking", thinking="Paris.", signature="EqQB")
    assert decode(TOOL_STREAM) == [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(reasoning_content="Paris.")),  # the signature is not text
        chunk(ChoiceDelta(thinking_blocks=(signed,))),  # the block whole, at its stop
        chunk(ChoiceDelta(content="I'll check.")),
        chunk(
            tool_delta(
                0,
                id="toolu_01NRLabsLyVHZPKxbKvkfSMn",
                type="function",
                name="get_weather",
                arguments="",
            )
        ),
        chunk(tool_delta(0, arguments='{"locati')),
        chunk(tool_delta(0, arguments='on": "P')),
        chunk(tool_delta(0, arguments='aris"}')),
        chunk(tool_delta(1, id="toolu_02", type="function", name="now", arguments="")),
        chunk(tool_delta(1, arguments="{}")),
        chunk(ChoiceDelta(), "tool_calls"),
        usage_chunk(Usage.of(377, 65)),
    ]


def test_a_json_mode_stream_is_content_with_finish_stop() -> None:
    chunks = decode(
        sse(
            message_start(),
            block_start(
                0, {"type": "tool_use", "id": "toolu_7", "name": JSON_TOOL_NAME, "input": {}}
            ),
            json_delta(0, '{"answer"'),
            json_delta(0, ": 42}"),
            block_stop(0),
            message_delta("tool_use"),
            STOP,
        )
    )
    assert chunks == [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content='{"answer"')),
        chunk(ChoiceDelta(content=": 42}")),
        chunk(ChoiceDelta(), "stop"),
        usage_chunk(Usage.of(25, 15)),
    ]


def test_stream_usage_is_cumulative_and_reads_cache_and_thinking_tokens() -> None:
    assert WIRE.stream_decoder(TARGET).usage is None
    decoder = WIRE.stream_decoder(TARGET)
    decoder.feed(
        sse(
            message_start(
                input_tokens=10,
                cache_read_input_tokens=300,
                cache_creation_input_tokens=20,
                output_tokens=1,
            )
        )
    )
    assert decoder.usage == Usage.of(330, 1, cached_tokens=300)
    chunks = decoder.feed(
        sse(
            block_start(0, {"type": "text", "text": ""}),
            block_stop(0),
            message_delta(
                "refusal",
                output_tokens=120,
                output_tokens_details={"thinking_tokens": 67},
            )
            | {
                "delta": {
                    "stop_reason": "refusal",
                    "stop_details": {"type": "refusal", "explanation": "No."},
                }
            },
            STOP,
        )
    )
    final = Usage.of(330, 120, cached_tokens=300, reasoning_tokens=67)
    assert decoder.usage == final
    assert chunks == [chunk(ChoiceDelta(refusal="No."), "content_filter"), usage_chunk(final)]
    assert decoder.done
    assert decoder.close() == []


def test_stream_usage_missing_from_message_start_comes_from_message_delta() -> None:
    start = message_start()
    del start["message"]["usage"]
    chunks = decode(
        sse(
            start,
            block_start(0, {"type": "text", "text": "hi"}),
            block_stop(0),
            message_delta(
                "end_turn",
                input_tokens=11,
                output_tokens=1,
                cache_creation_input_tokens=3,
                cache_read_input_tokens=5,
            ),
            STOP,
        )
    )
    assert chunks[1] == chunk(ChoiceDelta(content="hi"))
    assert chunks[-1] == usage_chunk(Usage.of(19, 1, cached_tokens=5))


def test_pings_unknown_events_and_events_after_message_stop_are_skipped() -> None:
    future = {"type": "content_block_hint", "index": 0}
    stream = sse(
        PING, message_start(), future, PING, message_delta("end_turn"), STOP, text_delta(0, "late")
    )
    assert decode(stream) == [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(), "stop"),
        usage_chunk(Usage.of(25, 15)),
    ]


def test_crlf_and_byte_by_byte_give_the_same_chunks() -> None:
    whole = decode(TOOL_STREAM)
    assert decode(TOOL_STREAM, [TOOL_STREAM[i : i + 1] for i in range(len(TOOL_STREAM))]) == whole
    crlf = TOOL_STREAM.replace(b"\n", b"\r\n")
    assert decode(crlf, [crlf[i : i + 1] for i in range(len(crlf))]) == whole


@given(st.data())
def test_any_split_gives_the_same_chunks(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from([TEXT_STREAM, TOOL_STREAM]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    bounds = [0, *cuts, len(stream)]
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(stream, pieces) == decode(stream)


@pytest.mark.parametrize("cut", [0, 40, len(TEXT_STREAM) // 2, len(TEXT_STREAM) - 3])
def test_a_truncated_stream_fails_at_close(cut: int) -> None:
    decoder = WIRE.stream_decoder(TARGET)
    decoder.feed(TEXT_STREAM[:cut])
    with pytest.raises(errors.ResponseFormatError, match=r"claude-haiku: .*message_stop") as info:
        decoder.close()
    assert info.value.deployment == "claude-haiku"
    assert not decoder.done


@pytest.mark.parametrize(
    ("error_type", "cls", "status"),
    [
        ("overloaded_error", errors.OverloadedError, 529),
        ("rate_limit_error", errors.RateLimitedError, 429),
        ("api_error", errors.ServerError, 500),
        ("invalid_request_error", errors.BadRequestError, 400),
        ("request_too_large", errors.RequestTooLargeError, 413),
        ("mystery_error", errors.ServerError, 500),
    ],
)
def test_an_error_event_raises_the_typed_error(
    error_type: str, cls: type[errors.ProviderError], status: int
) -> None:
    decoder = WIRE.stream_decoder(TARGET)
    decoder.feed(
        sse(message_start(), block_start(0, {"type": "text", "text": ""}), text_delta(0, "Hel"))
    )
    event = {
        "type": "error",
        "error": {"type": error_type, "message": "Overloaded"},
        "request_id": "req_9",
    }
    with pytest.raises(errors.ProviderError) as info:
        decoder.feed(sse(event))
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.code == error_type
    assert error.request_id == "req_9"
    assert error.deployment == "claude-haiku"
    assert "Overloaded" in str(error)


@pytest.mark.parametrize(
    ("stream", "says"),
    [
        (b"event: message_start\ndata: {not json\n\n", "not valid JSON"),
        (b"data: [1, 2]\n\n", "stream event type"),
        (b'data: {"kind": "message_start"}\n\n', "stream event type"),
        (sse(text_delta(0, "orphan")), "before message_start"),
        (sse(message_start(), message_start()), "second message_start"),
        (sse(message_start(), text_delta(3, "x")), "no content block 3"),
        (sse({"type": "message_start", "message": {"id": "m"}}), "message_start.message.model"),
        (
            sse(
                message_start(),
                block_start(0, {"type": "text"}),
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
            ),
            "delta.text",
        ),
        (
            sse(message_start(), block_start(0, {"type": "tool_use", "name": "f", "input": {}})),
            "content_block.id",
        ),
        (
            sse(message_start(), {"type": "message_delta", "usage": {"output_tokens": 1}}),
            "message_delta.delta",
        ),
        (sse(message_start(), message_delta("end_turn", output_tokens="many")), "output_tokens"),
        (b"data: \xff\xfe\n\n", "UTF-8"),
    ],
)
def test_garbage_streams_raise_response_format_error(stream: bytes, says: str) -> None:
    with pytest.raises(errors.ResponseFormatError) as info:
        decode(stream)
    assert says in str(info.value)
    assert str(info.value).startswith("claude-haiku: ")
    assert info.value.deployment == "claude-haiku"


# --------------------------------------------------------------------------- one answer, two ways


def fold(chunks: list[ChatCompletionChunk]) -> ChatCompletion:
    """The completion a client accumulating ``chunks`` OpenAI-style ends up with."""
    content: list[str] = []
    reasoning: list[str] = []
    blocks: list[ThinkingBlock] = []
    calls: dict[int, dict[str, str]] = {}
    finish: Any = None
    refusal = None
    for piece in chunks:
        for choice in piece.choices:
            content.append(choice.delta.content or "")
            if choice.delta.reasoning_content is not None:
                reasoning.append(choice.delta.reasoning_content)
            blocks.extend(choice.delta.thinking_blocks or ())
            refusal = refusal or choice.delta.refusal
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
    text = "".join(content)
    tool_calls = tuple(
        ToolCall(id=c["id"], function=Function(name=c["name"], arguments=c["arguments"]))
        for _, c in sorted(calls.items())
    )
    message = ChatCompletionMessage(
        content=text or None,
        tool_calls=tool_calls or None,
        refusal=refusal,
        reasoning_content="".join(reasoning) if blocks else None,
        thinking_blocks=tuple(blocks) or None,
    )
    return ChatCompletion(
        id=chunks[0].id,
        created=0,
        model=chunks[0].model,
        choices=(Choice(index=0, message=message, finish_reason=finish),),
        usage=chunks[-1].usage,
    )


def sdk_final_message(stream: bytes) -> bytes:
    """What the official anthropic SDK makes of ``stream``, as a Messages API body."""

    def answer(request: Any) -> Any:
        return sdk_httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=stream
        )

    http_client = sdk_httpx.Client(transport=sdk_httpx.MockTransport(answer))
    with (
        anthropic.Anthropic(
            api_key="x", base_url="http://sdk.invalid", http_client=http_client, max_retries=0
        ) as client,
        client.messages.stream(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        ) as events,
    ):
        message = events.get_final_message()
    return message.model_dump_json().encode()


@pytest.mark.parametrize("stream", [TEXT_STREAM, TOOL_STREAM])
def test_a_stream_folds_into_what_the_sdk_reads_as_the_whole_answer(stream: bytes) -> None:
    whole = WIRE.parse_response(sdk_final_message(stream), TARGET).to_dict()
    streamed = fold(decode(stream)).to_dict()
    # Streamed arguments are Anthropic's own JSON text, whole ones re-serialized: same JSON.
    for completion in (whole, streamed):
        for call in completion["choices"][0]["message"]["tool_calls"] or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert streamed == whole


def test_a_prompt_too_long_400_is_a_context_window_error() -> None:
    body = error_body("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")
    error = WIRE.parse_error(400, httpx.Headers(), body, TARGET, now=NOW)
    assert type(error) is errors.ContextLengthExceededError
    assert isinstance(error, errors.ContextWindowExceededError)
    assert isinstance(error, errors.BadRequestError)
