"""Chat prompt token counting.

Reference values, and where they come from:

- The OpenAI cookbook "How to count tokens with tiktoken"
  (github.com/openai/openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb, commit
  c81359cd), section 6, sends its ``example_messages`` (copied below) to the API and prints
  "124 prompt tokens counted by the OpenAI API." for gpt-4o and gpt-4o-mini (o200k_base) and
  "129 prompt tokens counted by the OpenAI API." for gpt-4 and gpt-3.5-turbo (cl100k_base).
  Section 7 does the same with one weather tool: 101 (gpt-4o, gpt-4o-mini) and 105 (gpt-4,
  gpt-3.5-turbo).
- Small cases are computed by hand from ``encode`` lengths plus the framing constants (3 per
  message, 1 per name, 3 for the reply), each spelled out next to its assertion.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from guardedllm.errors import InvalidRequestError
from guardedllm.estimate import count_chat_tokens, get_encoding
from guardedllm.estimate._images import GPT_4O_MINI_IMAGE_RATES

from . import images_factory as make

COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]

COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]

ENCODINGS = ["o200k_base", "cl100k_base"]


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> tiktoken.Encoding:
    return get_encoding(request.param)


@pytest.mark.parametrize(("name", "tokens"), [("o200k_base", 124), ("cl100k_base", 129)])
def test_cookbook_conversation_matches_the_api(name: str, tokens: int) -> None:
    count = count_chat_tokens(COOKBOOK_MESSAGES, encoding=get_encoding(name))
    assert count.tokens == tokens
    assert count.exact
    assert count.notes == ()


@pytest.mark.parametrize(("name", "tokens"), [("o200k_base", 101), ("cl100k_base", 105)])
def test_cookbook_tools_match_the_api(name: str, tokens: int) -> None:
    count = count_chat_tokens(
        COOKBOOK_TOOL_MESSAGES, encoding=get_encoding(name), tools=COOKBOOK_TOOLS
    )
    assert count.tokens == tokens
    assert not count.exact  # the tool formula is fitted, not documented
    assert any("tool definitions" in note for note in count.notes)


def test_tool_formula_by_hand(encoding: tiktoken.Encoding) -> None:
    # One function, no properties: func_init + "name:description" (final period dropped) +
    # func_end. func_init is 7 for o200k_base and 10 for cl100k_base (cookbook section 7).
    tools = [{"type": "function", "function": {"name": "now", "description": "The time."}}]
    func_init = 10 if encoding.name == "cl100k_base" else 7
    bare = count_chat_tokens([], encoding=encoding).tokens
    with_tool = count_chat_tokens([], encoding=encoding, tools=tools).tokens
    assert with_tool - bare == func_init + len(encoding.encode("now:The time")) + 12


def test_malformed_tools_are_refused(encoding: tiktoken.Encoding) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape("tools[1]")):
        count_chat_tokens([], encoding=encoding, tools=[{"name": "ok"}, "not a tool"])  # type: ignore[list-item]


def test_hello_world_by_hand(encoding: tiktoken.Encoding) -> None:
    # "user" and "hello world" are 1 and 2 tokens in both encodings:
    assert len(encoding.encode("user")) == 1
    assert len(encoding.encode("hello world")) == 2
    # 3 (message framing) + 1 (role) + 2 (content) + 3 (reply priming) = 9
    count = count_chat_tokens([{"role": "user", "content": "hello world"}], encoding=encoding)
    assert count.tokens == 9
    assert count.exact


@pytest.mark.parametrize(
    "role", ["system", "developer", "user", "assistant", "tool", "function", "critic", "ユーザー"]
)
def test_any_role_counts_as_its_text(role: str, encoding: tiktoken.Encoding) -> None:
    # Twice: the standard roles' counts are remembered after the first call.
    for _ in range(2):
        count = count_chat_tokens([{"role": role, "content": ""}], encoding=encoding)
        assert count.tokens == 3 + len(encoding.encode(role)) + 3


def test_empty_conversation_is_the_reply_priming(encoding: tiktoken.Encoding) -> None:
    assert count_chat_tokens([], encoding=encoding).tokens == 3


def test_a_name_costs_one_more_than_its_text(encoding: tiktoken.Encoding) -> None:
    plain = {"role": "user", "content": "hello world"}
    named = {**plain, "name": "alice"}
    difference = (
        count_chat_tokens([named], encoding=encoding).tokens
        - count_chat_tokens([plain], encoding=encoding).tokens
    )
    assert difference == len(encoding.encode("alice")) + 1


def test_special_token_text_counts_as_text(encoding: tiktoken.Encoding) -> None:
    text = "ignore this <|endoftext|> marker"
    count = count_chat_tokens([{"role": "user", "content": text}], encoding=encoding)
    assert count.tokens == 3 + 1 + len(encoding.encode_ordinary(text)) + 3
    assert len(encoding.encode_ordinary(text)) > len(encoding.encode(text, allowed_special="all"))


def test_a_lone_surrogate_counts_as_tiktoken_repairs_it(encoding: tiktoken.Encoding) -> None:
    text = "half a pair: \ud83d, then on"  # what a bad JSON escape leaves in a str
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "name": "al", "content": [{"type": "text", "text": text}]},
    ]
    count = count_chat_tokens(messages, encoding=encoding)

    def tokens(value: str) -> int:
        return len(encoding.encode_ordinary(value))  # tiktoken's own repair of the surrogate

    first = 3 + tokens("system") + tokens("be brief")
    second = 3 + tokens("user") + tokens("al") + 1 + tokens(text)
    assert count.tokens == 3 + first + second
    assert count.exact


def test_text_parts_count_as_text(encoding: tiktoken.Encoding) -> None:
    parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": " world, again"}]
    count = count_chat_tokens([{"role": "user", "content": parts}], encoding=encoding)
    text_tokens = len(encoding.encode("hello")) + len(encoding.encode(" world, again"))
    assert count.tokens == 3 + 1 + text_tokens + 3
    assert count.exact


def _image_message(url: str, detail: str | None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail is not None:
        image["detail"] = detail
    return {"role": "user", "content": [{"type": "image_url", "image_url": image}]}


FRAMING = 3 + 1 + 3  # message framing, the role "user", reply priming


def test_data_url_image_high_detail(encoding: tiktoken.Encoding) -> None:
    # 1024 x 1024 at high detail: 765 tokens (OpenAI's own worked example).
    message = _image_message(make.data_url(make.png(1024, 1024)), "high")
    count = count_chat_tokens([message], encoding=encoding)
    assert count.tokens == FRAMING + 765
    assert count.exact


def test_auto_detail_counts_as_high_and_says_so(encoding: tiktoken.Encoding) -> None:
    message = _image_message(make.data_url(make.jpeg(2048, 4096), "image/jpeg"), None)
    count = count_chat_tokens([message], encoding=encoding)
    assert count.tokens == FRAMING + 1105
    assert not count.exact
    assert any("'auto'" in note for note in count.notes)


def test_low_detail_is_exact_whatever_the_url(encoding: tiktoken.Encoding) -> None:
    message = _image_message("https://example.com/cat.png", "low")
    count = count_chat_tokens([message], encoding=encoding)
    assert count.tokens == FRAMING + 85
    assert count.exact


def test_http_image_is_counted_at_the_worst_case(encoding: tiktoken.Encoding) -> None:
    message = _image_message("https://example.com/cat.png", "high")
    count = count_chat_tokens([message], encoding=encoding)
    assert count.tokens == FRAMING + 1445
    assert not count.exact
    assert any("size unknown" in note for note in count.notes)


def test_image_rates_are_a_parameter(encoding: tiktoken.Encoding) -> None:
    message = _image_message(make.data_url(make.gif(512, 512)), "high")
    count = count_chat_tokens([message], encoding=encoding, image_rates=GPT_4O_MINI_IMAGE_RATES)
    assert count.tokens == FRAMING + 2833 + 5667


def test_tool_calls_count_name_and_arguments(encoding: tiktoken.Encoding) -> None:
    arguments = '{"location": "Paris, France", "unit": "celsius"}'
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_current_weather", "arguments": arguments},
            }
        ],
    }
    count = count_chat_tokens([message], encoding=encoding)
    expected = (
        3
        + len(encoding.encode("assistant"))
        + len(encoding.encode("get_current_weather"))
        + len(encoding.encode(arguments))
        + 3
    )
    assert count.tokens == expected
    assert not count.exact


def test_tool_result_message_is_counted_and_flagged(encoding: tiktoken.Encoding) -> None:
    message = {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
    count = count_chat_tokens([message], encoding=encoding)
    expected = 3 + sum(len(encoding.encode(v)) for v in message.values()) + 3
    assert count.tokens == expected
    assert not count.exact
    assert any("tool_call_id" in note for note in count.notes)


def test_uncountable_parts_are_bounded_and_noted(encoding: tiktoken.Encoding) -> None:
    # Three bytes of audio that is no WAV: bounded by its size at 8 kbit/s, at least a token.
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    count = count_chat_tokens([{"role": "user", "content": [audio]}], encoding=encoding)
    assert count.tokens > FRAMING
    assert not count.exact
    assert "audio counted at" in count.notes[0]


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (["just a string"], "messages[0] is a str"),
        ([{"role": "user", "content": 42}], "messages[0].content is a int"),
        ([{"role": "user", "content": [{"text": "no type"}]}], "without a type"),
        ([{"role": "user", "content": [{"type": "text", "text": None}]}], "not a string"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "without a url"),
        ([_image_message("https://x.test/a.png", "ultra")], "detail 'ultra'"),
        ([{"role": "assistant", "tool_calls": 7}], "tool_calls is a int"),
    ],
)
def test_malformed_messages_are_refused(
    messages: list[Any], fragment: str, encoding: tiktoken.Encoding
) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(fragment)):
        count_chat_tokens(messages, encoding=encoding)


message_strategy = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "developer"]),
        "content": st.text(max_size=200)
        | st.lists(st.text(max_size=40).map(lambda t: {"type": "text", "text": t}), max_size=3),
    },
    optional={"name": st.from_regex(r"[a-zA-Z0-9_-]{1,16}", fullmatch=True)},
)


@settings(max_examples=200)
@given(st.sampled_from(ENCODINGS), st.lists(message_strategy, max_size=5), message_strategy)
def test_count_is_positive_and_grows_with_each_message(
    name: str, messages: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    encoding = get_encoding(name)
    before = count_chat_tokens(messages, encoding=encoding)
    after = count_chat_tokens([*messages, extra], encoding=encoding)
    assert before.tokens >= 3
    assert after.tokens >= before.tokens + 3  # at least one message's framing more


# Texts that stress where one text ends and the next begins: spaces and line ends (which tiktoken
# merges into runs), letters and digits (which it merges into words), special tokens whole and
# in parts (the count joins texts with one), and characters beyond ASCII.
BOUNDARY_TEXT = st.lists(
    st.sampled_from(
        [
            *(" ", "  ", "\n", "\r\n", "\t", "a", "Z", "7", "'s", ".", "é", "中", "\U0001f600"),
            *("<|", "|>", "endoftext", "<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>"),
        ]
    ),
    max_size=8,
).map("".join)
boundary_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": BOUNDARY_TEXT},
    optional={"name": BOUNDARY_TEXT},
)


@settings(max_examples=300)
@given(st.sampled_from(ENCODINGS), st.lists(boundary_message, min_size=1, max_size=6))
def test_a_count_is_the_sum_of_each_text_encoded_alone(
    name: str, messages: list[dict[str, Any]]
) -> None:
    # The count encodes all the texts of a request in one call; the cookbook's rule counts each
    # on its own. They must agree whatever the texts hold at their ends.
    encoding = get_encoding(name)
    expected = 3 + sum(
        3
        + sum(len(encoding.encode_ordinary(value)) for value in message.values())
        + ("name" in message)
        for message in messages
    )
    assert count_chat_tokens(messages, encoding=encoding).tokens == expected


def test_an_encoding_without_the_separator_counts_each_text_alone() -> None:
    bundled = get_encoding("o200k_base")
    plain = tiktoken.Encoding(
        name="o200k_no_specials",
        pat_str=bundled._pat_str,
        mergeable_ranks=bundled._mergeable_ranks,
        special_tokens={},
    )
    messages = [{"role": "user", "content": "one  "}, {"role": "user", "content": "  two"}]
    expected = 3 + 2 * (3 + len(plain.encode_ordinary("user"))) + 2 + 2
    assert len(plain.encode_ordinary("one  ")) + len(plain.encode_ordinary("  two")) == 4
    assert count_chat_tokens(messages, encoding=plain).tokens == expected
