"""Gemini's documented JSON shapes, checked with plain httpx (no Gemini SDK is installed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from guardedllm.testing import FakeProvider

CONTENTS = [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}]
TOOLS = [{"functionDeclarations": [{"name": "lookup", "parameters": {"type": "object"}}]}]


@pytest.fixture
def http(fake_provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_provider.gemini_base_url) as client:
        yield client


def _sse_bodies(raw: str) -> list[dict[str, Any]]:
    assert raw.endswith("\r\n\r\n")
    events = [e for e in raw.split("\r\n\r\n") if e]
    assert all(e.startswith("data: ") for e in events)
    return [json.loads(e[6:]) for e in events]


def test_generate_content_shape(http: httpx.Client, fake_provider: FakeProvider) -> None:
    resp = http.post(
        "/v1beta/models/gemini-2.0-flash:generateContent",
        json={"contents": CONTENTS, "systemInstruction": {"parts": [{"text": "Be short."}]}},
        headers={"x-goog-api-key": "g-key"},
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"candidates", "usageMetadata", "modelVersion", "responseId"}
    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"] == [
        {"text": "Fake reply from gemini-2.0-flash: Why is the sky blue?"}
    ]
    assert candidate["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    recorded = fake_provider.requests[0]
    assert (recorded.vendor, recorded.model, recorded.endpoint) == (
        "gemini",
        "gemini-2.0-flash",
        "chat",
    )
    assert recorded.headers["x-goog-api-key"] == "g-key"


def test_max_output_tokens_finishes_with_max_tokens(http: httpx.Client) -> None:
    body = {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": 2}}
    resp = http.post("/v1beta/models/g:generateContent", json=body).json()
    assert resp["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert resp["candidates"][0]["content"]["parts"][0]["text"] == "Fake reply"
    assert resp["usageMetadata"]["candidatesTokenCount"] == 2


def test_sse_stream_has_no_sentinel_and_ends_with_finish_and_usage(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(content="a b c d", chunks=2)
    url = "/v1beta/models/g:streamGenerateContent"
    with http.stream("POST", url, params={"alt": "sse"}, json={"contents": CONTENTS}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        bodies = _sse_bodies(resp.read().decode())
    texts = [b["candidates"][0]["content"]["parts"][0]["text"] for b in bodies]
    assert texts == ["a b", " c d", ""]
    assert all("finishReason" not in b["candidates"][0] for b in bodies[:-1])
    assert bodies[-1]["candidates"][0]["finishReason"] == "STOP"
    assert bodies[-1]["usageMetadata"]["candidatesTokenCount"] == 4
    assert fake_provider.requests[0].stream


def test_stream_without_alt_sse_is_one_json_array(http: httpx.Client) -> None:
    resp = http.post("/v1beta/models/g:streamGenerateContent", json={"contents": CONTENTS})
    items = resp.json()
    assert isinstance(items, list)
    assert len(items) >= 2
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"


def test_function_calls(http: httpx.Client, fake_provider: FakeProvider) -> None:
    fake_provider.script(tool_calls=[{"name": "lookup", "arguments": {"q": "sky"}}])
    body = {"contents": CONTENTS, "tools": TOOLS}
    resp = http.post("/v1beta/models/g:generateContent", json=body).json()
    assert resp["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "lookup", "args": {"q": "sky"}}}
    ]
    url = "/v1beta/models/g:streamGenerateContent?alt=sse"
    with http.stream("POST", url, json=body) as stream:
        bodies = _sse_bodies(stream.read().decode())
    parts = [p for b in bodies for p in b["candidates"][0]["content"]["parts"]]
    assert {"functionCall": {"name": "lookup", "args": {"q": "sky"}}} in parts


def test_count_tokens_matches_the_prompt_count(http: httpx.Client) -> None:
    counted = http.post("/v1beta/models/g:countTokens", json={"contents": CONTENTS}).json()
    nested = http.post(
        "/v1beta/models/g:countTokens",
        json={"generateContentRequest": {"model": "models/g", "contents": CONTENTS}},
    ).json()
    generated = http.post("/v1beta/models/g:generateContent", json={"contents": CONTENTS}).json()
    assert counted["totalTokens"] == generated["usageMetadata"]["promptTokenCount"]
    assert nested["totalTokens"] == counted["totalTokens"]


def test_errors_use_the_google_rpc_shape() -> None:
    with FakeProvider(models={"gemini-ok"}) as fake, httpx.Client(base_url=fake.base_url) as http:
        missing = http.post(
            "/v1beta/models/gemini-typo:generateContent", json={"contents": CONTENTS}
        )
        assert missing.status_code == 404
        error = missing.json()["error"]
        assert error["code"] == 404
        assert error["status"] == "NOT_FOUND"
        assert "models/gemini-typo is not found" in error["message"]
        fake.script(status=429, retry_after=5)
        limited = http.post("/v1beta/models/gemini-ok:generateContent", json={"contents": CONTENTS})
        assert limited.status_code == 429
        assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert limited.headers["retry-after"] == "5"


def test_malformed_and_invalid_requests_are_invalid_argument(http: httpx.Client) -> None:
    bad = http.post("/v1beta/models/g:generateContent", content=b"{")
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    empty = http.post("/v1beta/models/g:generateContent", json={})
    assert empty.status_code == 400
    assert "contents" in empty.json()["error"]["message"]


def test_keys_are_checked_as_gemini_does() -> None:
    with (
        FakeProvider(require_api_key="g-right") as fake,
        httpx.Client(base_url=fake.gemini_base_url) as http,
    ):
        url = "/v1beta/models/g:generateContent"
        missing = http.post(url, json={"contents": CONTENTS})
        assert missing.status_code == 403
        assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
        wrong = http.post(url, json={"contents": CONTENTS}, headers={"x-goog-api-key": "bad"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        by_header = http.post(
            url, json={"contents": CONTENTS}, headers={"x-goog-api-key": "g-right"}
        )
        by_query = http.post(url, params={"key": "g-right"}, json={"contents": CONTENTS})
        assert (by_header.status_code, by_query.status_code) == (200, 200)
        assert "g-right" not in repr(fake.requests[-1])


def test_v1_paths_are_served_too(http: httpx.Client) -> None:
    resp = http.post("/v1/models/g:generateContent", json={"contents": CONTENTS})
    assert resp.status_code == 200


def test_thoughts_are_served_when_asked_for(http: httpx.Client) -> None:
    thinking = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 512}}
    body = {"contents": CONTENTS, "generationConfig": thinking}
    answer = http.post("/v1beta/models/g:generateContent", json=body).json()
    parts = answer["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "Fake thoughts of g: Why is the sky blue?", "thought": True},
        {"text": "Fake reply from g: Why is the sky blue?"},
    ]
    usage = answer["usageMetadata"]
    assert (usage["thoughtsTokenCount"], usage["candidatesTokenCount"]) == (9, 9)  # words
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 18
    raw = http.post("/v1beta/models/g:streamGenerateContent?alt=sse", json=body).text
    events = _sse_bodies(raw)
    streamed = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    thoughts = "".join(p["text"] for p in streamed if p.get("thought"))
    assert thoughts == "Fake thoughts of g: Why is the sky blue?"
    assert streamed[0].get("thought") is True  # thoughts come first
    assert events[-1]["usageMetadata"]["thoughtsTokenCount"] == 9
    # Without includeThoughts, no thought parts.
    plain = http.post("/v1beta/models/g:generateContent", json={"contents": CONTENTS}).json()
    assert all("thought" not in p for p in plain["candidates"][0]["content"]["parts"])
    assert "thoughtsTokenCount" not in plain["usageMetadata"]
