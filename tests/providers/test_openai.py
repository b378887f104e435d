"""The OpenAI Chat Completions wire format: requests, responses, errors and streams.

Bodies and streams are shaped after the OpenAI API reference and the openai-python SDK's
streaming code; Azure and OpenAI-compatible variants after their documented answers.
"""

from __future__ import annotations

import json
import types
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion as SDKCompletion
from openai.types.chat import ChatCompletionChunk as SDKChunk

from guardedllm import errors
from guardedllm.providers.base import Target
from guardedllm.providers.openai import AzureOpenAIWire, OpenAIStreamDecoder, OpenAIWire
from guardedllm.types import (
    ChatCompletionChunk,
    ChatRequest,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    Function,
    ToolCall,
    Usage,
)

KEY = "sk-proj-SECRETsecretSECRET0123456789"
AZURE_KEY = "0123456789abcdef0123456789abcdef"  # Azure keys are hex: no pattern scrubs them
NOW = 1_700_000_000.0

OPENAI = Target(
    deployment="gpt-4o-mini",
    provider="openai",
    kind="openai",
    base_url="https://api.openai.com/v1/",
    model="gpt-4o-mini-2024-07-18",
    api_key=KEY,
    headers={"OpenAI-Organization": "org-123"},
)
LOCAL = Target(
    deployment="llama-local",
    provider="ollama",
    kind="openai-compatible",
    base_url="http://127.0.0.1:11434/v1",
    model="llama3.1:8b",
)
AZURE = Target(
    deployment="gpt-4o-azure",
    provider="azure",
    kind="azure-openai",
    base_url="https://myres.openai.azure.com",
    model="gpt4o-prod",
    api_key=AZURE_KEY,
    api_version="2024-10-21",
)


def request(**kwargs: Any) -> ChatRequest:
    kwargs.setdefault("model", "chat")
    kwargs.setdefault("messages", ({"role": "user", "content": "Hi"},))
    return ChatRequest(**kwargs)


def body_of(req: httpx.Request) -> Any:
    return json.loads(req.content)


# --------------------------------------------------------------------------- requests


def test_openai_request_url_headers_and_exact_body() -> None:
    req = OpenAIWire().build_request(request(max_tokens=200, temperature=0.2), OPENAI)

    assert req.method == "POST"
    assert str(req.url) == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["openai-organization"] == "org-123"
    assert req.content == (
        b'{"model":"gpt-4o-mini-2024-07-18","messages":[{"role":"user","content":"Hi"}],'
        b'"max_completion_tokens":200,"temperature":0.2}'
    )


def test_every_feature_passes_through() -> None:
    messages = (
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": "You are helpful."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    )
    tools = (
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
                "strict": True,
            },
        },
    )
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    req = OpenAIWire().build_request(
        request(
            messages=messages,
            max_tokens=100,
            temperature=0.5,
            top_p=0.9,
            stop=("END", "STOP"),
            seed=42,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            response_format=schema,
            user="user-7",
            extra={"presence_penalty": 0.1, "logit_bias": {"50256": -100}, "n": 2},
        ),
        OPENAI,
    )

    assert body_of(req) == {
        "model": "gpt-4o-mini-2024-07-18",
        "messages": [dict(m) for m in messages],
        "max_completion_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END", "STOP"],
        "seed": 42,
        "tools": [dict(t) for t in tools],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": schema,
        "user": "user-7",
        "presence_penalty": 0.1,
        "logit_bias": {"50256": -100},
        "n": 2,
    }


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_strings(choice: str) -> None:
    tools = ({"type": "function", "function": {"name": "f", "parameters": {}}},)
    req = OpenAIWire().build_request(request(tools=tools, tool_choice=choice), OPENAI)
    assert body_of(req)["tool_choice"] == choice


def test_json_object_response_format() -> None:
    req = OpenAIWire().build_request(request(response_format={"type": "json_object"}), OPENAI)
    assert body_of(req)["response_format"] == {"type": "json_object"}


def test_any_mapping_or_tuple_is_sent_as_json() -> None:
    message = types.MappingProxyType(
        {"role": "user", "content": (types.MappingProxyType({"type": "text", "text": "x"}),)}
    )
    req = OpenAIWire().build_request(request(messages=(message,)), OPENAI)
    assert body_of(req)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "x"}]}
    ]


def test_empty_tools_are_not_sent() -> None:
    assert "tools" not in body_of(OpenAIWire().build_request(request(tools=()), OPENAI))


def test_compatible_server_gets_max_tokens_and_no_auth_without_key() -> None:
    req = OpenAIWire(max_tokens_field="max_tokens").build_request(request(max_tokens=50), LOCAL)

    assert str(req.url) == "http://127.0.0.1:11434/v1/chat/completions"
    assert "authorization" not in req.headers
    assert body_of(req) == {
        "model": "llama3.1:8b",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 50,
    }


def test_max_tokens_field_is_validated() -> None:
    with pytest.raises(ValueError, match="max_tokens_field"):
        OpenAIWire(max_tokens_field="max_output_tokens")  # type: ignore[arg-type]


