"""The Gemini wire format: request translation, response and stream parsing, error mapping."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm import errors
from guardedllm.providers.base import Target
from guardedllm.providers.gemini import GeminiWire
from guardedllm.types import (
    ChatCompletionChunk,
    ChatRequest,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    Function,
    ToolCall,
    Usage,
)

KEY = "AIzaSyD-test0123456789abcdefghijklmnopq"
TARGET = Target(
    deployment="gemini-flash",
    provider="google",
    kind="gemini",
    base_url="https://generativelanguage.googleapis.com/",
    model="gemini-2.5-flash",
    api_key=KEY,
)
WIRE = GeminiWire()
USER = {"role": "user", "content": "Hi"}


def chat(*messages: Mapping[str, Any], **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="chat", messages=messages or (USER,), **kwargs)


def body_of(request: ChatRequest, target: Target = TARGET) -> Any:
    return json.loads(WIRE.build_request(request, target).content)


# --------------------------------------------------------------------------- request: HTTP


def test_non_streaming_request_url_headers_and_compact_body() -> None:
    target = Target(
        deployment="d",
        provider="google",
        kind="gemini",
        base_url="https://generativelanguage.googleapis.com",
        model="gemini-2.0-flash",
        api_key=KEY,
        headers={"x-goog-user-project": "proj"},
    )
    request = WIRE.build_request(chat(), target)
    assert request.method == "POST"
    assert str(request.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-goog-user-project"] == "proj"
    assert "authorization" not in request.headers
    assert request.content == b'{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}'


def test_streaming_request_asks_for_sse() -> None:
    request = WIRE.build_request(chat(stream=True), TARGET)
    assert str(request.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert request.headers["accept"] == "text/event-stream"


def test_no_api_key_sends_no_auth_header() -> None:
    target = Target(deployment="d", provider="p", kind="gemini", base_url="http://x", model="m")
    request = WIRE.build_request(chat(), target)
    assert "x-goog-api-key" not in request.headers
    assert str(request.url) == "http://x/v1beta/models/m:generateContent"


def test_api_version_and_full_model_resource_names() -> None:
    target = Target(
        deployment="d",
        provider="p",
        kind="gemini",
        base_url="http://x",
        model="tunedModels/my-tune",
        api_version="v1",
    )
    request = WIRE.build_request(chat(), target)
    assert str(request.url) == "http://x/v1/tunedModels/my-tune:generateContent"


# --------------------------------------------------------------------------- request: body


def test_full_conversation_translates_exactly() -> None:
    request = chat(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "14:02"},
        {"role": "user", "content": "Thanks!"},
        tools=(
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                        "additionalProperties": False,
                    },
                    "strict": True,
                },
            },
            {
                "type": "function",
                "function": {"name": "get_time", "parameters": {"type": "object"}},
            },
        ),
        tool_choice="auto",
        temperature=0.2,
        top_p=0.9,
        max_tokens=256,
        stop=("END",),
        seed=7,
    )
    assert body_of(request) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in this picture, and the weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Let me check."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {"functionResponse": {"name": "get_time", "response": {"content": "14:02"}}},
                    {"text": "Thanks!"},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                    {"name": "get_time"},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 256,
            "seed": 7,
            "stopSequences": ["END"],
        },
    }


def test_consecutive_same_role_messages_merge() -> None:
    request = chat(
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "d"}]},
    )
    assert body_of(request)["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
    ]


def test_tool_result_takes_the_name_of_the_latest_call_with_its_id() -> None:
    # Generated ids ("call_0") repeat across turns; the most recent call is the one answered.
    def call(name: str) -> dict[str, Any]:
        return {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}
            ],
        }

    request = chat(
        USER,
        call("first"),
        {"role": "tool", "tool_call_id": "call_0", "content": "1"},
        call("second"),
        {"role": "tool", "tool_call_id": "call_0", "content": "[2]"},
    )
    contents = body_of(request)["contents"]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "first", "response": {"content": "1"}}}
    ]
    assert contents[4]["parts"] == [
        {"functionResponse": {"name": "second", "response": {"content": "[2]"}}}
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice(tool_choice: Any, expected: dict[str, Any]) -> None:
    body = body_of(chat(tool_choice=tool_choice))
    assert body["toolConfig"] == {"functionCallingConfig": expected}


@pytest.mark.parametrize("tool_choice", ["any", {"type": "allowed_tools"}, {"type": "function"}])
def test_unknown_tool_choice_is_refused(tool_choice: Any) -> None:
    with pytest.raises(errors.InvalidRequestError, match="tool_choice"):
        WIRE.build_request(chat(tool_choice=tool_choice), TARGET)


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {"type": "json_schema", "json_schema": {"name": "A", "schema": SCHEMA, "strict": True}},
            {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "A"}},
            {"responseMimeType": "application/json"},
        ),
    ],
)
def test_response_format(response_format: Any, expected: Any) -> None:
    assert body_of(chat(response_format=response_format)).get("generationConfig") == expected


@pytest.mark.parametrize(
    "response_format",
    [{"type": "json_schema"}, {"type": "xml"}, {"type": "json_schema", "json_schema": 1}],
)
def test_bad_response_format_is_refused(response_format: Any) -> None:
    with pytest.raises(errors.InvalidRequestError, match=r"json_schema|response_format"):
        WIRE.build_request(chat(response_format=response_format), TARGET)


def declared(parameters: Any) -> Any:
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    return body_of(chat(tools=(tool,)))["tools"][0]["functionDeclarations"][0].get("parameters")


def test_schema_keys_gemini_rejects_are_stripped_at_every_level() -> None:
    parameters = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            # A property may carry a rejected key's name: property names are data.
            "additionalProperties": {"type": "string", "$comment": "x"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "properties": {"k": {"type": "string"}},
                },
            },
            "either": {
                "anyOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "additionalProperties": True,
                        "properties": {"z": {"type": "null"}},
                    },
                ]
            },
        },
        "required": ["items"],
    }
    assert declared(parameters) == {
        "type": "object",
        "properties": {
            "additionalProperties": {"type": "string"},
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
            "either": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {"z": {"type": "null"}}},
                ]
            },
        },
        "required": ["items"],
    }


def test_local_refs_are_inlined() -> None:
    parameters = {
        "type": "object",
        "$defs": {
            "Point": {
                "type": "object",
                "properties": {"x": {"type": "number"}},
                "additionalProperties": False,
            }
        },
        "properties": {
            "p": {"$ref": "#/$defs/Point", "description": "where"},
            "q": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
        },
    }
    point = {"type": "object", "properties": {"x": {"type": "number"}}}
    assert declared(parameters) == {
        "type": "object",
        "properties": {
            "p": {**point, "description": "where"},
            "q": {"type": "array", "items": point},
        },
    }


@pytest.mark.parametrize(
    "parameters",
    [
        {
            "type": "object",
            "properties": {"n": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        },
        {"type": "object", "properties": {"n": {"$ref": "#/$defs/Missing"}}},
        {"type": "object", "properties": {"n": {"$ref": "https://example.com/schema.json"}}},
        "not a schema",
    ],
)
def test_schemas_that_cannot_be_translated_are_refused(parameters: Any) -> None:
    with pytest.raises(errors.InvalidRequestError, match=r"tools\[0\]\.function\.parameters"):
        declared(parameters)


def test_object_without_properties_declares_no_parameters() -> None:
    assert declared({"type": "object", "properties": {}, "additionalProperties": False}) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "gs://bucket/cats/cat.PNG",
            {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cats/cat.PNG"}},
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/files/abc.jpeg?alt=media",
            {
                "fileData": {
                    "mimeType": "image/jpeg",
                    "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc.jpeg?alt=media",
                }
            },
        ),
        (
            "data:image/webp;name=x;base64,UklGRg==",
            {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        ),
    ],
)
def test_image_sources(url: str, expected: dict[str, Any]) -> None:
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    assert body_of(chat(message))["contents"][0]["parts"] == [expected]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://example.com/cat.png", "cannot fetch images"),
        ("http://example.com/cat.png", "cannot fetch images"),
        ("https://generativelanguage.googleapis.com/v1beta/files/abc123", "image type"),
        ("gs://bucket/cat.tiff", "image type"),
        ("data:image/png,rawbytes", "base64 data URL"),
        ("data:;base64,AAAA", "base64 data URL"),
    ],
)
def test_image_urls_gemini_cannot_take_are_refused(url: str, match: str) -> None:
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    with pytest.raises(errors.InvalidRequestError, match=match) as info:
        WIRE.build_request(chat(message), TARGET)
    assert r"messages[0].content[0].image_url.url" in str(info.value)


def test_audio_and_file_parts() -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {
                "type": "file",
                "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
            },
        ],
    }
    assert body_of(chat(message))["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


def test_extra_parameters_gemini_can_express() -> None:
    request = chat(
        extra={
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "max_completion_tokens": 100,
            "n": 1,
            "logprobs": False,
            "parallel_tool_calls": True,
            "stream_options": {"include_usage": True},
            "metadata": None,
        }
    )
    assert body_of(request)["generationConfig"] == {
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "maxOutputTokens": 100,
    }


def test_max_tokens_and_max_completion_tokens_must_agree() -> None:
    assert body_of(chat(max_tokens=5, extra={"max_completion_tokens": 5}))["generationConfig"] == {
        "maxOutputTokens": 5
    }
    with pytest.raises(errors.InvalidRequestError, match="max_completion_tokens"):
        WIRE.build_request(chat(max_tokens=5, extra={"max_completion_tokens": 6}), TARGET)


FUNCTION_TOOL = {"type": "function", "function": {"name": "f"}}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (chat(user="u-1"), "`user`"),
        (chat(extra={"logit_bias": {"1": 2}, "top_logprobs": 3}), "logit_bias, top_logprobs"),
        (chat(extra={"n": 2}), "parameter.*n;"),
        (chat(extra={"parallel_tool_calls": False}), "parallel_tool_calls"),
        (chat(tools=({"type": "web_search"},)), r"tools\[0\] has type 'web_search'"),
        (chat(tools=("f",)), r"tools\[0\] has type 'str'"),
        (chat(tools=({"type": "function"},)), '"function" object'),
        (
            chat(
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "image_url"}]},
            ),
            "tool messages take only text parts",
        ),
        (chat({"role": "user", "content": [{"type": "video", "video": {}}]}), "'video'"),
        (chat({"role": "user", "content": [{"type": "text"}]}), r"content\[0\]\.text"),
        (chat({"role": "user", "content": 42}), "content is int"),
        (chat({"role": "user", "content": None}), "content is NoneType"),
        (chat({"role": "function", "content": "x"}), "role 'function'"),
        (chat({"content": "x"}), r"messages\[0\] has no role"),
        (chat("not a message"), r"messages\[0\] is not a dict"),
        (chat({"role": "user", "content": ""}), r"messages\[0\] \(user\) is empty"),
        (chat({"role": "system", "content": "only a system prompt"}), "no user or assistant"),
        (
            chat({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}),
            "only text parts",
        ),
        (chat(USER, {"role": "assistant", "content": [{"type": "image_url"}]}), "text and refusal"),
        (chat(USER, {"role": "assistant", "tool_calls": "f()"}), "tool_calls is not a list"),
        (
            chat(USER, {"role": "assistant", "tool_calls": [{"type": "custom", "custom": {}}]}),
            "only function tool calls",
        ),
        (
            chat(
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{bad"}}],
                },
            ),
            r"tool_calls\[0\]\.function\.arguments",
        ),
        (
            chat(
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}],
                },
            ),
            "JSON object",
        ),
        (
            chat(
                USER, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "x"}
            ),
            "without tool_call_id",
        ),
        (chat(USER, {"role": "tool", "tool_call_id": "c9", "content": "x"}), "'c9'"),
        (
            chat(
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "A", "format": "ogg"}}
                    ],
                }
            ),
            "wav or mp3",
        ),
        (
            chat({"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}),
            "file ids",
        ),
        (
            chat({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}),
            "image_url.url",
        ),
        (
            chat(response_format={"type": "json_schema", "json_schema": {"schema": {"x": b"1"}}}),
            "not JSON",
        ),
    ],
)
def test_requests_gemini_cannot_express_are_refused(request_: ChatRequest, match: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match=match):
        WIRE.build_request(request_, TARGET)


# --------------------------------------------------------------------------- responses


def response(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


TEXT_RESPONSE = b"""{
  "candidates": [
    {
      "content": {
        "parts": [{"text": "Hello! How can I help"}, {"text": " you today?"}],
        "role": "model"
      },
      "finishReason": "STOP",
      "avgLogprobs": -0.0451,
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 8,
    "candidatesTokenCount": 10,
    "totalTokenCount": 18,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
    "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 10}]
  },
  "modelVersion": "gemini-2.0-flash-001",
  "responseId": "8Z3KaL2xNqmCz7IPqMmV-Ak"
}"""


def test_text_response() -> None:
    completion = WIRE.parse_response(TEXT_RESPONSE, TARGET)
    assert completion.id == "8Z3KaL2xNqmCz7IPqMmV-Ak"
    assert completion.created == 0
    assert completion.model == "gemini-2.0-flash-001"
    (choice,) = completion.choices
    assert choice.index == 0
    assert choice.message.content == "Hello! How can I help you today?"
    assert choice.message.tool_calls is None
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert completion.usage == Usage.of(8, 10)


def test_thinking_and_cached_tokens() -> None:
    body = response(
        candidates=[
            {
                "content": {
                    "parts": [
                        {"text": "**Weighing options** The user asks...", "thought": True},
                        {"text": "42", "thoughtSignature": "CiQBVKhc7w=="},
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        usageMetadata={
            "promptTokenCount": 4100,
            "candidatesTokenCount": 2,
            "totalTokenCount": 4222,
            "cachedContentTokenCount": 4096,
            "thoughtsTokenCount": 120,
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 4096}],
        },
        modelVersion="gemini-2.5-pro",
        responseId="abc",
    )
    completion = WIRE.parse_response(body, TARGET)
    assert completion.choices[0].message.content == "42"
    # The thought is the reasoning, in the OpenAI shape's reasoning_content, never content.
    assert (
        completion.choices[0].message.reasoning_content == "**Weighing options** The user asks..."
    )
    assert completion.usage == Usage.of(4100, 122, cached_tokens=4096, reasoning_tokens=120)
    assert completion.usage is not None
    assert completion.usage.total_tokens == 4222


def test_function_calls() -> None:
    body = response(
        candidates=[
            {
                "content": {
                    "parts": [
                        {"text": "Checking both."},
                        {
                            "functionCall": {
                                "name": "get_weather",
                                "args": {"city": "Paris", "days": [1, 2]},
                            },
                            "thoughtSignature": "CiQBVKhc7w==",
                        },
                        {"functionCall": {"name": "get_time"}},
                        {"functionCall": {"id": "fc-9", "name": "get_news", "args": {"q": "é"}}},
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
    )
    completion = WIRE.parse_response(body, TARGET)
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    assert choice.message.tool_calls == (
        ToolCall(
            id="call_0",
            function=Function(name="get_weather", arguments='{"city": "Paris", "days": [1, 2]}'),
        ),
        ToolCall(id="call_1", function=Function(name="get_time", arguments="{}")),
        ToolCall(id="fc-9", function=Function(name="get_news", arguments='{"q": "\\u00e9"}')),
    )
    assert json.loads(choice.message.tool_calls[2].function.arguments) == {"q": "é"}
    assert completion.usage is None
    assert completion.id == ""
    assert completion.model == "gemini-2.5-flash"  # no modelVersion: the target's model


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("LANGUAGE", "stop"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons(gemini: str, openai: str) -> None:
    body = response(
        candidates=[
            {"content": {"parts": [{"text": "x"}], "role": "model"}, "finishReason": gemini}
        ]
    )
    assert WIRE.parse_response(body, TARGET).choices[0].finish_reason == openai


def test_length_with_a_function_call_stays_length() -> None:
    body = response(
        candidates=[
            {"content": {"parts": [{"functionCall": {"name": "f"}}]}, "finishReason": "MAX_TOKENS"}
        ]
    )
    assert WIRE.parse_response(body, TARGET).choices[0].finish_reason == "length"


def test_candidate_without_content_or_finish_reason() -> None:
    # Thinking models can spend the whole budget on thoughts: no content parts at all.
    body = response(
        candidates=[{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}, {"index": 1}]
    )
    choice = WIRE.parse_response(body, TARGET).choices[0]
    assert choice.message.content is None
    assert choice.finish_reason == "length"
    body = response(candidates=[{"index": 0}])
    assert WIRE.parse_response(body, TARGET).choices[0].finish_reason is None


def test_blocked_prompt() -> None:
    body = response(
        promptFeedback={
            "blockReason": "SAFETY",
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}],
        },
        usageMetadata={"promptTokenCount": 12, "totalTokenCount": 12},
        modelVersion="gemini-2.0-flash",
    )
    completion = WIRE.parse_response(body, TARGET)
    (choice,) = completion.choices
    assert choice.message.content is None
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "content_filter"
    assert completion.usage == Usage.of(12, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "the body is list"),
        (response(candidates={"a": 1}), "response.candidates is dict"),
        (response(candidates=[]), "candidates is missing or empty"),
        (response(modelVersion="m"), "candidates is missing or empty"),
        (response(candidates=["x"]), r"candidates\[0\] is str"),
        (
            response(candidates=[{"content": {"parts": "hi"}}]),
            r"candidates\[0\]\.content\.parts is str",
        ),
        (response(candidates=[{"content": {"parts": [7]}}]), r"parts\[0\] is int"),
        (response(candidates=[{"content": {"parts": [{"text": 7}]}}]), r"parts\[0\]\.text is int"),
        (
            response(candidates=[{"content": {"parts": [{"functionCall": {"args": {}}}]}}]),
            "name is missing",
        ),
        (
            response(
                candidates=[{"content": {"parts": [{"functionCall": {"name": "f", "args": "x"}}]}}]
            ),
            r"functionCall\.args is str",
        ),
        (response(candidates=[{"finishReason": 1}]), "finishReason is int"),
        (
            response(candidates=[{}], usageMetadata={"promptTokenCount": "8"}),
            "promptTokenCount is '8'",
        ),
        (
            response(candidates=[{}], usageMetadata={"thoughtsTokenCount": True}),
            "thoughtsTokenCount is True",
        ),
        (response(candidates=[{}], usageMetadata=[]), "usageMetadata is list"),
        (response(candidates=[{}], responseId=5), "responseId is int"),
        (response(promptFeedback="SAFETY"), "promptFeedback is str"),
    ],
)
def test_malformed_responses(body: bytes, field: str) -> None:
    with pytest.raises(errors.ResponseFormatError, match=field) as info:
        WIRE.parse_response(body, TARGET)
    assert info.value.deployment == "gemini-flash"
    assert "gemini-flash" in str(info.value)


# --------------------------------------------------------------------------- errors


def gemini_error(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}).encode()


MODEL_404 = gemini_error(
    404,
    "NOT_FOUND",
    "models/gemini-x is not found for API version v1beta, or is not supported for generateContent. "
    "Call ListModels to see the list of available models and their supported methods.",
)
RETRY_INFO = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}
        ],
    },
    {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
    },
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"},
]
QUOTA = "You exceeded your current quota, please check your plan and billing details."


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "code", "retry_after"),
    [
        (
            400,
            gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
            {},
            errors.BadRequestError,
            "INVALID_ARGUMENT",
            None,
        ),
        (
            401,
            gemini_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            {},
            errors.AuthenticationError,
            "UNAUTHENTICATED",
            None,
        ),
        (
            403,
            gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
            {},
            errors.PermissionDeniedError,
            "PERMISSION_DENIED",
            None,
        ),
        (404, MODEL_404, {}, errors.ModelNotFoundError, "NOT_FOUND", None),
        (
            404,
            gemini_error(404, "NOT_FOUND", "Requested entity was not found."),
            {},
            errors.NotFoundError,
            "NOT_FOUND",
            None,
        ),
        (404, b"<html>Not Found</html>", {}, errors.NotFoundError, None, None),
        (
            408,
            gemini_error(408, "DEADLINE_EXCEEDED", "Request timed out."),
            {},
            errors.RequestTimeoutError,
            "DEADLINE_EXCEEDED",
            None,
        ),
        (409, gemini_error(409, "ABORTED", "Conflict."), {}, errors.ConflictError, "ABORTED", None),
        (
            413,
            gemini_error(413, "INVALID_ARGUMENT", "Request payload size exceeds the limit."),
            {},
            errors.RequestTooLargeError,
            "INVALID_ARGUMENT",
            None,
        ),
        (
            422,
            gemini_error(422, "INVALID_ARGUMENT", "Unprocessable."),
            {},
            errors.BadRequestError,
            "INVALID_ARGUMENT",
            None,
        ),
        (
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA, RETRY_INFO),
            {},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            38.0,
        ),
        (
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA, RETRY_INFO),
            {"retry-after": "7"},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            7.0,
        ),
        (
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA),
            {"retry-after-ms": "1500", "retry-after": "9"},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            1.5,
        ),
        (
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA, [{"retryDelay": "0.25s"}]),
            {},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            0.25,
        ),
        (
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA, [{"retryDelay": "soon"}]),
            {},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            None,
        ),
        (  # more digits than a float holds: no finite wait, so none
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA, [{"retryDelay": "9" * 400 + "s"}]),
            {},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            None,
        ),
        (
            429,
            gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA),
            {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"},
            errors.RateLimitedError,
            "RESOURCE_EXHAUSTED",
            10.0,
        ),
        (
            500,
            gemini_error(500, "INTERNAL", "An internal error has occurred."),
            {},
            errors.ServerError,
            "INTERNAL",
            None,
        ),
        (502, b"<html><body>Bad Gateway</body></html>", {}, errors.ServerError, None, None),
        (
            503,
            gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            {},
            errors.OverloadedError,
            "UNAVAILABLE",
            None,
        ),
        (
            500,
            gemini_error(500, "INTERNAL", "Model is overloaded"),
            {},
            errors.OverloadedError,
            "INTERNAL",
            None,
        ),
        (
            529,
            b'{"error": {"code": 529, "message": "busy"}}',
            {},
            errors.OverloadedError,
            None,
            None,
        ),
    ],
)
def test_error_mapping(
    status: int,
    body: bytes,
    headers: dict[str, str],
    cls: type[errors.ProviderError],
    code: str | None,
    retry_after: float | None,
) -> None:
    now = 1445412480.0  # 07:28:00 GMT on the date above
    error = WIRE.parse_error(status, httpx.Headers(headers), body, TARGET, now=now)
    assert type(error) is cls
    assert error.status == status
    assert error.code == code
    assert error.retry_after == retry_after
    assert error.deployment == "gemini-flash"
    assert error.request_id is None
    assert str(status) in str(error)


def test_error_message_request_id_and_array_body() -> None:
    body = b"[" + MODEL_404 + b"]"  # the shape the streaming endpoint can answer with
    headers = httpx.Headers({"x-request-id": "req-123"})
    error = WIRE.parse_error(404, headers, body, TARGET, now=0.0)
    assert isinstance(error, errors.ModelNotFoundError)
    assert error.request_id == "req-123"
    assert "models/gemini-x is not found" in str(error)
    assert "req-123" in str(error)


def test_non_json_error_body_is_described() -> None:
    error = WIRE.parse_error(502, httpx.Headers(), b"<html>oops</html>", TARGET, now=0.0)
    assert "not a Gemini error (17 bytes)" in str(error)
    assert error.body == "<html>oops</html>"


# --------------------------------------------------------------------------- streams


def sse(*events: Mapping[str, Any] | str) -> bytes:
    """Gemini's framing: one ``data:`` line per event, events ended by CRLF CRLF."""
    return b"".join(
        b"data: " + (e if isinstance(e, str) else json.dumps(e)).encode() + b"\r\n\r\n"
        for e in events
    )


def event(
    *parts: Mapping[str, Any],
    finish: str | None = None,
    usage: Mapping[str, Any] | None = None,
    rid: str = "Rz3KaKq1Ee2Oz7IP",
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    payload: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash",
        "responseId": rid,
    }
    if usage is not None:
        payload["usageMetadata"] = usage
    return payload


TEXT_STREAM_LAST = event(
    {"text": " is blue."},
    finish="STOP",
    usage={
        "promptTokenCount": 9,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 32,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 46,
    },
)
TEXT_STREAM = sse(
    event(
        {"text": "Thinking it over", "thought": True},
        usage={"promptTokenCount": 9, "totalTokenCount": 9},
    ),
    event({"text": "The sky"}, usage={"promptTokenCount": 9, "totalTokenCount": 9}),
    TEXT_STREAM_LAST,
)
FINAL_USAGE = Usage.of(9, 37, cached_tokens=4, reasoning_tokens=32)


def chunk(
    delta: ChoiceDelta | None = None,
    finish: Any = None,
    usage: Usage | None = None,
    rid: str = "Rz3KaKq1Ee2Oz7IP",
) -> ChatCompletionChunk:
    choices = () if delta is None else (ChunkChoice(index=0, delta=delta, finish_reason=finish),)
    return ChatCompletionChunk(
        id=rid, created=0, model="gemini-2.5-flash", choices=choices, usage=usage
    )


TEXT_CHUNKS = [
    chunk(ChoiceDelta(role="assistant", content="")),
    chunk(ChoiceDelta(reasoning_content="Thinking it over")),  # a thought: reasoning, not content
    chunk(ChoiceDelta(content="The sky")),
    chunk(ChoiceDelta(content=" is blue.")),
    chunk(ChoiceDelta(), "stop"),
    chunk(usage=FINAL_USAGE),
]


def decode(data: bytes, pieces: list[bytes] | None = None) -> list[ChatCompletionChunk]:
    decoder = WIRE.stream_decoder(TARGET)
    chunks: list[ChatCompletionChunk] = []
    for piece in pieces if pieces is not None else [data]:
        chunks.extend(decoder.feed(piece))
    chunks.extend(decoder.close())
    return chunks


def test_text_stream() -> None:
    decoder = WIRE.stream_decoder(TARGET)
    assert not decoder.done
    assert decoder.usage is None
    chunks = decoder.feed(TEXT_STREAM)
    assert decoder.done
    assert decoder.usage == FINAL_USAGE
    assert chunks + decoder.close() == TEXT_CHUNKS


def test_stream_byte_by_byte_gives_the_same_chunks() -> None:
    assert (
        decode(TEXT_STREAM, [TEXT_STREAM[i : i + 1] for i in range(len(TEXT_STREAM))])
        == TEXT_CHUNKS
    )


TOOL_STREAM = sse(
    event({"text": "Let me look."}),
    event(
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "Cs0B",
        },
        {"functionCall": {"id": "fc-1", "name": "get_time"}},
    ),
    event({"functionCall": {"name": "get_news", "args": {"q": "rain"}}}, finish="STOP"),
    {
        "usageMetadata": {
            "promptTokenCount": 30,
            "candidatesTokenCount": 12,
            "totalTokenCount": 42,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "Rz3KaKq1Ee2Oz7IP",
    },
)


def tool_delta(index: int, call_id: str, name: str, arguments: str) -> ChoiceDeltaToolCall:
    return ChoiceDeltaToolCall(
        index=index,
        id=call_id,
        type="function",
        function=ChoiceDeltaToolCallFunction(name=name, arguments=arguments),
    )


def test_tool_call_stream_with_usage_after_the_finish() -> None:
    assert decode(TOOL_STREAM) == [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content="Let me look.")),
        chunk(
            ChoiceDelta(
                tool_calls=(
                    tool_delta(0, "call_0", "get_weather", '{"city": "Paris"}'),
                    tool_delta(1, "fc-1", "get_time", "{}"),
                )
            )
        ),
        chunk(ChoiceDelta(tool_calls=(tool_delta(2, "call_2", "get_news", '{"q": "rain"}'),))),
        chunk(ChoiceDelta(), "tool_calls"),
        chunk(usage=Usage.of(30, 12)),
    ]


