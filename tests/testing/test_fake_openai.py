"""The official openai SDK (OpenAI and AzureOpenAI) against FakeProvider, over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from guardedllm.testing import FakeProvider

USER: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(fake_provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=fake_provider.openai_base_url, api_key="sk-test", max_retries=0
    ) as c:
        yield c


@pytest.fixture
def azure(fake_provider: FakeProvider) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=fake_provider.azure_base_url,
        api_version="2024-10-21",
        api_key="az-key",
        max_retries=0,
    ) as c:
        yield c


def test_completion_is_parsed_by_the_sdk(
    client: openai.OpenAI, fake_provider: FakeProvider
) -> None:
    resp = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert resp.headers["x-request-id"].startswith("req_")
    completion = resp.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.content == "Fake reply from gpt-4o-mini: What is the capital of France?"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    recorded = fake_provider.requests[0]
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.vendor == "openai"
    assert recorded.model == "gpt-4o-mini"
    assert recorded.json["messages"] == USER
    assert not recorded.stream


def test_max_tokens_cuts_the_reply_with_finish_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="m", messages=USER, max_tokens=2)
    assert completion.choices[0].message.content == "Fake reply"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


def test_stream_with_usage_ends_with_a_choiceless_usage_chunk(
    client: openai.OpenAI, fake_provider: FakeProvider
) -> None:
    fake_provider.script(content="one two three four five", chunks=5)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])
    assert fake_provider.requests[0].stream


def test_raw_stream_is_sse_ending_in_done(fake_provider: FakeProvider) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    with httpx.stream("POST", fake_provider.openai_base_url + "/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(e[6:]) for e in events[:-1])


def test_tool_calls_non_streaming(client: openai.OpenAI, fake_provider: FakeProvider) -> None:
    fake_provider.script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    completion = client.chat.completions.create(model="m", messages=USER, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_calls_streaming_accumulate(
    client: openai.OpenAI, fake_provider: FakeProvider
) -> None:
    fake_provider.script(
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
        ]
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(model="m", messages=USER, tools=TOOLS, stream=True):
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta_call.index, {"name": "", "arguments": ""})
            if delta_call.function and delta_call.function.name:
                entry["name"] = delta_call.function.name
            if delta_call.function and delta_call.function.arguments:
                entry["arguments"] += delta_call.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [json.loads(c["arguments"]) for c in calls.values()] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]


def test_unknown_model_is_the_sdks_not_found_with_model_not_found() -> None:
    with (
        FakeProvider(models={"gpt-4o-mini"}) as fake,
        openai.OpenAI(base_url=fake.openai_base_url, api_key="x", max_retries=0) as client,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-5-typo", messages=USER)
    assert caught.value.code == "model_not_found"
    assert "gpt-5-typo" in caught.value.message


def test_rate_limit_carries_retry_after(client: openai.OpenAI, fake_provider: FakeProvider) -> None:
    fake_provider.script(times=1, status=429, retry_after=7, retry_after_ms=7000)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["retry-after-ms"] == "7000"
    assert caught.value.code == "rate_limit_exceeded"
    # The rule is used up: the next call succeeds.
    assert client.chat.completions.create(model="m", messages=USER).choices


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_statuses_map_to_the_sdks_classes(
    client: openai.OpenAI, fake_provider: FakeProvider, status: int, error: type[Exception]
) -> None:
    fake_provider.script(status=status, error_message="scripted failure", error_code="c1")
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="m", messages=USER)
    body = caught.value.body  # type: ignore[attr-defined]
    assert body == {
        "message": "scripted failure",
        "type": body["type"],
        "param": None,
        "code": "c1",
    }


def test_required_key_is_checked_as_openai_does() -> None:
    with FakeProvider(require_api_key="sk-right") as fake:
        with (
            openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-wrong", max_retries=0) as c,
            pytest.raises(openai.AuthenticationError) as caught,
        ):
            c.chat.completions.create(model="m", messages=USER)
        assert caught.value.code == "invalid_api_key"
        assert "sk-wrong" not in str(caught.value.body)
        missing = httpx.post(fake.openai_base_url + "/chat/completions", json={})
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "invalid_request_error"
        with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-right", max_retries=0) as c:
            assert c.chat.completions.create(model="m", messages=USER).choices


def test_malformed_json_is_a_400_in_openai_shape(fake_provider: FakeProvider) -> None:
    resp = httpx.post(
        fake_provider.openai_base_url + "/chat/completions",
        content=b'{"model": "m", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert fake_provider.requests[0].json is None
    assert fake_provider.requests[0].body == b'{"model": "m", "messages": ['


def test_missing_messages_is_a_400_naming_the_parameter(fake_provider: FakeProvider) -> None:
    resp = httpx.post(fake_provider.openai_base_url + "/chat/completions", json={"model": "m"})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "messages"


# ---------------------------------------------------------------------------- Azure


def test_azure_deployment_is_the_model(
    azure: openai.AzureOpenAI, fake_provider: FakeProvider
) -> None:
    completion = azure.chat.completions.create(model="my-deployment", messages=USER)
    assert completion.model == "my-deployment"
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Fake reply from my-deployment")
    recorded = fake_provider.requests[0]
    assert recorded.vendor == "azure"
    assert recorded.path == "/openai/deployments/my-deployment/chat/completions"
    assert recorded.query["api-version"] == "2024-10-21"
    assert recorded.headers["api-key"] == "az-key"


def test_azure_stream_opens_with_prompt_filter_results(
    azure: openai.AzureOpenAI, fake_provider: FakeProvider
) -> None:
    chunks = list(
        azure.chat.completions.create(
            model="dep", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices == []
    assert chunks[0].model_extra is not None
    assert "prompt_filter_results" in chunks[0].model_extra
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Fake reply from dep")
    assert chunks[-1].usage is not None


def test_azure_unknown_deployment_and_missing_api_version() -> None:
    with (
        FakeProvider(models={"dep"}) as fake,
        openai.AzureOpenAI(
            azure_endpoint=fake.azure_base_url, api_version="2024-10-21", api_key="k", max_retries=0
        ) as azure,
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            azure.chat.completions.create(model="other", messages=USER)
        assert caught.value.code == "DeploymentNotFound"
        resp = httpx.post(
            fake.azure_base_url + "/openai/deployments/dep/chat/completions",
            json={"messages": USER},
        )
        assert resp.status_code == 404
        assert resp.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_azure_rate_limit_shape(azure: openai.AzureOpenAI, fake_provider: FakeProvider) -> None:
    fake_provider.script(vendor="azure", status=429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as caught:
        azure.chat.completions.create(model="dep", messages=USER)
    assert caught.value.code == "429"
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.response.headers["apim-request-id"]