def test_streaming_asks_for_usage() -> None:
    req = OpenAIWire().build_request(request(stream=True), OPENAI)

    assert req.headers["accept"] == "text/event-stream"
    body = body_of(req)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_streaming_keeps_the_callers_stream_options_but_forces_usage() -> None:
    extra_body = {"stream_options": {"include_obfuscation": False}}
    req = OpenAIWire().build_request(request(stream=True, extra_body=extra_body), OPENAI)
    assert body_of(req)["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    # Usage is what a stream's cost is settled on: the caller may not turn it off.
    refused = {"stream_options": {"include_usage": False}}
    with pytest.raises(errors.InvalidRequestError, match=r"stream_options\.include_usage"):
        OpenAIWire().build_request(request(stream=True, extra_body=refused), OPENAI)


def test_call_headers_are_merged_over_provider_headers() -> None:
    extra_headers = {"OpenAI-Organization": "org-override", "X-Trace": "t1"}
    req = OpenAIWire().build_request(request(extra_headers=extra_headers), OPENAI)
    assert req.headers.get_list("openai-organization") == ["org-override"]
    assert req.headers["x-trace"] == "t1"


def test_provider_key_wins_over_an_auth_header_in_target_headers() -> None:
    target = Target(
        deployment="d",
        provider="p",
        kind="openai",
        base_url="https://gw.example.com/v1",
        model="m",
        api_key=KEY,
        headers={"Authorization": "Bearer other", "X-Gateway": "1"},
    )
    req = OpenAIWire().build_request(
        request(extra_headers={"authorization": "Bearer call"}), target
    )
    assert req.headers.get_list("authorization") == [f"Bearer {KEY}"]
    assert req.headers["x-gateway"] == "1"


def test_azure_request() -> None:
    req = AzureOpenAIWire().build_request(request(max_tokens=10, stream=True), AZURE)

    assert str(req.url) == (
        "https://myres.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )
    assert req.headers["api-key"] == AZURE_KEY
    assert "authorization" not in req.headers
    assert body_of(req) == {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 10,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_azure_deployment_name_is_quoted_in_the_path() -> None:
    target = Target(
        deployment="d",
        provider="azure",
        kind="azure-openai",
        base_url="https://r.openai.azure.com/",
        model="a/b c",
        api_version="2024-10-21",
    )
    req = AzureOpenAIWire(max_tokens_field="max_tokens").build_request(request(), target)
    assert (
        req.url.raw_path == b"/openai/deployments/a%2Fb%20c/chat/completions?api-version=2024-10-21"
    )


def test_azure_without_api_version_says_to_set_it() -> None:
    target = Target(
        deployment="d", provider="azure", kind="azure-openai", base_url="https://r", model="m"
    )
    with pytest.raises(errors.InvalidRequestError, match="api_version"):
        AzureOpenAIWire().build_request(request(), target)


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ((), "messages is empty"),
        (("hello",), r"messages\[0\] is a str"),
        (({"content": "x"},), r"messages\[0\] has no 'role'"),
        (({"role": "robot", "content": "x"},), r"has role 'robot'; use one of"),
        (({"role": "user"},), r"messages\[0\] \(user\) has no 'content'"),
        (({"role": "user", "content": 5},), r"messages\[0\]\.content is a int"),
        (({"role": "user", "content": [{"text": "x"}]},), r"content\[0\] is not a content part"),
        (({"role": "user", "content": ["x"]},), r"content\[0\] is not a content part"),
        (({"role": "tool", "content": "42"},), "without 'tool_call_id'"),
        (({"role": "tool", "tool_call_id": "", "content": "42"},), "without 'tool_call_id'"),
        (({"role": "assistant"},), "neither 'content' nor 'tool_calls'"),
        (({"role": "assistant", "tool_calls": "x"},), r"tool_calls is not a list"),
        (
            ({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]},),
            r"tool_calls\[0\] is malformed",
        ),
        (({"role": "function", "content": "x"},), "has no 'name'"),
    ],
)
def test_malformed_messages_are_refused(messages: tuple[Any, ...], match: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match=match):
        OpenAIWire().build_request(request(messages=messages), OPENAI)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"max_completion_tokens": 10}, "pass it as max_tokens="),
        ({"stream": True}, "pass it as stream="),
        ({"model": "gpt-4o"}, "pass it as model="),
        ({"logprobs": True}, "no logprobs"),
        ({"top_logprobs": 3}, "no logprobs"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "no audio"),
        ({"modalities": ["text", "audio"]}, "text only"),
        ({"functions": [{"name": "f"}]}, "declare them as tools"),
        ({"function_call": "auto"}, "use tool_choice"),
    ],
)
def test_parameters_that_would_be_lost_or_bypass_guards_are_refused(
    extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(errors.InvalidRequestError, match=match):
        OpenAIWire().build_request(request(extra=extra), OPENAI)


def test_harmless_values_of_refused_parameters_pass() -> None:
    extra = {"logprobs": False, "modalities": ["text"]}
    assert body_of(OpenAIWire().build_request(request(extra=extra), OPENAI))["logprobs"] is False


def test_non_function_tools_are_refused() -> None:
    tools = ({"type": "custom", "custom": {"name": "grammar"}},)
    with pytest.raises(errors.InvalidRequestError, match=r"tools\[0\] has type 'custom'"):
        OpenAIWire().build_request(request(tools=tools), OPENAI)


@pytest.mark.parametrize(
    "req",
    [
        request(temperature=float("nan")),
        request(extra={"metadata": {"tags": {"a", "b"}}}),
        request(messages=({"role": "user", "content": "x", 1: "y"},)),
    ],
)
def test_values_json_cannot_carry_are_refused(req: ChatRequest) -> None:
    with pytest.raises(errors.InvalidRequestError, match="JSON"):
        OpenAIWire().build_request(req, OPENAI)


@pytest.mark.parametrize("bad_key", [KEY + "\n", " " + KEY, KEY[:10] + "é" + KEY[10:]])
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(bad_key: str) -> None:
    for wire, target in ((OpenAIWire(), OPENAI), (AzureOpenAIWire(), AZURE)):
        bad = Target(
            deployment=target.deployment,
            provider=target.provider,
            kind=target.kind,
            base_url=target.base_url,
            model=target.model,
            api_key=bad_key,
            api_version=target.api_version,
        )
        with pytest.raises(errors.InvalidRequestError, match="trailing newline") as info:
            wire.build_request(request(), bad)
        assert bad_key.strip() not in str(info.value)
        assert KEY[:12] not in str(info.value)


def test_the_key_is_not_in_the_target_repr() -> None:
    assert KEY not in repr(OPENAI)
    assert AZURE_KEY not in repr(AZURE)


# --------------------------------------------------------------------------- responses

COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 192,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}


