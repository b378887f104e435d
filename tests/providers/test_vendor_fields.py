"""Vendor fields (``extra_body``, ``provider_options``) merged into each wire format's body as
they are, the fields the guards count on refused, and thinking passed back in a conversation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guardedllm import errors
from guardedllm.providers.anthropic import AnthropicWire
from guardedllm.providers.base import Target, WireFormat, merge_vendor_fields
from guardedllm.providers.gemini import GeminiWire
from guardedllm.providers.openai import AzureOpenAIWire, OpenAIWire
from guardedllm.types import ChatCompletionMessage, ChatRequest, ThinkingBlock


def target(kind: str, provider: str | None = None) -> Target:
    return Target(
        deployment="d",
        provider=provider or kind,
        kind=kind,
        base_url="https://vendor.example",
        model="m",
        api_key="k",
        api_version="2024-10-21" if kind == "azure-openai" else None,
        max_output_tokens=4096,
    )


WIRES: dict[str, WireFormat] = {
    "openai": OpenAIWire(),
    "openai-compatible": OpenAIWire(max_tokens_field="max_tokens"),
    "azure-openai": AzureOpenAIWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
}
HI = ({"role": "user", "content": "Hi"},)


def body(kind: str, provider: str | None = None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("messages", HI)
    request = ChatRequest(model="chat", **fields)
    sent: dict[str, Any] = json.loads(
        WIRES[kind].build_request(request, target(kind, provider)).content
    )
    return sent


def refusal(kind: str, **fields: Any) -> str:
    fields.setdefault("messages", HI)
    with pytest.raises(errors.InvalidRequestError) as info:
        WIRES[kind].build_request(ChatRequest(model="chat", **fields), target(kind))
    return str(info.value)


# --------------------------------------------------------------------------- the merge


def test_the_merge_is_deep_the_callers_leaves_win_and_the_body_is_not_changed() -> None:
    schema = {"type": "object"}
    built = {"generationConfig": {"maxOutputTokens": 5, "temperature": 0.1, "schema": schema}}
    request = ChatRequest(
        model="chat",
        messages=HI,
        extra_body={
            "generationConfig": {"temperature": 0.9, "thinkingConfig": {"includeThoughts": True}},
            "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}],
        },
    )
    merged = merge_vendor_fields(built, request, target("gemini"), {})
    assert merged == {
        "generationConfig": {
            "maxOutputTokens": 5,
            "temperature": 0.9,
            "schema": {"type": "object"},
            "thinkingConfig": {"includeThoughts": True},
        },
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}],
    }
    assert built == {
        "generationConfig": {"maxOutputTokens": 5, "temperature": 0.1, "schema": schema}
    }


def test_provider_options_come_after_extra_body_the_kind_before_the_provider_name() -> None:
    request = ChatRequest(
        model="chat",
        messages=HI,
        extra_body={"a": 1, "b": 1, "c": 1, "nested": {"x": 1, "y": 1}},
        provider_options={
            "anthropic": {"b": 2, "c": 2, "nested": {"y": 2}},
            "claude-eu": {"c": 3},
            "gemini": {"a": "never"},  # another vendor's options stay with it
        },
    )
    merged = merge_vendor_fields({}, request, target("anthropic", "claude-eu"), {})
    assert merged == {"a": 1, "b": 2, "c": 3, "nested": {"x": 1, "y": 2}}


@pytest.mark.parametrize("kind", sorted(WIRES))
def test_extra_body_reaches_every_vendor_as_it_is(kind: str) -> None:
    sent = body(kind, extra_body={"vendor_flag": True, "options": {"deep": [1, 2]}})
    assert sent["vendor_flag"] is True
    assert sent["options"] == {"deep": [1, 2]}


def test_anthropic_native_fields_go_into_the_body() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    sent = body(
        "anthropic",
        max_tokens=2048,
        user="u-1",
        extra_body={"top_k": 5},
        provider_options={"anthropic": {"thinking": thinking, "metadata": {"user_id": "u-2"}}},
    )
    assert sent["thinking"] == thinking
    assert sent["top_k"] == 5
    assert sent["metadata"] == {"user_id": "u-2"}  # the caller's value wins at the leaf
    assert sent["max_tokens"] == 2048


def test_gemini_native_fields_join_its_generation_config() -> None:
    sent = body(
        "gemini",
        max_tokens=300,
        temperature=0.5,
        provider_options={
            "gemini": {
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 128}},
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
            }
        },
    )
    assert sent["generationConfig"] == {
        "temperature": 0.5,
        "maxOutputTokens": 300,
        "thinkingConfig": {"thinkingBudget": 128},
    }
    assert sent["safetySettings"][0]["threshold"] == "OFF"


def test_the_count_request_carries_the_vendor_fields_too() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    request = ChatRequest(model="chat", messages=HI, extra_body={"thinking": thinking})
    counted = json.loads(AnthropicWire().build_count_request(request, target("anthropic")).content)
    assert counted["thinking"] == thinking


# --------------------------------------------------------------------------- guarded fields


@pytest.mark.parametrize(
    ("kind", "fields", "names", "instead"),
    [
        ("openai", {"max_completion_tokens": 10**6}, "max_completion_tokens", "max_tokens="),
        ("openai", {"model": "gpt-4o"}, "`model`", "create(model=...)"),
        ("openai", {"n": 4}, "`n`", "n=..."),
        ("openai", {"stream": True}, "`stream`", "stream=True"),
        ("openai-compatible", {"max_tokens": 10**6}, "`max_tokens`", "max_tokens="),
        ("azure-openai", {"messages": []}, "`messages`", "messages="),
        ("anthropic", {"max_tokens": 10**6}, "`max_tokens`", "max_tokens="),
        ("anthropic", {"system": "Be evil."}, "`system`", "system messages in messages="),
        ("anthropic", {"model": "claude-opus"}, "`model`", "create(model=...)"),
        ("gemini", {"contents": []}, "`contents`", "messages="),
        (
            "gemini",
            {"generationConfig": {"maxOutputTokens": 10**6}},
            "maxOutputTokens",
            "max_tokens",
        ),
        ("gemini", {"generationConfig": {"candidateCount": 3}}, "candidateCount", "one candidate"),
        (
            "gemini",
            {"generation_config": {"max_output_tokens": 9}},
            "max_output_tokens",
            "max_tokens",
        ),
        # An object put where one holding a guarded field is replaces it whole: refused too.
        ("gemini", {"generationConfig": None}, "generationConfig.maxOutputTokens", "max_tokens"),
        ("openai", {"stream_options": "off"}, "stream_options.include_usage", "stream_options="),
    ],
)
def test_a_field_the_guards_count_on_is_refused_naming_the_argument_to_use(
    kind: str, fields: dict[str, Any], names: str, instead: str
) -> None:
    for where, extra in (
        ("extra_body", {"extra_body": fields}),
        (f"provider_options[{kind!r}]", {"provider_options": {kind: fields}}),
    ):
        message = refusal(kind, **extra)
        assert where in message
        assert names in message
        assert instead in message
        assert "the guards count on" in message


def test_a_field_of_the_answer_the_types_cannot_carry_is_still_refused_for_openai() -> None:
    assert "logprobs" in refusal("openai", extra_body={"logprobs": True})


def test_a_key_that_is_not_a_string_is_refused() -> None:
    assert "not a string" in refusal("gemini", extra_body={"generationConfig": {1: 2}})


def test_a_value_that_is_not_json_is_refused_before_sending() -> None:
    for kind in ("anthropic", "gemini", "openai"):
        assert "not JSON" in refusal(kind, extra_body={"tags": {1, 2}})


# --------------------------------------------------------------------------- thinking budget


def test_an_anthropic_thinking_budget_not_below_max_tokens_is_a_typed_error() -> None:
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    with pytest.raises(errors.ThinkingBudgetError) as info:
        AnthropicWire().build_request(
            ChatRequest(model="chat", messages=HI, max_tokens=2048, extra_body=thinking),
            target("anthropic"),
        )
    assert "budget_tokens`=2048" in str(info.value)
    assert "max_tokens`=2048" in str(info.value)
    assert isinstance(info.value, errors.InvalidRequestError)
    # Without max_tokens, the deployment's max_output_tokens (4096 here) is what is sent.
    big = {"thinking": {"type": "enabled", "budget_tokens": 5000}}
    with pytest.raises(errors.ThinkingBudgetError, match="max_tokens`=4096"):
        AnthropicWire().build_request(
            ChatRequest(model="chat", messages=HI, extra_body=big), target("anthropic")
        )
    assert (
        body("anthropic", max_tokens=2049, extra_body=thinking)["thinking"]["budget_tokens"] == 2048
    )


# --------------------------------------------------------------------------- thinking passed back

SIGNED = ThinkingBlock(type="thinking", thinking="Check the weather tool.", signature="EqQB")
REDACTED = ThinkingBlock(type="redacted_thinking", data="EmwKAhgB")
CALL = {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}


def conversation(assistant: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    return (
        {"role": "user", "content": "Weather?"},
        assistant,
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
    )


def answered() -> dict[str, Any]:
    """An assistant turn as a caller passes it back: the answer's own ``model_dump()``."""
    message = ChatCompletionMessage(
        content=None,
        reasoning_content=SIGNED.thinking,
        thinking_blocks=(SIGNED, REDACTED),
    ).model_dump()
    message["tool_calls"] = [CALL]
    return message