@given(
    st.lists(st.integers(min_value=0, max_value=len(TOOL_STREAM) + len(TEXT_STREAM)), max_size=30)
)
def test_stream_in_random_splits_gives_the_same_chunks(cuts: list[int]) -> None:
    for data in (TEXT_STREAM, TOOL_STREAM):
        points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        pieces = [data[a:b] for a, b in itertools.pairwise(points)]
        assert decode(data, pieces) == decode(data)


def test_final_usage_waits_for_close_when_the_finish_event_has_none() -> None:
    data = sse(
        event({"text": "Hi"}, usage={"promptTokenCount": 3, "totalTokenCount": 3}),
        event(finish="STOP"),
    )
    decoder = WIRE.stream_decoder(TARGET)
    chunks = decoder.feed(data)
    assert decoder.done
    assert chunks[-1] == chunk(ChoiceDelta(), "stop")
    assert decoder.close() == [chunk(usage=Usage.of(3, 0))]


def test_stream_without_any_usage_ends_without_a_usage_chunk() -> None:
    chunks = decode(sse(event({"text": "Hi"}, finish="MAX_TOKENS")))
    assert chunks[-1] == chunk(ChoiceDelta(), "length")


def test_blocked_prompt_stream() -> None:
    data = sse(
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r",
        }
    )
    assert decode(data) == [
        chunk(ChoiceDelta(role="assistant", content=""), rid="r"),
        chunk(ChoiceDelta(), "content_filter", rid="r"),
        chunk(usage=Usage.of(7, 0), rid="r"),
    ]