def parse(body: Any, target: Target = OPENAI) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return OpenAIWire().parse_response(raw, target)


def test_text_completion_with_cached_and_reasoning_tokens() -> None:
    resp = parse(COMPLETION)

    assert resp.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert resp.created == 1741569952
    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.system_fingerprint == "fp_06737a9306"
    (choice,) = resp.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.content == "Hello! How can I assist you today?"
    assert choice.message.tool_calls is None
    assert choice.message.refusal is None
    assert resp.usage == Usage.of(2006, 300, cached_tokens=1920, reasoning_tokens=192)
    assert resp.usage.total_tokens == 2306


def test_tool_call_completion() -> None:
    body = {
        **COMPLETION,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc123",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_def456",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
    }
    (choice,) = parse(body).choices

    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls == (
        ToolCall(
            id="call_abc123", function=Function(name="get_weather", arguments='{"city":"Paris"}')
        ),
        ToolCall(id="call_def456", function=Function(name="get_time", arguments="{}")),
    )


def test_refusal() -> None:
    body = {
        **COMPLETION,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't help."},
                "finish_reason": "stop",
            }
        ],
    }
    assert parse(body).choices[0].message.refusal == "I can't help."


def test_several_choices_keep_their_index() -> None:
    first = COMPLETION["choices"][0]  # type: ignore[index]
    body = {**COMPLETION, "choices": [first, {**first, "index": 1, "finish_reason": "length"}]}
    resp = parse(body)
    assert [(c.index, c.finish_reason) for c in resp.choices] == [(0, "stop"), (1, "length")]


@pytest.mark.parametrize(
    ("vendor", "ours"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "function_call"),
        ("eos_token", "stop"),
        ("stop_sequence", "stop"),
        ("model_length", "length"),
        (None, None),
    ],
)
def test_finish_reasons(vendor: str | None, ours: str | None) -> None:
    body = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "finish_reason": vendor}]}  # type: ignore[index]
    assert parse(body).choices[0].finish_reason == ours


def test_unknown_finish_reason_is_a_format_error() -> None:
    body = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "finish_reason": "abort"}]}  # type: ignore[index]
    with pytest.raises(errors.ResponseFormatError, match="finish_reason 'abort'"):
        parse(body)


def test_missing_usage_is_none_and_null_details_are_zero() -> None:
    assert parse({k: v for k, v in COMPLETION.items() if k != "usage"}).usage is None
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": None,
        "completion_tokens_details": {"reasoning_tokens": None},
    }
    assert parse({**COMPLETION, "usage": usage}).usage == Usage.of(10, 5)
    bare = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert parse({**COMPLETION, "usage": bare}).usage == Usage.of(10, 5)


def test_azure_body_with_content_filter_results() -> None:
    body = {
        "choices": [
            {
                "content_filter_results": {
                    "hate": {"filtered": False, "severity": "safe"},
                    "self_harm": {"filtered": False, "severity": "safe"},
                },
                "finish_reason": "stop",
                "index": 0,
                "logprobs": None,
                "message": {"content": "Hi there.", "refusal": None, "role": "assistant"},
            }
        ],
        "created": 1727000000,
        "id": "chatcmpl-AAzure",
        "model": "gpt-4o-2024-08-06",
        "object": "chat.completion",
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False}}}
        ],
        "system_fingerprint": "fp_b2ffeb16ee",
        "usage": {"completion_tokens": 3, "prompt_tokens": 8, "total_tokens": 11},
    }
    resp = AzureOpenAIWire().parse_response(json.dumps(body).encode(), AZURE)
    assert resp.choices[0].message.content == "Hi there."
    assert resp.model == "gpt-4o-2024-08-06"
    assert resp.usage == Usage.of(8, 3)


def test_compatible_server_quirks() -> None:
    body = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "call_x", "function": {"name": "f", "arguments": {"a": 1}}}
                    ],
                },
                "finish_reason": "tool_calls",
            },
        ],
    }
    resp = parse(body, LOCAL)
    assert resp.id == ""
    assert resp.created == 0
    assert resp.model == "llama3.1:8b"  # the server named none: the target's model
    assert resp.choices[0].index == 0
    assert resp.choices[0].message.tool_calls == (
        ToolCall(id="call_x", function=Function(name="f", arguments='{"a":1}')),
    )
    assert resp.usage is None