def test_signed_thinking_goes_back_to_anthropic_first_and_unchanged() -> None:
    sent = body("anthropic", messages=conversation(answered()))
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Check the weather tool.", "signature": "EqQB"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        ],
    }


def test_reasoning_text_without_a_signature_is_not_sent_to_anthropic() -> None:
    assistant = {"role": "assistant", "content": "Sunny.", "reasoning_content": "unsigned"}
    sent = body("anthropic", messages=(*HI, assistant, {"role": "user", "content": "Thanks"}))
    assert sent["messages"][1] == {"role": "assistant", "content": "Sunny."}


def test_a_thinking_block_not_as_the_answer_gave_it_is_refused() -> None:
    assistant = {
        **answered(),
        "thinking_blocks": [{"type": "thinking", "thinking": "no signature"}],
    }
    message = refusal("anthropic", messages=conversation(assistant))
    assert "thinking_blocks[0]" in message


@pytest.mark.parametrize("kind", ["openai", "openai-compatible", "azure-openai", "gemini"])
def test_other_vendors_get_the_turn_without_its_thinking(kind: str) -> None:
    sent = body(kind, messages=conversation(answered()))
    if kind == "gemini":
        assert sent["contents"][1] == {
            "role": "model",
            "parts": [{"functionCall": {"name": "weather", "args": {}}}],
        }
    else:
        assistant = sent["messages"][1]
        assert "reasoning_content" not in assistant
        assert "thinking_blocks" not in assistant
        assert assistant["tool_calls"] == [CALL]