def test_usage_chunk_is_sent_once_and_later_empty_events_are_ignored() -> None:
    later = {
        "candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 100, "totalTokenCount": 100},
    }
    chunks = decode(TEXT_STREAM + sse(later))
    assert chunks == TEXT_CHUNKS


@pytest.mark.parametrize("cut", [0, 40, -len(sse(TEXT_STREAM_LAST)), -30, -2])
def test_truncated_stream_raises_on_close(cut: int) -> None:
    # -2 leaves the last event without its blank line: an SSE event is not complete without it.
    decoder = WIRE.stream_decoder(TARGET)
    decoder.feed(TEXT_STREAM[:cut])
    assert not decoder.done
    with pytest.raises(errors.ResponseFormatError, match="truncated") as info:
        decoder.close()
    assert info.value.deployment == "gemini-flash"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"data: {not json\r\n\r\n", "not a JSON object"),
        (b"data: [1, 2]\r\n\r\n", "not a JSON object"),
        (b"data: <html>\r\n\r\n", "not a JSON object"),
        (b"data: \xff\xfe\r\n\r\n", "UTF-8"),
        (sse({"candidates": "x"}), "event.candidates is str"),
        (sse(event({"text": 1})), r"parts\[0\]\.text is int"),
        (sse(event({"text": "a"}, usage={"promptTokenCount": "9"})), "promptTokenCount"),
        (TEXT_STREAM + sse(event({"text": "more"})), "after the finishReason"),
    ],
)
def test_garbage_in_a_stream(data: bytes, match: str) -> None:
    with pytest.raises(errors.ResponseFormatError, match=match) as info:
        decode(data)
    assert info.value.deployment == "gemini-flash"