def test_empty_tool_calls_list_reads_as_none() -> None:
    body = {
        "choices": [
            {"index": 0, "message": {"content": "x", "tool_calls": []}, "finish_reason": "stop"}
        ],
    }
    assert parse(body).choices[0].message.tool_calls is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>502 Bad Gateway</html>", "not valid JSON"),
        (b'{"id": "x", "choi', "not valid JSON"),
        (b"[1, 2]", "response is a list, not an object"),
        ({"id": "x"}, "response.choices is missing, not a list"),
        ({"choices": {"0": {}}}, "response.choices is a dict, not a list"),
        ({"choices": [{"index": 0}]}, r"response.choices\[0\].message is missing"),
        ({"choices": [{"message": {"content": 5}}]}, r"message.content is a int, not a string"),
        ({"choices": [{"message": {"content": "x"}, "index": "0"}]}, r"index is a str"),
        ({"choices": [{"message": {"content": "x"}, "index": True}]}, r"index is a bool"),
        (
            {"choices": [{"message": {"tool_calls": [{"function": {"name": "f"}}]}}]},
            r"tool_calls\[0\].id is missing",
        ),
        (
            {"choices": [{"message": {"tool_calls": [{"id": "c", "type": "custom"}]}}]},
            "only function tool calls",
        ),
        ({"choices": [], "usage": {"prompt_tokens": "9"}}, "usage.prompt_tokens is a str"),
        ({"choices": [], "usage": {"prompt_tokens": 9}}, "usage.completion_tokens is missing"),
        ({"choices": [], "created": "yesterday"}, "response.created is a str"),
    ],
)
def test_malformed_bodies_name_the_field_and_the_deployment(body: Any, match: str) -> None:
    with pytest.raises(errors.ResponseFormatError, match=match) as info:
        parse(body)
    assert "gpt-4o-mini" in str(info.value)
    assert info.value.deployment == "gpt-4o-mini"


def test_an_error_body_with_status_200_raises_the_mapped_error() -> None:
    body = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    with pytest.raises(errors.ServerError) as info:
        parse(body)
    assert info.value.status == 500
    assert info.value.code == "server_error"


# --------------------------------------------------------------------------- errors


