"""The fake's vendor-neutral reply logic and script values: pure, tested directly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm.testing import Behaviour, ScriptedToolCall, ScriptedUsage
from guardedllm.testing._replies import (
    Exchange,
    compose_reply,
    count_prompt_tokens,
    count_text_tokens,
    split_pieces,
    split_tokens,
)


def _exchange(**overrides: object) -> Exchange:
    values: dict[str, object] = {
        "vendor": "openai",
        "endpoint": "chat",
        "model": "m1",
        "last_user_text": "hello there",
        "prompt_tokens": 10,
    }
    values.update(overrides)
    return Exchange(**values)  # type: ignore[arg-type]


@given(st.text())
def test_tokens_rejoin_to_the_text(text: str) -> None:
    assert "".join(split_tokens(text)) == text


@given(st.text(min_size=1), st.integers(min_value=1, max_value=50))
def test_pieces_rejoin_and_never_exceed_the_requested_count(text: str, chunks: int) -> None:
    pieces = split_pieces(text, chunks)
    assert "".join(pieces) == text
    assert len(pieces) == min(chunks, max(len(split_tokens(text)), len(text)))
    assert all(pieces)


@given(st.text())
def test_default_pieces_rejoin(text: str) -> None:
    pieces = split_pieces(text, None)
    assert "".join(pieces) == text
    assert all(len(split_tokens(p)) <= 3 for p in pieces)


def test_default_split_is_three_words_a_piece() -> None:
    assert split_pieces("a b c d e f g", None) == ("a b c", " d e f", " g")
    assert split_pieces("", 3) == ()
    assert split_pieces("ab", 5) == ("a", "b")


def test_token_counts_are_the_documented_approximation() -> None:
    assert count_text_tokens("") == 0
    assert count_text_tokens("abcd") == 1
    assert count_text_tokens("abcde") == 2
    # priming 3 + (4 + 1) + (4 + 2)
    assert count_prompt_tokens(["abcd", "abcdefgh"]) == 14
    assert count_prompt_tokens([], tools=[{"a": 1}]) == 3 + count_text_tokens('[{"a":1}]')


def test_default_reply_echoes_model_and_40_chars_of_the_last_user_text() -> None:
    long = "x" * 100
    reply = compose_reply(_exchange(last_user_text=long), Behaviour())
    assert reply.text == f"Fake reply from m1: {'x' * 40}"
    assert reply.finish == "stop"
    assert reply.prompt_tokens == 10
    assert reply.completion_tokens == len(split_tokens(reply.text))


def test_max_tokens_truncates_the_reply_and_finishes_with_length() -> None:
    reply = compose_reply(_exchange(max_tokens=3), Behaviour())
    assert reply.text == "Fake reply from"
    assert reply.completion_tokens == 3
    assert reply.finish == "length"


def test_scripted_content_finish_and_usage_win() -> None:
    behaviour = Behaviour(
        content="one two",
        finish_reason="content_filter",
        usage={"prompt_tokens": 1, "completion_tokens": 2, "cached_tokens": 1},
        chunks=2,
    )
    reply = compose_reply(_exchange(), behaviour)
    assert reply.text == "one two"
    assert reply.finish == "content_filter"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens) == (1, 2, 1)
    assert reply.pieces == ("one", " two")


def test_tool_calls_are_used_only_when_the_request_declares_tools() -> None:
    behaviour = Behaviour(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
    without = compose_reply(_exchange(), behaviour)
    assert without.tool_calls == ()
    assert without.text is not None
    with_tools = compose_reply(_exchange(has_tools=True), behaviour)
    assert with_tools.tool_calls == (ScriptedToolCall(name="lookup", arguments={"q": "x"}),)
    assert with_tools.text is None
    assert with_tools.finish == "tool_calls"
    assert with_tools.completion_tokens == count_text_tokens('lookup{"q":"x"}')


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"status": 99}, "200..599"),
        ({"latency": -1}, "negative"),
        ({"chunks": 0}, "at least 1"),
        ({"hang": True, "drop": True}, "hang and drop"),
        ({"drop": True, "status": 500}, "ignores status"),
        ({"tool_calls": [{"arguments": {}}]}, "fix the keys"),
        ({"usage": {"tokens": 1}}, "unknown"),
    ],
)
def test_invalid_behaviours_say_what_to_fix(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Behaviour(**kwargs)  # type: ignore[arg-type]


def test_scripted_usage_accepts_its_own_type() -> None:
    usage = ScriptedUsage(prompt_tokens=3)
    assert Behaviour(usage=usage).usage is usage