@pytest.mark.parametrize(
    ("error", "cls", "status", "retry_after"),
    [
        (
            {"code": 429, "message": QUOTA, "status": "RESOURCE_EXHAUSTED", "details": RETRY_INFO},
            errors.RateLimitedError,
            429,
            38.0,
        ),
        (
            {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"},
            errors.OverloadedError,
            503,
            None,
        ),
        (
            {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"},
            errors.ServerError,
            500,
            None,
        ),
        ({"message": "no code"}, errors.ServerError, 500, None),
        ({"code": 200, "message": "odd"}, errors.ServerError, 500, None),
    ],
)
def test_error_event_mid_stream(
    error: dict[str, Any], cls: type[errors.ProviderError], status: int, retry_after: float | None
) -> None:
    decoder = WIRE.stream_decoder(TARGET)
    assert len(decoder.feed(sse(event({"text": "The sky"})))) == 2
    with pytest.raises(cls) as info:
        decoder.feed(sse({"error": error}))
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.retry_after == retry_after
    assert info.value.deployment == "gemini-flash"


# --------------------------------------------------------------------------- secrets


def test_api_key_never_appears_in_reprs_or_messages() -> None:
    plain_key = "plain-secret-key-without-a-known-shape"
    raised: list[BaseException] = []
    for key in (KEY, plain_key):
        target = Target(
            deployment="d", provider="p", kind="gemini", base_url="http://x", model="m", api_key=key
        )
        assert key not in repr(target)
        echo = gemini_error(
            400, "INVALID_ARGUMENT", f"API key not valid: {key}. Please pass a valid API key."
        )
        raised.append(WIRE.parse_error(400, httpx.Headers(), echo, target, now=0.0))
        for bad in (
            chat(user="x"),
            chat(
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://a/b.png"}}],
                }
            ),
        ):
            with pytest.raises(errors.InvalidRequestError) as info:
                WIRE.build_request(bad, target)
            raised.append(info.value)
        with pytest.raises(errors.ResponseFormatError) as fmt:
            WIRE.parse_response(b"{}", target)
        raised.append(fmt.value)
        decoder = WIRE.stream_decoder(target)
        with pytest.raises(errors.ProviderError) as stream_error:
            decoder.feed(sse({"error": {"code": 400, "message": f"bad key {key}"}}))
        raised.append(stream_error.value)
        for error in raised:
            assert key not in str(error)
            assert key not in repr(error)
            assert key not in getattr(error, "body", "")
    assert "[redacted]" in str(raised[0])


def test_an_invalid_api_key_is_an_authentication_error() -> None:
    from guardedllm.errors import AuthenticationError

    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    target = Target(
        deployment="flash",
        provider="gemini",
        kind="gemini",
        base_url="https://generativelanguage.googleapis.com",
        model="gemini-2.0-flash",
        api_key="AIzaSyD-not-a-real-key-0123456789",
    )
    error = GeminiWire().parse_error(
        400, httpx.Headers(), json.dumps(body).encode(), target, now=0.0
    )
    assert isinstance(error, AuthenticationError)
    assert error.status == 400
    assert error.code == "INVALID_ARGUMENT"


def test_an_input_token_count_400_is_a_context_window_error() -> None:
    body = json.dumps(
        {
            "error": {
                "code": 400,
                "message": "The input token count (1200000) exceeds the maximum number of "
                "tokens allowed (1048576).",
                "status": "INVALID_ARGUMENT",
            }
        }
    ).encode()
    error = WIRE.parse_error(400, httpx.Headers(), body, TARGET, now=0.0)
    assert type(error) is errors.ContextLengthExceededError
    assert isinstance(error, errors.ContextWindowExceededError)
