"""Each scripted fault, observed from a plain httpx client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from guardedllm.testing import FakeProvider

CHAT = {"model": "m", "messages": [{"role": "user", "content": "one two three four five six"}]}
STREAM = {**CHAT, "stream": True}


@pytest.fixture
def http(fake_provider: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_provider.openai_base_url, timeout=5) as client:
        yield client


def _drain(resp: httpx.Response, into: list[bytes]) -> None:
    """Read ``resp`` into ``into`` piece by piece, so what came before an error is kept."""
    for part in resp.iter_bytes():
        into.append(part)


def _data_lines(raw: bytes) -> list[str]:
    return [e[6:] for e in raw.decode().split("\n\n") if e.startswith("data: ")]


def test_hang_never_answers_until_the_client_gives_up(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(hang=True, times=1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=CHAT, timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2
    assert len(fake_provider.requests) == 1  # recorded though never answered
    assert http.post("/chat/completions", json=CHAT).status_code == 200


def test_stop_ends_a_hanging_request_quickly() -> None:
    fake = FakeProvider().start()
    fake.script(hang=True)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(fake.openai_base_url + "/chat/completions", json=CHAT, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    fake.wait_for_requests(1, timeout=5)
    started = time.monotonic()
    fake.stop()
    caller.join(5)
    assert time.monotonic() - started < 2
    assert not caller.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], httpx.RemoteProtocolError)


def test_drop_closes_the_connection_without_an_answer(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(drop=True, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/chat/completions", json=CHAT)
    assert http.post("/chat/completions", json=CHAT).status_code == 200


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_cut_stream_sends_n_pieces_then_drops(
    http: httpx.Client, fake_provider: FakeProvider, cut: int
) -> None:
    fake_provider.script(cut_after_chunks=cut, chunks=4)
    received: list[bytes] = []
    with http.stream("POST", "/chat/completions", json=STREAM) as resp:
        assert resp.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            _drain(resp, received)
    lines = _data_lines(b"".join(received))
    assert "[DONE]" not in lines
    contents = [json.loads(line)["choices"][0]["delta"].get("content") for line in lines]
    assert len([c for c in contents if c]) == cut
    assert all(json.loads(line)["choices"][0]["finish_reason"] is None for line in lines)


def test_cut_beyond_the_reply_still_withholds_the_terminal_events(
    fake_provider: FakeProvider,
) -> None:
    fake_provider.script(cut_after_chunks=50)
    body = {"model": "c", "max_tokens": 50, "messages": CHAT["messages"], "stream": True}
    parts: list[bytes] = []
    url = fake_provider.anthropic_base_url + "/v1/messages"
    headers = {"anthropic-version": "2023-06-01"}
    with httpx.stream("POST", url, json=body, headers=headers) as resp:
        assert resp.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            _drain(resp, parts)
    received = b"".join(parts)
    assert b"content_block_delta" in received
    assert b"message_stop" not in received
    assert b"message_delta" not in received


def test_malformed_chunk_is_a_non_json_data_event_mid_stream(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(malformed_chunk=True, chunks=4)
    with http.stream("POST", "/chat/completions", json=STREAM) as resp:
        lines = _data_lines(resp.read())
    bad = []
    for i, line in enumerate(lines):
        if line == "[DONE]":
            continue
        try:
            json.loads(line)
        except ValueError:
            bad.append(i)
    assert len(bad) == 1
    assert 1 < bad[0] < len(lines) - 2  # after some content, before the end
    assert lines[-1] == "[DONE]"


def test_latency_delays_the_whole_answer(http: httpx.Client, fake_provider: FakeProvider) -> None:
    fake_provider.script(latency=0.3, times=1)
    started = time.monotonic()
    assert http.post("/chat/completions", json=CHAT).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_first_chunk_delay_comes_after_the_headers(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(first_chunk_delay=0.4, chunk_delay=0.05, chunks=3)
    started = time.monotonic()
    with http.stream("POST", "/chat/completions", json=STREAM) as resp:
        headers_at = time.monotonic() - started
        stamps = [time.monotonic() - started for _ in resp.iter_raw()]
    assert headers_at < 0.3
    assert stamps[0] >= 0.4
    assert stamps[-1] - stamps[0] >= 0.05 * 2


def test_first_chunk_delay_on_a_plain_body_trips_a_read_timeout(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(first_chunk_delay=2, times=1)
    with http.stream("POST", "/chat/completions", json=CHAT, timeout=0.3) as resp:
        assert resp.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            resp.read()


def test_raw_body_oversized_and_extra_headers(
    http: httpx.Client, fake_provider: FakeProvider
) -> None:
    fake_provider.script(times=1, body=b'{"id": "chatcmpl-1", "choi', headers={"x-extra": "1"})
    truncated = http.post("/chat/completions", json=CHAT)
    assert truncated.status_code == 200
    assert truncated.content == b'{"id": "chatcmpl-1", "choi'
    assert truncated.headers["x-extra"] == "1"
    fake_provider.script(times=1, oversized=100_000)
    big = http.post("/chat/completions", json=CHAT)
    assert len(big.content) == 100_000
    assert big.json()["object"] == "chat.completion"
    fake_provider.script(times=1, oversized=50_000)
    with http.stream("POST", "/chat/completions", json=STREAM) as resp:
        raw = resp.read()
    assert raw.startswith(b":" + b" " * 50_000)


def test_unknown_paths_answer_404_in_a_vendor_shape(http: httpx.Client) -> None:
    resp = http.post("/nope", json={})
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "Invalid URL (POST /v1/nope)"
    get = http.get("/chat/completions")
    assert get.status_code == 404


def test_scripts_match_by_vendor(fake_provider: FakeProvider) -> None:
    fake_provider.script(vendor="gemini", status=503)
    gemini = httpx.post(
        fake_provider.gemini_base_url + "/v1beta/models/g:generateContent",
        json={"contents": [{"parts": [{"text": "x"}]}]},
    )
    openai_ok = httpx.post(fake_provider.openai_base_url + "/chat/completions", json=CHAT)
    assert gemini.status_code == 503
    assert gemini.json()["error"]["status"] == "UNAVAILABLE"
    assert openai_ok.status_code == 200


def test_scripted_usage_and_finish_reason(http: httpx.Client, fake_provider: FakeProvider) -> None:
    fake_provider.script(
        usage={"prompt_tokens": 100, "completion_tokens": 5, "cached_tokens": 40},
        finish_reason="content_filter",
    )
    body: dict[str, Any] = http.post("/chat/completions", json=CHAT).json()
    assert body["usage"]["prompt_tokens"] == 100
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 40
    assert body["choices"][0]["finish_reason"] == "content_filter"