def error_body(message: str, kind: str | None, code: Any = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()


ERROR_TABLE = [
    # status, body, headers, class, code, retry_after
    (
        400,
        error_body("Invalid 'messages': empty array.", "invalid_request_error", "empty_array"),
        {},
        errors.BadRequestError,
        "empty_array",
        None,
    ),
    (
        401,
        error_body(
            "Incorrect API key provided: sk-proj-****6789. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        {},
        errors.AuthenticationError,
        "invalid_api_key",
        None,
    ),
    (
        403,
        error_body(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        {},
        errors.PermissionDeniedError,
        "unsupported_country_region_territory",
        None,
    ),
    (
        404,
        error_body(
            "The model `gpt-5-turbo` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        {},
        errors.ModelNotFoundError,
        "model_not_found",
        None,
    ),
    (
        404,
        error_body("Invalid URL (POST /v1/chat/completion)", "invalid_request_error"),
        {},
        errors.NotFoundError,
        "invalid_request_error",
        None,
    ),
    (
        408,
        error_body("Request timed out.", "timeout"),
        {},
        errors.RequestTimeoutError,
        "timeout",
        None,
    ),
    (
        409,
        error_body("Conflict", "invalid_request_error", "conflict"),
        {},
        errors.ConflictError,
        "conflict",
        None,
    ),
    (
        413,
        b"<html><body><h1>413 Request Entity Too Large</h1></body></html>",
        {},
        errors.RequestTooLargeError,
        None,
        None,
    ),
    (
        422,
        error_body("Unprocessable", "invalid_request_error"),
        {},
        errors.BadRequestError,
        "invalid_request_error",
        None,
    ),
    (
        429,
        error_body(
            "Rate limit reached for gpt-4o-mini in organization org-123 on tokens per min "
            "(TPM): Limit 200000, Used 199000, Requested 2000. Please try again in 300ms.",
            "tokens",
            "rate_limit_exceeded",
        ),
        {"retry-after-ms": "300", "retry-after": "1"},
        errors.RateLimitedError,
        "rate_limit_exceeded",
        0.3,
    ),
    (
        429,
        error_body("You exceeded your current quota.", "insufficient_quota", "insufficient_quota"),
        {"retry-after": "20"},
        errors.RateLimitedError,
        "insufficient_quota",
        20.0,
    ),
    (
        429,
        error_body("slow down", "requests"),
        {"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"},  # NOW + 10 s
        errors.RateLimitedError,
        "requests",
        10.0,
    ),
    (
        500,
        error_body("The server had an error while processing your request.", "server_error"),
        {},
        errors.ServerError,
        "server_error",
        None,
    ),
    (
        502,
        b"<html>502 Bad Gateway</html>",
        {},
        errors.ServerError,
        None,
        None,
    ),
    (
        503,
        error_body("That model is currently overloaded with other requests.", "server_error"),
        {},
        errors.OverloadedError,
        "server_error",
        None,
    ),
    (
        503,
        error_body("Service unavailable.", "server_error"),
        {},
        errors.ServerError,
        "server_error",
        None,
    ),
    (529, error_body("Overloaded", None), {}, errors.OverloadedError, None, None),
]


@pytest.mark.parametrize(("status", "body", "headers", "cls", "code", "retry_after"), ERROR_TABLE)
def test_error_mapping(
    status: int,
    body: bytes,
    headers: dict[str, str],
    cls: type[errors.ProviderError],
    code: str | None,
    retry_after: float | None,
) -> None:
    all_headers = httpx.Headers({"x-request-id": "req_abc123", **headers})
    exc = OpenAIWire().parse_error(status, all_headers, body, OPENAI, now=NOW)

    assert type(exc) is cls
    assert exc.status == status
    assert exc.code == code
    assert exc.request_id == "req_abc123"
    assert exc.retry_after == retry_after
    assert exc.deployment == "gpt-4o-mini"
    assert "req_abc123" in str(exc)
    assert KEY not in str(exc)
    assert KEY not in repr(exc)
    assert KEY not in exc.body


def test_error_message_carries_the_vendors_words() -> None:
    body = error_body("Invalid 'messages[0].role': 'robot'.", "invalid_request_error")
    exc = OpenAIWire().parse_error(400, httpx.Headers(), body, OPENAI, now=NOW)
    assert "Invalid 'messages[0].role': 'robot'." in str(exc)
    assert exc.request_id is None


def test_a_body_echoing_the_key_is_scrubbed() -> None:
    body = error_body(f"Incorrect API key provided: {KEY}.", "invalid_request_error")
    exc = OpenAIWire().parse_error(401, httpx.Headers(), body, OPENAI, now=NOW)
    assert KEY not in str(exc)
    assert KEY not in exc.body


def test_non_json_error_body_is_quoted_briefly() -> None:
    exc = OpenAIWire().parse_error(502, httpx.Headers(), b"<html>" + b"x" * 5000, OPENAI, now=NOW)
    assert "<html>" in str(exc)
    assert len(str(exc)) < 600


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            404,
            {
                "error": {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist. If you "
                    "created the deployment within the last 5 minutes, please wait a moment "
                    "and try again.",
                }
            },
            errors.ModelNotFoundError,
            "DeploymentNotFound",
        ),
        (
            429,
            {
                "error": {
                    "code": "429",
                    "message": "Requests to the ChatCompletions_Create Operation under Azure "
                    "OpenAI API version 2024-10-21 have exceeded token rate limit. Please retry "
                    "after 6 seconds.",
                }
            },
            errors.RateLimitedError,
            "429",
        ),
        (
            401,
            {
                "statusCode": 401,
                "message": "Unauthorized. Access token is missing, invalid, audience is "
                "incorrect (https://cognitiveservices.azure.com), or have expired.",
            },
            errors.AuthenticationError,
            None,
        ),
        (
            400,
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure "
                    "OpenAI's content management policy.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                }
            },
            errors.BadRequestError,
            "content_filter",
        ),
    ],
)
def test_azure_errors(
    status: int, body: dict[str, Any], cls: type[errors.ProviderError], code: str | None
) -> None:
    headers = httpx.Headers(
        {"apim-request-id": "apim-1", "x-ms-request-id": "ms-1", "retry-after-ms": "6000"}
    )
    exc = AzureOpenAIWire().parse_error(status, headers, json.dumps(body).encode(), AZURE, now=NOW)
    assert type(exc) is cls
    assert exc.code == code
    assert exc.request_id == "apim-1"
    assert exc.retry_after == 6.0
    assert AZURE_KEY not in str(exc)


def test_azure_request_id_falls_back_to_other_headers() -> None:
    for headers, rid in (
        ({"x-ms-request-id": "ms-1", "x-request-id": "r"}, "ms-1"),
        ({"x-request-id": "r"}, "r"),
    ):
        exc = AzureOpenAIWire().parse_error(500, httpx.Headers(headers), b"", AZURE, now=NOW)
        assert exc.request_id == rid
        assert type(exc) is errors.ServerError


@pytest.mark.parametrize(
    "body",
    [
        # vLLM (older, top level) and newer (nested)
        {
            "object": "error",
            "message": "The model `llama9` does not exist.",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        },
        {
            "error": {
                "message": "The model `llama9` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
        },
        # Ollama
        {
            "error": {
                "message": 'model "llama9" not found, try pulling it first',
                "type": "api_error",
                "param": None,
                "code": None,
            }
        },
        {"error": 'model "llama9" not found, try pulling it first'},
    ],
)
def test_compatible_servers_model_not_found(body: dict[str, Any]) -> None:
    exc = OpenAIWire(max_tokens_field="max_tokens").parse_error(
        404, httpx.Headers(), json.dumps(body).encode(), LOCAL, now=NOW
    )
    assert type(exc) is errors.ModelNotFoundError
    assert "llama9" in str(exc)


# --------------------------------------------------------------------------- streams

BASE = {
    "id": "chatcmpl-AbC",
    "object": "chat.completion.chunk",
    "created": 1727000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_f85bea6784",
}


def event(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def chunk_event(choices: list[Any], usage: Any = None) -> bytes:
    return event({**BASE, "choices": choices, "usage": usage})


def delta_event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return chunk_event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])


