"""Vendor-native options and thinking, through Client and AsyncClient (asyncio, trio) against
FakeProvider: ``extra_body`` and ``provider_options`` reach the vendor that serves the call,
the guards' own fields are refused before anything is sent, and Anthropic and Gemini thinking
comes back in the OpenAI shape, counted in usage and cost."""

from __future__ import annotations

import re
from typing import Any

import pytest

from guardedllm import Policy
from guardedllm.errors import InvalidRequestError, ThinkingBudgetError
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion, ThinkingBlock
from support import Call, Streamed

ASK = [{"role": "user", "content": "What is 6 times 7?"}]

# Each vendor's way of asking to see the thinking, in its own terms.
THINKING: dict[str, dict[str, Any]] = {
    "claude-haiku": {"anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}}},
    "gemini-flash": {"gemini": {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}},
}
# The deployments' prices in the test config (USD per million tokens: input, output).
PRICES = {"claude-haiku": (0.80, 4.00), "gemini-flash": (0.10, 0.40)}


def expected_cost(deployment: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Thinking is billed as output by both vendors: the whole completion at the output rate."""
    input_rate, output_rate = PRICES[deployment]
    return (prompt_tokens * input_rate + completion_tokens * output_rate) / 1e6


@pytest.mark.parametrize("deployment", ["claude-haiku", "gemini-flash"])
def test_thinking_comes_back_as_reasoning_content_and_is_counted(
    call: Call, fake_provider: FakeProvider, deployment: str
) -> None:
    fake_provider.script(reasoning="six sevens make", content="42.")
    response = call(
        model=deployment, messages=ASK, max_tokens=2000, provider_options=THINKING[deployment]
    )

    assert isinstance(response, ChatCompletion)
    message = response.choices[0].message
    assert message.content == "42."  # the thinking is never content
    assert message.reasoning_content == "six sevens make"
    if deployment == "claude-haiku":
        (block,) = message.thinking_blocks or ()
        assert (block.type, block.thinking) == ("thinking", "six sevens make")
        assert block.signature
    else:
        assert message.thinking_blocks is None
    usage = response.usage
    assert usage is not None
    assert usage.completion_tokens == 3 + 1  # the thoughts' words and the answer's
    assert usage.completion_tokens_details.reasoning_tokens == 3
    assert response.guard is not None
    assert response.guard.cost_usd is not None
    assert response.guard.cost_usd == pytest.approx(
        expected_cost(deployment, usage.prompt_tokens, usage.completion_tokens)
    )
    (sent,) = fake_provider.requests
    if deployment == "claude-haiku":
        assert sent.json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert sent.json["max_tokens"] == 2000
    else:
        assert sent.json["generationConfig"] == {
            "maxOutputTokens": 2000,
            "thinkingConfig": {"includeThoughts": True},
        }


@pytest.mark.parametrize("deployment", ["claude-haiku", "gemini-flash"])
def test_a_stream_carries_the_thinking_in_its_deltas(
    call: Call, fake_provider: FakeProvider, deployment: str
) -> None:
    fake_provider.script(reasoning="six sevens make forty-two", content="It is 42.", chunks=2)
    result = call(
        model=deployment,
        messages=ASK,
        max_tokens=2000,
        stream=True,
        stream_options={"include_usage": True},
        provider_options=THINKING[deployment],
    )

    assert isinstance(result, Streamed)
    assert result.completed
    deltas = [choice.delta for chunk in result.chunks for choice in chunk.choices]
    pieces = [d.reasoning_content for d in deltas if d.reasoning_content]
    assert len(pieces) == 2
    assert "".join(pieces) == "six sevens make forty-two"
    assert result.content == "It is 42."
    blocks = [block for d in deltas for block in d.thinking_blocks or ()]
    if deployment == "claude-haiku":  # the signed block whole, once its end has come
        assert [(b.type, b.thinking) for b in blocks] == [("thinking", "six sevens make forty-two")]
        assert blocks[0].signature
    else:
        assert blocks == []
    usage = result.chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 4 + 3
    assert usage.completion_tokens_details.reasoning_tokens == 4
    assert result.guard.cost_usd == pytest.approx(
        expected_cost(deployment, usage.prompt_tokens, usage.completion_tokens)
    )


def test_signed_thinking_passed_back_reaches_anthropic_unchanged(
    call: Call, fake_provider: FakeProvider
) -> None:
    tools = [{"type": "function", "function": {"name": "multiply", "parameters": {}}}]
    fake_provider.script(
        times=1, reasoning="use the tool", tool_calls=[{"name": "multiply", "arguments": {}}]
    )
    options = THINKING["claude-haiku"]
    first = call(
        model="claude-haiku", messages=ASK, max_tokens=2000, tools=tools, provider_options=options
    )
    assert isinstance(first, ChatCompletion)
    answer = first.choices[0].message
    (call_made,) = answer.tool_calls or ()
    (signed,) = answer.thinking_blocks or ()
    assert isinstance(signed, ThinkingBlock)
    conversation = [
        *ASK,
        answer.model_dump(),  # passed back as the caller got it
        {"role": "tool", "tool_call_id": call_made.id, "content": "42"},
    ]
    second = call(
        model="claude-haiku",
        messages=conversation,
        max_tokens=2000,
        tools=tools,
        provider_options=options,
    )
    assert isinstance(second, ChatCompletion)
    assistant = fake_provider.requests[1].json["messages"][1]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "use the tool",
        "signature": signed.signature,
    }
    assert assistant["content"][1]["type"] == "tool_use"


def test_one_call_carries_options_for_each_vendor_on_its_route(
    call: Call, fake_provider: FakeProvider
) -> None:
    # The first deployment of the route fails, so the call reaches Anthropic.
    fake_provider.script(vendor="openai", status=503)
    response = call(
        model="support",
        messages=ASK,
        max_tokens=2000,
        extra_body={"top_k": 1, "metadata": {"user_id": "caller"}},
        provider_options={
            "anthropic": {"top_k": 5, "service_tier": "standard_only"},
            "gemini": {"safetySettings": []},
        },
    )
    assert isinstance(response, ChatCompletion)
    assert response.guard is not None
    assert response.guard.deployment == "claude-haiku"
    openai, anthropic = fake_provider.requests[0].json, fake_provider.requests[-1].json
    # extra_body goes to every vendor as it is; provider_options only to its own, after it.
    assert (openai["top_k"], openai["metadata"]) == (1, {"user_id": "caller"})
    assert "service_tier" not in openai
    assert "safetySettings" not in openai
    assert (anthropic["top_k"], anthropic["service_tier"]) == (5, "standard_only")
    assert anthropic["metadata"] == {"user_id": "caller"}
    assert "safetySettings" not in anthropic


def test_a_providers_own_name_keys_its_options(call: Call, fake_provider: FakeProvider) -> None:
    # "local" is the config's name of the openai-compatible provider serving llama.
    options = {"local": {"chat_template_kwargs": {"enable_thinking": True}}}
    call(model="llama", messages=ASK, max_tokens=20, provider_options=options)
    call(model="gpt-4o-mini", messages=ASK, max_tokens=20, provider_options=options)
    llama, gpt = (request.json for request in fake_provider.requests)
    assert llama["chat_template_kwargs"] == {"enable_thinking": True}
    assert "chat_template_kwargs" not in gpt


def test_options_keyed_by_no_provider_are_refused(call: Call, fake_provider: FakeProvider) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        call(model="claude-haiku", messages=ASK, provider_options={"antropic": {"top_k": 5}})
    assert "'antropic'" in str(caught.value)
    assert "anthropic" in str(caught.value)  # the kinds it could have meant
    assert fake_provider.requests == []


def test_a_field_the_guards_count_on_is_refused_before_sending(
    call: Call, fake_provider: FakeProvider
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        call(model="gpt-4o-mini", messages=ASK, extra_body={"max_completion_tokens": 10**6})
    assert "max_completion_tokens" in str(caught.value)
    assert "max_tokens=" in str(caught.value)
    assert fake_provider.requests == []


def test_a_thinking_budget_not_below_max_tokens_is_refused_before_sending(
    call: Call, fake_provider: FakeProvider
) -> None:
    with pytest.raises(ThinkingBudgetError) as caught:
        call(
            model="claude-haiku",
            messages=ASK,
            max_tokens=1024,
            provider_options=THINKING["claude-haiku"],
            policy=Policy(max_attempts=1),
        )
    assert "budget_tokens`=1024" in str(caught.value)
    assert fake_provider.requests == []


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"extra_body": ["top_k", 5]}, "extra_body must be a dict"),
        ({"provider_options": {"anthropic": "top_k=5"}}, "provider_options['anthropic'] must be"),
        ({"provider_options": [("anthropic", {})]}, "provider_options must be a dict"),
    ],
)
def test_vendor_fields_that_are_not_dicts_are_refused(
    call: Call, fake_provider: FakeProvider, arguments: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(says)):
        call(model="claude-haiku", messages=ASK, **arguments)
    assert fake_provider.requests == []
