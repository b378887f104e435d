"""What a parsed answer must look like, whatever bytes it was parsed from.

A wire format may refuse anything (with a ``GuardedLLMError``); what it accepts must be
well-formed: the frozen types hold the types they declare, finish reasons are OpenAI's, and
token counts are counts: whole, non-negative, and within the 64-bit integers every vendor's
schema declares them as, so that the cost arithmetic after the call can use them.
"""

from __future__ import annotations

from typing import Any, get_args

from guardedllm.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    FinishReason,
    Function,
    ToolCall,
    Usage,
)

__all__ = ["check_chunk", "check_completion", "check_usage"]

FINISH_REASONS = frozenset(get_args(FinishReason))
# The largest count a vendor's int64 schema field can hold.
MAX_COUNT = 2**63 - 1


def _text(value: object, where: str, *, optional: bool = True) -> None:
    assert isinstance(value, str) or (optional and value is None), f"{where} is {value!r}"


def _int(value: object, where: str) -> None:
    assert isinstance(value, int), f"{where} is {value!r}"
    assert not isinstance(value, bool), f"{where} is {value!r}"


def _count(value: object, where: str) -> None:
    _int(value, where)
    assert isinstance(value, int)
    assert 0 <= value <= MAX_COUNT, f"{where} is {value}, not a token count"


def check_usage(usage: Usage | None, where: str = "usage") -> None:
    if usage is None:
        return
    assert isinstance(usage, Usage), f"{where} is {usage!r}"
    _count(usage.prompt_tokens, f"{where}.prompt_tokens")
    _count(usage.completion_tokens, f"{where}.completion_tokens")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, (
        f"{where}.total_tokens is {usage.total_tokens}, not prompt + completion"
    )
    _count(usage.prompt_tokens_details.cached_tokens, f"{where}.cached_tokens")
    _count(usage.completion_tokens_details.reasoning_tokens, f"{where}.reasoning_tokens")


def _finish(value: object, where: str) -> None:
    assert value is None or value in FINISH_REASONS, f"{where}.finish_reason is {value!r}"


def check_completion(completion: Any) -> None:
    assert isinstance(completion, ChatCompletion), f"parsed {completion!r}"
    _text(completion.id, "id", optional=False)
    _int(completion.created, "created")
    _text(completion.model, "model", optional=False)
    _text(completion.system_fingerprint, "system_fingerprint")
    assert isinstance(completion.choices, tuple), f"choices is {completion.choices!r}"
    for position, choice in enumerate(completion.choices):
        where = f"choices[{position}]"
        assert isinstance(choice, Choice), f"{where} is {choice!r}"
        _int(choice.index, f"{where}.index")
        _finish(choice.finish_reason, where)
        message = choice.message
        assert isinstance(message, ChatCompletionMessage), f"{where}.message is {message!r}"
        _text(message.content, f"{where}.message.content")
        _text(message.refusal, f"{where}.message.refusal")
        calls = message.tool_calls
        assert calls is None or (isinstance(calls, tuple) and calls), f"{where} tool_calls {calls}"
        for j, call in enumerate(calls or ()):
            at = f"{where}.message.tool_calls[{j}]"
            assert isinstance(call, ToolCall), f"{at} is {call!r}"
            _text(call.id, f"{at}.id", optional=False)
            assert isinstance(call.function, Function), f"{at}.function is {call.function!r}"
            _text(call.function.name, f"{at}.function.name", optional=False)
            _text(call.function.arguments, f"{at}.function.arguments", optional=False)
    check_usage(completion.usage)


def check_chunk(chunk: Any) -> None:
    assert isinstance(chunk, ChatCompletionChunk), f"decoded {chunk!r}"
    _text(chunk.id, "chunk.id", optional=False)
    _int(chunk.created, "chunk.created")
    _text(chunk.model, "chunk.model", optional=False)
    assert isinstance(chunk.choices, tuple), f"chunk.choices is {chunk.choices!r}"
    for position, choice in enumerate(chunk.choices):
        where = f"chunk.choices[{position}]"
        assert isinstance(choice, ChunkChoice), f"{where} is {choice!r}"
        _int(choice.index, f"{where}.index")
        _finish(choice.finish_reason, where)
        delta = choice.delta
        assert isinstance(delta, ChoiceDelta), f"{where}.delta is {delta!r}"
        _text(delta.content, f"{where}.delta.content")
        _text(delta.refusal, f"{where}.delta.refusal")
        assert delta.role in (None, "assistant"), f"{where}.delta.role is {delta.role!r}"
        for j, call in enumerate(delta.tool_calls or ()):
            at = f"{where}.delta.tool_calls[{j}]"
            assert isinstance(call, ChoiceDeltaToolCall), f"{at} is {call!r}"
            _int(call.index, f"{at}.index")
            _text(call.id, f"{at}.id")
            assert call.type in (None, "function"), f"{at}.type is {call.type!r}"
            function = call.function
            if function is not None:
                assert isinstance(function, ChoiceDeltaToolCallFunction), f"{at}: {function!r}"
                _text(function.name, f"{at}.function.name")
                _text(function.arguments, f"{at}.function.arguments")
    check_usage(chunk.usage, "chunk.usage")
