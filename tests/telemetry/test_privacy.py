"""What telemetry never records (API keys; message content unless asked) and what it records
when asked (the conventions' content event)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from guardedllm.errors import AuthenticationError, ConnectError, ServerError
from guardedllm.telemetry import AttemptSpan, CallSpan
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    Function,
    ToolCall,
    Usage,
)

from ._recording import Recorded, chat_request, chunks, completion

KEY = "sk-proj-SECRETKEY0123456789abcdef"
MESSAGE = "Where is my parcel?"
ANSWER = "It ships today."


def every_string(recorded: Recorded) -> Iterator[str]:
    """Every name and value telemetry exported: span names, attributes, events, statuses, and
    metric attributes."""
    for span in recorded.spans():
        yield span.name
        yield span.status.description or ""
        yield from _strings(span.attributes)
        for event in span.events:
            yield event.name
            yield from _strings(event.attributes)
    for metric in recorded.metrics().values():
        for point in metric.data.data_points:
            yield from _strings(point.attributes)


def _strings(attributes: object) -> Iterator[str]:
    for key, value in dict(attributes or {}).items():  # type: ignore[call-overload]
        yield str(key)
        yield str(value)


def run_every_kind_of_call(recorded: Recorded) -> None:
    """Calls whose errors, URLs and headers carry the key: a failure quoting it, a retry, a
    fallback to a URL holding it, a completed stream and a failed call."""
    telemetry = recorded.telemetry
    request = chat_request(
        messages=({"role": "user", "content": MESSAGE},),
        extra_headers={"authorization": f"Bearer {KEY}", "x-api-key": KEY},
    )
    call = telemetry.start_call(requested="support", request=request, now=0.0)
    attempt = _attempt(call, "https://api.openai.com/v1", number=1)
    attempt.end_error(
        AuthenticationError(f"401 from openai: Incorrect API key provided: {KEY}", status=401),
        status=401,
    )
    attempt = _attempt(call, f"https://user:{KEY}@proxy.example.com:8443/v1?key={KEY}", number=1)
    attempt.end_error(ConnectError(f"could not connect (https://x/?key={KEY} Bearer {KEY})"))
    attempt = _attempt(call, "https://api.openai.com/v1", number=2, reason="ConnectError")
    attempt.end_ok(completion(ANSWER), status=200, cost_usd=0.001)
    call.end_ok()

    call = telemetry.start_call(requested="support", request=request, now=0.0)
    attempt = _attempt(call, "https://api.openai.com/v1", number=1)
    attempt.first_chunk()
    attempt.end_stream(chunks(ANSWER), usage=Usage.of(5, 4))
    call.end_ok()

    call = telemetry.start_call(requested="support", request=request, now=0.0)
    attempt = _attempt(call, "https://api.openai.com/v1", number=1)
    attempt.end_error(ServerError(f"echoed header Authorization: Bearer {KEY}", status=500))
    call.end_error(ServerError(f"last error: {KEY}", status=500))


def _attempt(call: CallSpan, url: str, *, number: int, reason: str | None = None) -> AttemptSpan:
    return call.start_attempt(
        deployment="gpt-4o-mini",
        provider_kind="openai-compatible",
        provider_name="gateway",
        vendor_model="gpt-4o-mini-2024-07-18",
        server_url=url,
        number=number,
        reason=reason,
    )


def test_no_api_key_reaches_any_span_event_or_metric(recorded_content: Recorded) -> None:
    run_every_kind_of_call(recorded_content)
    exported = list(every_string(recorded_content))
    assert len(recorded_content.spans()) == 8
    assert any(MESSAGE in text for text in exported)  # content was on: the scan saw messages
    assert any("Incorrect API key provided" in text for text in exported)  # and errors
    leaks = [text for text in exported if "SECRETKEY" in text]
    assert leaks == []


def test_the_server_address_is_the_host_alone(recorded: Recorded) -> None:
    call = recorded.telemetry.start_call(requested="support", request=chat_request())
    _attempt(call, f"https://user:{KEY}@proxy.example.com:8443/v1?key={KEY}", number=1).end_ok(
        completion(), status=200
    )
    call.end_ok()
    attributes = recorded.span("chat gpt-4o-mini-2024-07-18").attributes or {}
    assert (attributes["server.address"], attributes["server.port"]) == ("proxy.example.com", 8443)
    assert attributes["gen_ai.provider.name"] == "openai-compatible"


def test_content_is_not_recorded_by_default(recorded: Recorded) -> None:
    run_every_kind_of_call(recorded)
    exported = list(every_string(recorded))
    assert not any(MESSAGE in text or ANSWER in text for text in exported)
    assert not any(
        event.name == "gen_ai.client.inference.operation.details"
        for span in recorded.spans()
        for event in span.events
    )


def content_event(span: ReadableSpan) -> dict[str, object]:
    found = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
    assert len(found) == 1
    return dict(found[0].attributes or {})


def test_content_is_one_conventions_event_on_the_call_span(recorded_content: Recorded) -> None:
    request = chat_request(
        messages=(
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "parcel"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "in transit"},
        )
    )
    call = recorded_content.telemetry.start_call(requested="support", request=request)
    attempt = _attempt(call, "https://api.openai.com/v1", number=1)
    answer = ChatCompletion(
        id="c",
        created=1,
        model="m",
        choices=(
            Choice(
                index=0,
                message=ChatCompletionMessage(
                    content=None,
                    tool_calls=(
                        ToolCall(id="call_2", function=Function(name="track", arguments="{bad")),
                    ),
                ),
                finish_reason="tool_calls",
            ),
        ),
        usage=None,
    )
    attempt.end_ok(answer, status=200)
    call.end_ok()

    call_span = recorded_content.span("chat support")
    details = content_event(call_span)
    assert details["gen_ai.operation.name"] == "chat"
    assert details["gen_ai.request.model"] == "support"
    assert json.loads(str(details["gen_ai.input.messages"])) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in this picture?"},
                {"type": "image", "modality": "image"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "lookup",
                    "arguments": {"q": "parcel"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "in transit"}],
        },
    ]
    assert json.loads(str(details["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_2", "name": "track", "arguments": "{bad"}],
            "finish_reason": "tool_calls",
        }
    ]
    assert "AAAA" not in str(details)  # image bytes never reach a span
    assert not any(
        e.name.startswith("gen_ai.client")
        for s in recorded_content.spans()
        if s is not call_span
        for e in s.events
    )


def test_a_streamed_answer_is_reassembled_from_its_deltas(recorded_content: Recorded) -> None:
    call = recorded_content.telemetry.start_call(
        requested="support", request=chat_request(stream=True)
    )
    attempt = _attempt(call, "https://api.openai.com/v1", number=1)
    streamed = [
        *chunks("Let me ", "check.", finish="tool_calls")[:-1],
        ChatCompletionChunk(
            id="s",
            created=1,
            model="m",
            choices=(
                ChunkChoice(
                    index=0,
                    delta=ChoiceDelta(
                        tool_calls=(
                            ChoiceDeltaToolCall(
                                index=0,
                                id="call_9",
                                function=ChoiceDeltaToolCallFunction(
                                    name="track", arguments='{"id"'
                                ),
                            ),
                        )
                    ),
                ),
            ),
        ),
        ChatCompletionChunk(
            id="s",
            created=1,
            model="m",
            choices=(
                ChunkChoice(
                    index=0,
                    delta=ChoiceDelta(
                        tool_calls=(
                            ChoiceDeltaToolCall(
                                index=0, function=ChoiceDeltaToolCallFunction(arguments=": 7}")
                            ),
                        )
                    ),
                ),
            ),
        ),
    ]
    attempt.first_chunk()
    attempt.end_stream(streamed, usage=None)
    call.end_ok()
    details = content_event(recorded_content.span("chat support"))
    assert json.loads(str(details["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {"type": "tool_call", "id": "call_9", "name": "track", "arguments": {"id": 7}},
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_a_failed_call_records_its_input_only(recorded_content: Recorded) -> None:
    call = recorded_content.telemetry.start_call(requested="support", request=chat_request())
    call.end_error(RuntimeError("refused"))
    details = content_event(recorded_content.span("chat support"))
    assert MESSAGE in str(details["gen_ai.input.messages"])
    assert "gen_ai.output.messages" not in details


def test_an_unknown_message_shape_loses_the_content_not_the_call(
    recorded_content: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    request = chat_request(messages=({"role": "assistant", "tool_calls": ["not a mapping"]},))
    call = recorded_content.telemetry.start_call(requested="support", request=request)
    with caplog.at_level(logging.WARNING, logger="guardedllm.telemetry"):
        call.end_ok()
    call_span = recorded_content.span("chat support")
    assert call_span.end_time is not None
    assert [e.name for e in call_span.events] == []
    assert "could not record the content" in caplog.text
