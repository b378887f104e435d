"""Reading OpenAI Chat Completions streams: SSE ``data: {chunk}`` events into typed chunks.

The chunk reader has a flat fast path for the plain shape of a text delta (the commonest by
far) and the checked reader for anything else, field by field, as ``_openai_response`` reads
answers. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from guardedllm.errors import ResponseFormatError
from guardedllm.providers._openai_response import (
    _FINISH_REASONS,
    VendorError,
    _arguments,
    _check_function_type,
    _finish_reason,
    _format_error,
    _int,
    _list,
    _object,
    _optional_list,
    _optional_str,
    _str,
    _usage,
    mapped_error,
    read_error,
)
from guardedllm.providers._sse import ServerSentEvent, SSEParser
from guardedllm.providers.base import Target, load_json
from guardedllm.types import (
    ChatCompletionChunk,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    Usage,
)

__all__ = ["OpenAIStreamDecoder"]


class OpenAIStreamDecoder:
    """Chat Completions SSE (``data: {chunk}`` events, then ``data: [DONE]``) into chunks.

    Chunks are passed on as the server sent them, with one exception: a chunk with neither
    choices nor usage says nothing a caller can use (Azure opens every stream with one holding
    only its prompt filter results), so it is skipped. Bytes after ``[DONE]`` are ignored.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self._sse = SSEParser()
        self._done = False
        self._usage: Usage | None = None
        # Whether the SSE parser holds nothing pending (SSEParser.between_events), so that a
        # read of one whole event can skip it. Kept here, as the parser's state changes only
        # when it is fed; False once the stream is done.
        self._idle = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        if self._idle and data.startswith(b"data: {") and data.endswith(b"}\n\n"):
            # The commonest read of all: one whole chunk event, read as the SSE parser would
            # read it (see SSEParser.between_events), without building the event. It is one
            # event of one line if no other line ends inside it (a str is searched faster than
            # bytes).
            try:
                text = data[6:-2].decode()
            except UnicodeDecodeError:
                pass  # the parser reports it, with its excerpt
            else:
                if "\n" not in text and "\r" not in text:
                    chunk = self._read("message", text)
                    return [] if chunk is None else [chunk]
        if self._done:
            return []
        self._idle = False  # until the parser has taken these bytes without an error
        try:
            events = self._sse.feed(data)
        except ResponseFormatError as exc:
            raise self._reframed(exc) from None
        chunks = self._chunks(events)
        self._idle = not self._done and self._sse.between_events()
        return chunks

    def close(self) -> list[ChatCompletionChunk]:
        if self._done:
            return []
        try:
            events = self._sse.close()
        except ResponseFormatError as exc:
            raise self._reframed(exc) from None
        chunks = self._chunks(events)
        if not self.done:  # the property: mypy would keep self._done narrowed across the call
            raise ResponseFormatError(
                f"{self._target.deployment}: the stream from {self._target.provider} ended "
                "before its terminal 'data: [DONE]' event; the connection was cut or the "
                "server failed. Retry the call.",
                deployment=self._target.deployment,
            )
        return chunks

    def _chunks(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        chunks: list[ChatCompletionChunk] = []
        for event in events:
            if self._done:
                break
            chunk = self._chunk(event)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def _chunk(self, event: ServerSentEvent) -> ChatCompletionChunk | None:
        return self._chunk_of(event.event, event.data)

    def _chunk_of(self, name: str, text: str) -> ChatCompletionChunk | None:
        """The chunk an event named ``name`` with data ``text`` carries (None: nothing)."""
        if name not in ("message", "error"):
            return None  # a named event OpenAI does not send: a compatible server's extension
        # A chunk's data starts with "{"; only other data can be "[DONE]" (with any spaces).
        if not text.startswith("{") and text.strip() == "[DONE]":
            self._done = True
            self._idle = False
            return None
        return self._read(name, text)

    def _read(self, name: str, text: str) -> ChatCompletionChunk | None:
        """``_chunk_of`` for data that is not ``[DONE]``."""
        try:
            payload = load_json(text)
        except ValueError:
            raise _format_error(
                self._target, "a stream event's data is neither JSON nor [DONE]", text
            ) from None
        if type(payload) is dict and name == "message" and not payload.get("error"):
            chunk = _plain_chunk(payload, self._target) or _checked_chunk(payload, self._target)
        else:
            data = _object(payload, "stream chunk", self._target)
            if name == "error" or data.get("error"):
                vendor = read_error(data) or VendorError(message=text[:200])
                raise mapped_error(vendor.status or 500, vendor, self._target)
            chunk = _checked_chunk(data, self._target)
        if chunk.usage is not None:
            self._usage = chunk.usage
        elif not chunk.choices:
            return None
        return chunk

    def _reframed(self, exc: ResponseFormatError) -> ResponseFormatError:
        return ResponseFormatError(
            f"{self._target.deployment}: {exc}",
            deployment=self._target.deployment,
            excerpt=exc.excerpt,
        )


# The delta of a chunk that says nothing but its finish reason: one value serves them all.
_EMPTY_DELTA = ChoiceDelta()

# The three values of a plain stream chunk, built by storing their slots directly: what their
# attrs __init__ does (they have no validators or converters to skip), at a third of its cost,
# on a path that runs for every chunk of every stream. The equality tests of the fast readers
# against their checked twins compare every field of what these build.
_new = object.__new__


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    fields = attrs.fields(cls)
    if tuple(f.name for f in fields) != names or any(f.validator or f.converter for f in fields):
        raise TypeError(f"{cls.__name__}'s fields changed: update its builder in this module")
    return tuple(cls.__dict__[name].__set__ for name in names)


_D_CONTENT, _D_ROLE, _D_TOOL_CALLS, _D_REFUSAL, _D_REASONING, _D_THINKING = _slot_setters(
    ChoiceDelta,
    ("content", "role", "tool_calls", "refusal", "reasoning_content", "thinking_blocks"),
)
_K_INDEX, _K_DELTA, _K_FINISH, _K_LOGPROBS = _slot_setters(
    ChunkChoice, ("index", "delta", "finish_reason", "logprobs")
)
_C_ID, _C_CREATED, _C_MODEL, _C_CHOICES, _C_USAGE, _C_OBJECT, _C_FINGERPRINT = _slot_setters(
    ChatCompletionChunk,
    ("id", "created", "model", "choices", "usage", "object", "system_fingerprint"),
)


def _plain_chunk(data: dict[str, Any], target: Target) -> ChatCompletionChunk | None:
    """As ``_plain_completion``, for one stream chunk: the chunk when it has the plain shape
    of a text delta (no tool calls), else None for ``_checked_chunk`` to read. Written out
    flat, its values built in line: it runs once per chunk of every stream."""
    choices = data.get("choices")
    id_, created = data.get("id", ""), data.get("created", 0)
    model, fingerprint = data.get("model", ""), data.get("system_fingerprint")
    if (
        type(choices) is not list
        or (type(id_) is not str and id_ is not None)
        or (type(created) is not int and created is not None)
        or (type(model) is not str and model is not None)
        or (type(fingerprint) is not str and fingerprint is not None)
    ):
        return None
    parsed = []
    for position, raw in enumerate(choices):
        if type(raw) is not dict:
            return None
        delta = raw.get("delta") or {}
        if type(delta) is not dict:
            return None
        content = delta.get("content")
        role = delta.get("role")
        refusal = delta.get("refusal")
        reasoning = delta.get("reasoning_content")
        index = raw.get("index", position)
        finish = raw.get("finish_reason")
        if (
            (content is not None and type(content) is not str)
            or (role is not None and type(role) is not str)
            or (refusal is not None and type(refusal) is not str)
            or (reasoning is not None and type(reasoning) is not str)
            or delta.get("tool_calls") is not None
        ):
            return None
        if index is None:
            index = position
        elif type(index) is not int:
            return None
        if finish is not None:
            finish = _FINISH_REASONS.get(finish) if type(finish) is str else None
            if finish is None:
                return None
        if content is None and not role and refusal is None and reasoning is None:
            value = _EMPTY_DELTA
        else:
            value = _new(ChoiceDelta)
            _D_CONTENT(value, content)
            _D_ROLE(value, "assistant" if role else None)  # see _chunk_choice
            _D_TOOL_CALLS(value, None)
            _D_REFUSAL(value, refusal)
            _D_REASONING(value, reasoning)
            _D_THINKING(value, None)
        choice = _new(ChunkChoice)
        _K_INDEX(choice, index)
        _K_DELTA(choice, value)
        _K_FINISH(choice, finish)
        _K_LOGPROBS(choice, None)
        parsed.append(choice)
    usage = data.get("usage")
    chunk: ChatCompletionChunk = _new(ChatCompletionChunk)
    _C_ID(chunk, id_ or "")
    _C_CREATED(chunk, created or 0)
    _C_MODEL(chunk, model or target.model)
    _C_CHOICES(chunk, tuple(parsed))
    _C_USAGE(chunk, None if usage is None else _usage(usage, "stream chunk.usage", target))
    _C_OBJECT(chunk, "chat.completion.chunk")
    _C_FINGERPRINT(chunk, fingerprint)
    return chunk


def _checked_chunk(data: Mapping[str, Any], target: Target) -> ChatCompletionChunk:
    where = "stream chunk"
    choices = _list(data, "choices", where, target)
    return ChatCompletionChunk(
        id=_str(data, "id", where, target, default=""),
        created=_int(data, "created", where, target, default=0),
        model=_str(data, "model", where, target, default="") or target.model,
        choices=tuple(_chunk_choice(raw, i, target) for i, raw in enumerate(choices)),
        usage=_usage(data.get("usage"), f"{where}.usage", target),
        system_fingerprint=_optional_str(data, "system_fingerprint", where, target),
    )


def _chunk_choice(raw: object, position: int, target: Target) -> ChunkChoice:
    where = f"stream chunk.choices[{position}]"
    choice = _object(raw, where, target)
    delta = _object(choice.get("delta") or {}, f"{where}.delta", target)
    calls = _optional_list(delta, "tool_calls", f"{where}.delta", target)
    return ChunkChoice(
        index=_int(choice, "index", where, target, default=position),
        delta=ChoiceDelta(
            content=_optional_str(delta, "content", f"{where}.delta", target),
            # Only the assistant speaks in a completion; servers that repeat the role (or send
            # it as "" or null) on every delta are read the same as OpenAI's first-delta role.
            role="assistant" if _optional_str(delta, "role", f"{where}.delta", target) else None,
            tool_calls=tuple(
                _delta_tool_call(call, j, f"{where}.delta.tool_calls[{j}]", target)
                for j, call in enumerate(calls)
            )
            or None,
            refusal=_optional_str(delta, "refusal", f"{where}.delta", target),
            reasoning_content=_optional_str(delta, "reasoning_content", f"{where}.delta", target),
        ),
        finish_reason=_finish_reason(choice, where, target),
    )


def _delta_tool_call(raw: object, position: int, where: str, target: Target) -> ChoiceDeltaToolCall:
    call = _object(raw, where, target)
    _check_function_type(call, where, target)
    function: ChoiceDeltaToolCallFunction | None = None
    if call.get("function") is not None:
        fields = _object(call.get("function"), f"{where}.function", target)
        function = ChoiceDeltaToolCallFunction(
            name=_optional_str(fields, "name", f"{where}.function", target),
            arguments=_arguments(fields, f"{where}.function", target),
        )
    return ChoiceDeltaToolCall(
        index=_int(call, "index", where, target, default=position),
        id=_optional_str(call, "id", where, target),
        function=function,
        type="function" if call.get("type") == "function" else None,
    )
