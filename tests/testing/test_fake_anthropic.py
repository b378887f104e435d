"""The official anthropic SDK against FakeProvider, over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from guardedllm.testing import FakeProvider

USER: list[Any] = [{"role": "user", "content": "Tell me a joke"}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
HEADERS = {"anthropic-version": "2023-06-01"}


@pytest.fixture
def client(fake_provider: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=fake_provider.anthropic_base_url, api_key="ant-key", max_retries=0
    ) as c:
        yield c


def test_message_is_parsed_by_the_sdk(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude-x", max_tokens=100, system="be brief", messages=USER
    )
    assert raw.headers["request-id"].startswith("req_")
    message = raw.parse()
    assert message.type == "message"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply from claude-x: Tell me a joke"
    assert message.usage.output_tokens == 8
    assert message.usage.input_tokens > 0
    recorded = fake_provider.requests[0]
    sent_key = recorded.headers.get("x-api-key") or recorded.headers["authorization"][7:]
    assert sent_key == "ant-key"
    assert recorded.vendor == "anthropic"
    assert "ant-key" not in repr(recorded)


def test_max_tokens_stops_with_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="c", max_tokens=3, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "Fake reply from"  # type: ignore[union-attr]


def test_stream_helper_builds_the_final_message(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    fake_provider.script(content="alpha beta gamma delta", chunks=4, usage={"cached_tokens": 2})
    with client.messages.stream(model="claude-x", max_tokens=100, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["alpha", " beta", " gamma", " delta"]
    assert final.content[0].text == "alpha beta gamma delta"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    assert final.usage.cache_read_input_tokens == 2
    assert fake_provider.requests[0].stream


def test_raw_stream_event_order(fake_provider: FakeProvider) -> None:
    body = {"model": "c", "max_tokens": 50, "messages": USER, "stream": True}
    url = fake_provider.anthropic_base_url + "/v1/messages"
    with httpx.stream("POST", url, json=body, headers=HEADERS) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    deltas = names.count("content_block_delta")
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert deltas >= 2


def test_tool_use_streaming_and_not(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    fake_provider.script(
        content="Let me check.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    )
    message = client.messages.create(model="c", max_tokens=100, messages=USER, tools=TOOLS)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert tool.type == "tool_use"
    assert tool.input == {"city": "Oslo"}
    assert tool.id.startswith("toolu_")
    with client.messages.stream(model="c", max_tokens=100, messages=USER, tools=TOOLS) as stream:
        final = stream.get_final_message()
    assert final.content[1].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_529_is_the_sdks_overloaded_internal_server_error(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    fake_provider.script(status=529, times=1)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model="c", max_tokens=10, messages=USER)
    assert caught.value.status_code == 529
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_rate_limit_with_retry_after(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    fake_provider.script(status=429, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="c", max_tokens=10, messages=USER)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_unknown_model_and_scripted_not_found() -> None:
    with (
        FakeProvider(models=["claude-a"]) as fake,
        anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0) as c,
    ):
        with pytest.raises(anthropic.NotFoundError) as caught:
            c.messages.create(model="claude-b", max_tokens=10, messages=USER)
        assert caught.value.body["error"] == {  # type: ignore[index]
            "type": "not_found_error",
            "message": "model: claude-b",
        }
        fake.add_model("claude-b")
        assert c.messages.create(model="claude-b", max_tokens=10, messages=USER).content
        fake.script(model="claude-a", not_found=True, times=1)
        with pytest.raises(anthropic.NotFoundError):
            c.messages.create(model="claude-a", max_tokens=10, messages=USER)


def test_required_key_is_checked_as_anthropic_does() -> None:
    with FakeProvider(require_api_key="ant-right") as fake:
        with (
            anthropic.Anthropic(
                base_url=fake.anthropic_base_url, api_key="nope", max_retries=0
            ) as c,
            pytest.raises(anthropic.AuthenticationError) as caught,
        ):
            c.messages.create(model="c", max_tokens=10, messages=USER)
        assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        with anthropic.Anthropic(
            base_url=fake.anthropic_base_url, api_key="ant-right", max_retries=0
        ) as c:
            assert c.messages.create(model="c", max_tokens=10, messages=USER).content


def test_count_tokens(client: anthropic.Anthropic, fake_provider: FakeProvider) -> None:
    counted = client.messages.count_tokens(model="c", messages=USER)
    created = client.messages.create(model="c", max_tokens=10, messages=USER)
    assert counted.input_tokens == created.usage.input_tokens
    assert fake_provider.requests[0].endpoint == "count_tokens"


@pytest.mark.parametrize(
    ("body", "headers", "fragment"),
    [
        ({"model": "c", "messages": USER}, HEADERS, "max_tokens"),
        ({"model": "c", "max_tokens": 5, "messages": USER}, {}, "anthropic-version"),
        (None, HEADERS, "JSON"),
    ],
)
def test_invalid_requests_are_400_invalid_request_error(
    fake_provider: FakeProvider,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    fragment: str,
) -> None:
    url = fake_provider.anthropic_base_url + "/v1/messages"
    content = b"{not json" if body is None else None
    resp = httpx.post(url, json=body, content=content, headers=headers)
    assert resp.status_code == 400
    payload = resp.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]


THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


def test_extended_thinking_is_served_as_the_sdk_reads_it(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    fake_provider.script(reasoning="Jokes need a twist.", content="Why did the chicken...")
    message = client.messages.create(model="c", max_tokens=2000, messages=USER, thinking=THINKING)
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == "Jokes need a twist."
    assert thinking.signature  # opaque, and there to be passed back
    # Thinking is output: 4 tokens of thoughts and 4 of answer, the thoughts also told apart.
    assert message.usage.output_tokens == 8
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 4


def test_extended_thinking_streams_as_the_sdk_reads_it(
    client: anthropic.Anthropic, fake_provider: FakeProvider
) -> None:
    fake_provider.script(reasoning="one two three four", content="Answer.", chunks=2)
    with client.messages.stream(
        model="c", max_tokens=2000, messages=USER, thinking=THINKING
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds.count("thinking") == 2  # the SDK's event for each thinking_delta
    assert kinds.count("signature") == 1
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == "one two three four"
    assert thinking.signature
    assert final.content[1].type == "text"
    assert final.usage.output_tokens == 5
    # A request that does not ask for thinking gets none.
    plain = client.messages.create(model="c", max_tokens=100, messages=USER)
    assert [b.type for b in plain.content] == ["text"]


@pytest.mark.parametrize(
    ("budget", "max_tokens", "says"),
    [(1024, 1024, "must be greater than `thinking.budget_tokens`"), (100, 2000, "1024")],
)
def test_a_thinking_budget_the_api_refuses_is_refused(
    client: anthropic.Anthropic, budget: int, max_tokens: int, says: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="c",
            max_tokens=max_tokens,
            messages=USER,
            thinking={"type": "enabled", "budget_tokens": budget},
        )
    assert says in str(caught.value)
