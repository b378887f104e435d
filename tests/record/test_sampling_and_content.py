"""Which calls are recorded (a sample sticky by the routing key, else a draw from the client's
random source) and what a record may hold: shapes only with content="none", the request body
too with "full", never a key, a header or the caller's user id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardedllm import Client, Policy, Registry
from guardedllm.record import Recorder
from guardedllm.record._build import body_of, params_of
from guardedllm.registry import RecordConfig
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatRequest
from session import open_session
from support import DRIVERS, ENVIRON

PROMPT = "Tell me about the zebra-marmalade-7781 protocol."
MESSAGES = [{"role": "user", "content": PROMPT}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_quokka_ledger",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]
# The key the client reads for OpenAI (support.ENVIRON); the fake accepts any non-empty key.
KEY = "sk-live-DISTINCTIVE-key-5be1e4c0d2a9f7"


def records_in(directory: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_the_sample_is_sticky_by_key_and_near_its_rate() -> None:
    recorder = Recorder(RecordConfig(path="unused", sample=0.25))

    def no_draw() -> float:
        raise AssertionError("a call with a key draws nothing")

    keys = [f"user-{n}" for n in range(4000)]
    kept = [key for key in keys if recorder.samples(key, no_draw)]
    assert 0.25 - 0.03 < len(kept) / len(keys) < 0.25 + 0.03
    assert [key for key in keys if recorder.samples(key, no_draw)] == kept  # every time
    # A larger sample keeps every key a smaller one keeps: raising the rate adds users.
    larger = Recorder(RecordConfig(path="unused", sample=0.5))
    assert all(larger.samples(key, no_draw) for key in kept)


def test_a_call_without_a_key_draws_from_the_random_source() -> None:
    recorder = Recorder(RecordConfig(path="unused", sample=0.3))
    assert recorder.samples(None, lambda: 0.29)
    assert not recorder.samples(None, lambda: 0.3)
    assert recorder.samples(None, lambda: 1.0)  # a source may return 1.0: it wraps to 0
    everything = Recorder(RecordConfig(path="unused", sample=1))
    nothing = Recorder(RecordConfig(path="unused", sample=0))

    def no_draw() -> float:
        raise AssertionError("sample 0 or 1 needs no draw")

    assert everything.samples(None, no_draw)
    assert not nothing.samples("user-1", no_draw)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_users_calls_are_recorded_together(
    driver: str, registry: Registry, tmp_path: Path
) -> None:
    users = 24
    with open_session(
        driver, registry, record=RecordConfig(path=str(tmp_path), sample=0.5)
    ) as session:
        for _ in range(2):
            for n in range(users):  # max_tokens tells the user apart in the record
                session.create(
                    model="chat",
                    messages=MESSAGES,
                    max_tokens=100 + n,
                    policy=Policy(route_key=f"user-{n}"),
                )
        # Without a key the client's random source decides: 0.0 (the session's) is in.
        session.create(model="chat", messages=MESSAGES, max_tokens=1)
    seen: dict[int, int] = {}
    for record in records_in(tmp_path):
        request = record["request"]
        assert isinstance(request, dict)
        seen[request["max_tokens"]] = seen.get(request["max_tokens"], 0) + 1
    assert seen.pop(1) == 1
    assert 0 < len(seen) < users
    assert set(seen.values()) == {2}  # both of a user's calls, or neither


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("content", ["none", "full"])
def test_content_none_keeps_shapes_and_full_the_body_never_a_key(
    driver: str, content: str, registry: Registry, tmp_path: Path
) -> None:
    environ = {**ENVIRON, "TEST_OPENAI_KEY": KEY}
    record = RecordConfig(path=str(tmp_path), content=content)
    with open_session(driver, registry, record=record, environ=environ) as session:
        session.create(
            model="chat",
            messages=MESSAGES,
            tools=TOOLS,
            max_tokens=64,
            user="end-user-4471",
            extra_headers={"X-Request-Tag": "hdr-value-0912"},
        )
        session.create(model="chat", messages=MESSAGES, stream=True)
    text = "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.jsonl"))
    for secret in (KEY, "end-user-4471", "hdr-value-0912", "X-Request-Tag"):
        assert secret not in text
    first, streamed = records_in(tmp_path)
    assert first["request"] == {
        "messages": 1,
        "tokens": first["request"]["tokens"],  # type: ignore[index]
        "exact": {"o200k_base": False},  # tools are counted by an estimate of their layout
        "tools": 1,
        "max_tokens": 64,
        "stream": False,
        "params": {},
    }
    if content == "none":
        assert PROMPT not in text
        assert "lookup_quokka_ledger" not in text
        assert first["body"] is None
        assert streamed["body"] is None
    else:
        assert first["body"] == {
            "model": "chat",
            "messages": MESSAGES,
            "tools": TOOLS,
            "max_tokens": 64,
        }
        assert streamed["body"] == {"model": "chat", "messages": MESSAGES, "stream": True}


def test_the_body_is_taken_when_the_call_ends_not_when_it_is_written(
    registry: Registry, tmp_path: Path
) -> None:
    message = {"role": "user", "content": "first words"}
    with Client(
        registry, environ=ENVIRON, record=RecordConfig(path=str(tmp_path), content="full")
    ) as client:
        client.chat.completions.create(model="chat", messages=[message])
        message["content"] = "changed after the call"  # the caller reuses its dict
    (record,) = records_in(tmp_path)
    assert record["body"] == {
        "model": "chat",
        "messages": [{"role": "user", "content": "first words"}],
    }


def test_parameters_are_recorded_as_shapes_only() -> None:
    request = ChatRequest(
        model="chat",
        messages=({"role": "user", "content": "hi"},),
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=("secret stop word", "another"),
        tool_choice={"type": "function", "function": {"name": "private_fn"}},
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
        extra={
            "presence_penalty": 0.1,
            "logprobs": True,
            "reasoning_effort": "high",
            "metadata": {"customer": "acme"},
            "prediction": "some predicted text the caller wrote",
        },
    )
    assert params_of(request) == {
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 7,
        "stop": 2,
        "tool_choice": "function",
        "response_format": "json_schema",
        "presence_penalty": 0.1,
        "logprobs": True,
        "reasoning_effort": "high",
    }
    body = json.loads(body_of(request))
    assert body["stop"] == ["secret stop word", "another"]
    assert body["metadata"] == {"customer": "acme"}
    assert "user" not in body


def test_a_record_is_one_utf8_line_whatever_the_prompt_holds(
    registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    prompt = 'line one\nline two \u2028 \U0001f600 caf\u00e9 "quoted"'
    with Client(
        registry, environ=ENVIRON, record=RecordConfig(path=str(tmp_path), content="full")
    ) as client:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": prompt}])
    (path,) = tmp_path.glob("*.jsonl")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 2
    assert json.loads(lines[0].decode("utf-8"))["body"]["messages"][0]["content"] == prompt