STREAM_USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 2,
    "total_tokens": 11,
    "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 1, "audio_tokens": 0},
}

TEXT_STREAM = b"".join(
    [
        delta_event({"role": "assistant", "content": "", "refusal": None}),
        delta_event({"content": "Hello"}),
        delta_event({"content": " world"}),
        delta_event({}, "stop"),
        chunk_event([], STREAM_USAGE),
        b"data: [DONE]\n\n",
    ]
)

TOOL_STREAM = b"".join(
    [
        delta_event(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
                "refusal": None,
            }
        ),
        delta_event({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        delta_event({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
        delta_event(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_def",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    }
                ]
            }
        ),
        delta_event({}, "tool_calls"),
        chunk_event([], {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
        b"data: [DONE]\n\n",
    ]
)


def decode(data: bytes, pieces: list[int] | None = None, target: Target = OPENAI) -> list[Any]:
    decoder = OpenAIWire().stream_decoder(target)
    chunks: list[ChatCompletionChunk] = []
    cuts = sorted(set(pieces or []))
    start = 0
    for cut in [*cuts, len(data)]:
        chunks += decoder.feed(data[start:cut])
        start = cut
    chunks += decoder.close()
    assert decoder.done
    return chunks


def test_reasoning_content_from_a_compatible_server_is_read_into_its_field() -> None:
    """vLLM and DeepSeek send the thinking text as ``reasoning_content`` beside the content,
    in answers and in deltas: it reaches the message and the delta, on the fast path (text)
    and the checked one (tool calls) alike."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    for message, expected_calls in (
        ({"role": "assistant", "content": "42"}, None),
        ({"role": "assistant", "content": None, "tool_calls": [call]}, 1),
    ):
        body = {
            "id": "x",
            "created": 1,
            "model": "deepseek-reasoner",
            "choices": [
                {
                    "index": 0,
                    "message": {**message, "reasoning_content": "Let me think."},
                    "finish_reason": "stop",
                }
            ],
        }
        read = parse(body).choices[0].message
        assert read.reasoning_content == "Let me think."
        assert len(read.tool_calls or ()) == (expected_calls or 0)

    def event(delta: dict[str, Any]) -> bytes:
        chunk = {"id": "x", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta}]}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    stream = (
        event({"role": "assistant", "content": "", "reasoning_content": "Let me"})
        + event({"reasoning_content": " think."})
        + event({"reasoning_content": "", "tool_calls": [{"index": 0, **call}]})
        + event({"content": "42"})
        + b"data: [DONE]\n\n"
    )
    deltas = [c.choices[0].delta for c in decode(stream)]
    assert [d.reasoning_content for d in deltas] == ["Let me", " think.", "", None]
    assert deltas[3].content == "42"


def test_text_stream() -> None:
    chunks = decode(TEXT_STREAM)

    assert [c.choices[0].delta for c in chunks[:4]] == [
        ChoiceDelta(role="assistant", content=""),
        ChoiceDelta(content="Hello"),
        ChoiceDelta(content=" world"),
        ChoiceDelta(),
    ]
    assert [c.choices[0].finish_reason for c in chunks[:4]] == [None, None, None, "stop"]
    first = chunks[0]
    assert (first.id, first.created, first.model, first.system_fingerprint) == (
        "chatcmpl-AbC",
        1727000000,
        "gpt-4o-mini-2024-07-18",
        "fp_f85bea6784",
    )
    assert all(c.usage is None for c in chunks[:4])
    last = chunks[4]
    assert last.choices == ()
    assert last.usage == Usage.of(9, 2, cached_tokens=4, reasoning_tokens=1)
    assert len(chunks) == 5


def test_tool_call_stream() -> None:
    chunks = decode(TOOL_STREAM)
    calls = [c.choices[0].delta.tool_calls for c in chunks[:4]]

    assert calls == [
        (
            ChoiceDeltaToolCall(
                index=0,
                id="call_abc",
                type="function",
                function=ChoiceDeltaToolCallFunction(name="get_weather", arguments=""),
            ),
        ),
        (ChoiceDeltaToolCall(index=0, function=ChoiceDeltaToolCallFunction(arguments='{"ci')),),
        (
            ChoiceDeltaToolCall(
                index=0, function=ChoiceDeltaToolCallFunction(arguments='ty":"Paris"}')
            ),
        ),
        (
            ChoiceDeltaToolCall(
                index=1,
                id="call_def",
                type="function",
                function=ChoiceDeltaToolCallFunction(name="get_time", arguments="{}"),
            ),
        ),
    ]
    assert chunks[4].choices[0].finish_reason == "tool_calls"
    assert chunks[5].usage == Usage.of(50, 20)


def test_decoder_usage_and_done_properties() -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    seen = [(decoder.done, decoder.usage)]
    end = TEXT_STREAM.index(b"data: [DONE]")
    decoder.feed(TEXT_STREAM[:end])
    seen.append((decoder.done, decoder.usage))
    assert decoder.feed(TEXT_STREAM[end:]) == []
    seen.append((decoder.done, decoder.usage))
    assert decoder.close() == []

    usage = Usage.of(9, 2, cached_tokens=4, reasoning_tokens=1)
    assert seen == [(False, None), (False, usage), (True, usage)]


def test_byte_by_byte_gives_the_same_chunks() -> None:
    for stream in (TEXT_STREAM, TOOL_STREAM):
        assert decode(stream, list(range(1, len(stream)))) == decode(stream)


@given(st.data())
def test_random_splits_give_the_same_chunks(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from([TEXT_STREAM, TOOL_STREAM]))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=40))
    assert decode(stream, cuts) == decode(stream)


def test_crlf_line_endings() -> None:
    assert decode(TEXT_STREAM.replace(b"\n", b"\r\n")) == decode(TEXT_STREAM)


def test_refusal_deltas() -> None:
    stream = (
        delta_event({"role": "assistant", "content": None, "refusal": ""})
        + delta_event({"refusal": "I can't"})
        + delta_event({}, "stop")
        + b"data: [DONE]\n\n"
    )
    chunks = decode(stream)
    assert [c.choices[0].delta.refusal for c in chunks] == ["", "I can't", None]


def test_azure_stream_skips_the_filter_preamble() -> None:
    preamble = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False}}}
        ],
    }
    stream = event(preamble) + TEXT_STREAM
    chunks = decode(stream, target=AZURE)
    assert chunks == decode(TEXT_STREAM, target=AZURE)
    assert chunks[0].choices[0].delta.role == "assistant"


def test_compatible_stream_without_usage_and_with_repeated_roles() -> None:
    stream = b"".join(
        [
            event(
                {
                    "id": "c1",
                    "model": "llama3.1:8b",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": "Hi"},
                            "finish_reason": None,
                        }
                    ],
                }
            ),
            event(
                {
                    "id": "c1",
                    "model": "llama3.1:8b",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": "!"},
                            "finish_reason": "stop",
                        }
                    ],
                }
            ),
            b": keep-alive comment\n\n",
            b"data: [DONE]\n\n",
        ]
    )
    decoder = OpenAIStreamDecoder(LOCAL)
    chunks = decoder.feed(stream) + decoder.close()
    assert [c.choices[0].delta.content for c in chunks] == ["Hi", "!"]
    assert chunks[0].created == 0
    assert decoder.usage is None


def test_bytes_after_done_are_ignored() -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    chunks = decoder.feed(TEXT_STREAM + b"data: garbage\n\n")
    assert len(chunks) == 5
    assert decoder.feed(b"data: more garbage\n\n") == []
    assert decoder.close() == []


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        TEXT_STREAM[: TEXT_STREAM.index(b"data: [DONE]")],
        TEXT_STREAM[: TEXT_STREAM.index(b"data: [DONE]") + 12],  # no blank line after [DONE]
        TEXT_STREAM[:100],
    ],
)
def test_truncated_stream_raises_on_close(stream: bytes) -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    decoder.feed(stream)
    with pytest.raises(errors.ResponseFormatError, match=r"ended before its terminal") as info:
        decoder.close()
    assert info.value.deployment == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("stream", "match"),
    [
        (b"data: hello there\n\n", "neither JSON nor"),
        (b'data: {"id": "x", "choi\n\n', "neither JSON nor"),
        (b"data: [1, 2]\n\n", "stream chunk is a list"),
        (b'data: {"id": "x"}\n\n', "stream chunk.choices is missing"),
        (event({**BASE, "choices": [{"index": 0, "delta": {"content": 7}}]}), "content is a int"),
        (event({**BASE, "choices": [{"index": 0, "delta": "x"}]}), "delta is a str"),
        (
            event({**BASE, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": "0"}]}}]}),
            r"tool_calls\[0\].index is a str",
        ),
        (b"data: \xff\xfe\n\n", "not valid UTF-8"),
    ],
)
def test_garbage_is_a_format_error(stream: bytes, match: str) -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    with pytest.raises(errors.ResponseFormatError, match=match) as info:
        decoder.feed(stream)
    assert "gpt-4o-mini" in str(info.value)


@pytest.mark.parametrize(
    ("payload", "event_name", "cls", "status", "code"),
    [
        (
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
            None,
            errors.ServerError,
            500,
            "server_error",
        ),
        (
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                    "status": 429,
                }
            },
            None,
            errors.RateLimitedError,
            429,
            "rate_limit_exceeded",
        ),
        (
            {
                "error": {
                    "object": "error",
                    "message": "Too many requests",
                    "type": "Error",
                    "code": 429,
                }
            },
            None,
            errors.RateLimitedError,
            429,
            "Error",
        ),
        (
            {"error": {"message": "The engine is currently overloaded", "type": "server_error"}},
            None,
            errors.OverloadedError,
            500,
            "server_error",
        ),
        ({"message": "boom"}, "error", errors.ServerError, 500, None),
    ],
)
def test_error_event_mid_stream_raises_the_mapped_error(
    payload: dict[str, Any],
    event_name: str | None,
    cls: type[errors.ProviderError],
    status: int,
    code: str | None,
) -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    assert len(decoder.feed(delta_event({"role": "assistant", "content": "Hel"}))) == 1
    prefix = f"event: {event_name}\n".encode() if event_name else b""
    with pytest.raises(cls) as info:
        decoder.feed(prefix + event(payload))
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.code == code
    assert info.value.deployment == "gpt-4o-mini"


# --------------------------------------------------------------------------- against the SDK


def sdk_view(sdk: Any, ours: Any) -> Any:
    """``sdk`` (a model_dump) cut down to the keys our value has, to compare field by field."""
    if isinstance(ours, dict) and isinstance(sdk, dict):
        return {key: sdk_view(sdk.get(key), value) for key, value in ours.items()}
    if isinstance(ours, list) and isinstance(sdk, list) and len(ours) == len(sdk):
        return [sdk_view(s, o) for s, o in zip(sdk, ours, strict=True)]
    return sdk


def test_completion_reads_as_the_openai_sdk_reads_it() -> None:
    ours = parse(COMPLETION).to_dict()
    assert ours == sdk_view(SDKCompletion.model_validate(COMPLETION).model_dump(), ours)


@pytest.mark.parametrize("stream", [TEXT_STREAM, TOOL_STREAM])
def test_chunks_read_as_the_openai_sdk_reads_them(stream: bytes) -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    for part in stream.split(b"\n\n")[:-2]:  # every chunk event; [DONE] and the empty tail go
        raw = json.loads(part.removeprefix(b"data: "))
        if raw["usage"] and "prompt_tokens_details" not in raw["usage"]:
            continue  # the SDK reads absent details as None, we as zero counts
        (mine,) = [chunk.to_dict() for chunk in decoder.feed(part + b"\n\n")]
        assert mine == sdk_view(SDKChunk.model_validate(raw).model_dump(), mine)


SELECTIONS: list[dict[str, Any]] = [
    {"exclude_none": True},
    {"exclude_none": True, "mode": "json"},
    {"include": {"id", "model"}},
    {"include": {"id": True, "usage": {"total_tokens"}}},
    {"exclude": {"usage"}, "exclude_none": True},
    {"exclude": {"choices": {"__all__": {"message": {"role", "refusal"}}}}, "exclude_none": True},
    {"include": {"choices": {0: {"message": {"content"}}}}},
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
def test_completion_dumps_as_the_openai_sdk_dumps_it(selection: dict[str, Any]) -> None:
    """``model_dump`` with pydantic's selections gives what the openai package's type gives
    for the same answer (the SDK's fields we do not carry are None, left out with
    exclude_none)."""
    ours = parse(COMPLETION)
    sdk = SDKCompletion.model_validate(ours.to_dict())
    theirs = sdk.model_dump(**selection)
    if not selection.get("exclude_none"):
        theirs = sdk_view(theirs, ours.model_dump(**selection))
    assert ours.model_dump(**selection) == theirs
    json_selection = {k: v for k, v in selection.items() if k != "mode"}
    assert json.loads(ours.model_dump_json(**json_selection)) == json.loads(json.dumps(theirs))


def test_chunk_dumps_as_the_openai_sdk_dumps_it() -> None:
    decoder = OpenAIStreamDecoder(OPENAI)
    part = TEXT_STREAM.split(b"\n\n")[1]
    raw = json.loads(part.removeprefix(b"data: "))
    (mine,) = decoder.feed(part + b"\n\n")
    sdk = SDKChunk.model_validate(raw)
    assert mine.model_dump(exclude_none=True) == sdk.model_dump(exclude_none=True)
    assert json.loads(mine.model_dump_json(exclude_none=True)) == json.loads(
        sdk.model_dump_json(exclude_none=True)
    )


def test_model_dump_json_is_compact_unless_indented() -> None:
    ours = parse(COMPLETION)
    assert ours.model_dump_json() == json.dumps(
        ours.model_dump(), separators=(",", ":"), ensure_ascii=False
    )
    assert ours.model_dump_json(indent=2) == json.dumps(
        ours.model_dump(), indent=2, ensure_ascii=False
    )


def test_model_dump_leaves_out_defaults_when_asked() -> None:
    """``exclude_defaults`` (and ``exclude_unset``, which these values cannot tell apart from
    it) drop each field equal to its default, nested ones too."""
    dumped = parse(COMPLETION).model_dump(exclude_defaults=True)
    assert "object" not in dumped
    assert "logprobs" not in dumped["choices"][0]
    assert "role" not in dumped["choices"][0]["message"]
    assert dumped["system_fingerprint"] == COMPLETION["system_fingerprint"]  # not a default
    assert parse(COMPLETION).model_dump(exclude_unset=True) == dumped


def test_model_dump_refuses_an_unknown_mode() -> None:
    with pytest.raises(errors.ArgumentError, match="mode must be 'python' or 'json'"):
        parse(COMPLETION).model_dump(mode="yaml")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130021 tokens. Please reduce the length of the messages.",
            "context_length_exceeded",
        ),
        # vLLM copies OpenAI's words without its code.
        ("This model's maximum context length is 4096 tokens. However, you requested 5000", None),
    ],
)
def test_a_context_length_400_is_a_context_window_error(message: str, code: str | None) -> None:
    exc = OpenAIWire().parse_error(
        400, httpx.Headers(), error_body(message, "invalid_request_error", code), OPENAI, now=NOW
    )
    assert type(exc) is errors.ContextLengthExceededError
    assert isinstance(exc, errors.ContextWindowExceededError)
    assert isinstance(exc, errors.BadRequestError)  # still the vendor's 400 for who catches it
    assert exc.status == 400


def test_another_400_stays_a_bad_request() -> None:
    body = error_body("Invalid value for 'temperature'", "invalid_request_error", None)
    exc = OpenAIWire().parse_error(400, httpx.Headers(), body, OPENAI, now=NOW)
    assert type(exc) is errors.BadRequestError
