"""Reading Anthropic Messages API answers: bodies, event streams and errors, OpenAI-shaped.

The rules both readers keep, so a streamed answer and a whole one say the same thing:

- Text blocks join into ``message.content`` (None when there is none); ``tool_use`` blocks
  become tool calls whose arguments are the input as compact JSON text; server-tool blocks
  have no place in the OpenAI shape and are left out.
- Extended thinking: the text of ``thinking`` blocks joins into ``message.reasoning_content``
  (None when there is no thinking block), and every ``thinking`` and ``redacted_thinking``
  block is kept whole, signature and all, in ``message.thinking_blocks``, for the caller to
  pass back (see ``types.ThinkingBlock``). A redacted block's data is encrypted: it shows as no
  text anywhere, only as its block. In a stream, ``thinking_delta`` text is
  ``delta.reasoning_content`` as it comes; ``signature_delta`` is not text, and the block goes
  out whole in ``delta.thinking_blocks`` at its ``content_block_stop``.
- A ``tool_use`` named ``JSON_TOOL_NAME`` is the forced answer to a ``response_format``
  (see ``guardedllm.providers.anthropic``): its input is message text, and when it is the only
  call the finish reason is "stop", not "tool_calls". Tool-call indexes count real tool calls
  only, not content blocks.
- ``prompt_tokens`` is input + cache-read + cache-write tokens (Anthropic reports the three
  apart; OpenAI's prompt count includes cached input), ``cached_tokens`` the cache reads,
  ``reasoning_tokens`` the thinking tokens when Anthropic reports them.
- ``created`` is 0: Anthropic sends no creation time and this module reads no clock.

Anthropic's versioning policy says new event and block types may appear at any time; unknown
ones are skipped. Known ones with missing or ill-typed fields are a ``ResponseFormatError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs
import httpx

from guardedllm.errors import ProviderError, ResponseFormatError, error_for_status
from guardedllm.providers._sse import ServerSentEvent, SSEParser
from guardedllm.providers.base import (
    Target,
    decode_json,
    first_header,
    is_context_length_error,
    load_json,
    retry_after_seconds,
)
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
    ThinkingBlock,
    ToolCall,
    Usage,
)

__all__ = ["JSON_TOOL_NAME", "AnthropicStreamDecoder", "parse_error", "parse_message"]

# The tool a response_format request forces; reserved, so a tool_use of this name is always
# the JSON answer (the request builder refuses caller tools with this name).
JSON_TOOL_NAME = "json_response"

# stop_reason -> OpenAI finish_reason. A stop_reason not listed here (Anthropic adds them over
# time) reads as "stop": the answer is complete, and failing every call on it would be worse.
_FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> the HTTP status it comes with (Anthropic's errors documentation). A
# stream's error event has no status of its own; this gives it the one its type means.
_ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_COUNT_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)

_T = TypeVar("_T")


# --------------------------------------------------------------------------- whole answers


def parse_message(body: bytes, target: Target) -> ChatCompletion:
    """A 2xx Messages API body as an OpenAI-shaped ``ChatCompletion``."""
    data = decode_json(body, target)
    if not isinstance(data, dict):
        raise malformed(target, "response", data)
    blocks = _field(data, "content", list, target, "response")
    texts: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[ThinkingBlock] = []
    json_answer = False
    for i, block in enumerate(blocks):
        where = f"response.content[{i}]"
        if not isinstance(block, dict):
            raise malformed(target, where, block)
        kind = block.get("type")
        if kind == "text":
            texts.append(_field(block, "text", str, target, where))
        elif kind == "thinking":
            thinking.append(
                ThinkingBlock(
                    type="thinking",
                    thinking=_field(block, "thinking", str, target, where),
                    signature=_field(block, "signature", str, target, where),
                )
            )
        elif kind == "redacted_thinking":
            encrypted = _field(block, "data", str, target, where)
            thinking.append(ThinkingBlock(type="redacted_thinking", data=encrypted))
        elif kind == "tool_use":
            name = _field(block, "name", str, target, where)
            arguments = json_text(_field(block, "input", dict, target, where))
            if name == JSON_TOOL_NAME:
                texts.append(arguments)
                json_answer = True
            else:
                call_id = _field(block, "id", str, target, where)
                calls.append(
                    ToolCall(id=call_id, function=Function(name=name, arguments=arguments))
                )
    counts = _read_counts(_field(data, "usage", dict, target, "response"), target, "response.usage")
    for key in ("input_tokens", "output_tokens"):
        if key not in counts:
            raise malformed(target, f"response.usage.{key}", None)
    stop_reason = data.get("stop_reason")
    thoughts = [block.thinking for block in thinking if block.thinking is not None]
    message = ChatCompletionMessage(
        content="".join(texts) if texts else None,
        tool_calls=tuple(calls) or None,
        refusal=_refusal(stop_reason, data.get("stop_details")),
        reasoning_content="".join(thoughts) if thoughts else None,
        thinking_blocks=tuple(thinking) or None,
    )
    finish = _finish_reason(stop_reason, target, json_answer=json_answer and not calls)
    return ChatCompletion(
        id=_field(data, "id", str, target, "response"),
        created=0,
        model=_field(data, "model", str, target, "response"),
        choices=(Choice(index=0, message=message, finish_reason=finish),),
        usage=_usage(counts),
    )


def parse_error(
    status: int, headers: httpx.Headers, body: bytes, target: Target, *, now: float
) -> ProviderError:
    """The typed error for a non-2xx answer with an Anthropic error body (or any other body:
    a proxy's HTML page still gives the status's class, with an excerpt)."""
    text = body.decode("utf-8", "replace")
    try:
        data = load_json(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    error_type, message, body_request_id = _error_details(data)
    if message is None:
        message = f"the body holds no Anthropic error object: {text[:200]!r}"
    return error_for_status(
        status,
        message,
        code=error_type,
        request_id=first_header(headers, "request-id") or body_request_id,
        retry_after=retry_after_seconds(headers, now=now),
        deployment=target.deployment,
        body=text,
        model_not_found=_names_missing_model(status, error_type, message),
        overloaded=error_type == "overloaded_error",
        context_length=is_context_length_error(status, error_type, message),
    )


# --------------------------------------------------------------------------- streams


@attrs.define
class _Block:
    """What one open content block of a stream turns into."""

    kind: Literal["text", "tool", "json", "thinking", "redacted_thinking", "other"]
    tool_index: int = 0
    start_input: dict[str, Any] = attrs.field(factory=dict)
    has_arguments: bool = False
    # A thinking block's text so far and its signature; a redacted block's data.
    thinking: list[str] = attrs.field(factory=list)
    signature: str = ""
    data: str = ""


class AnthropicStreamDecoder:
    """Turns a Messages API event stream into OpenAI-shaped chunks, a feed at a time.

    Emits a role chunk at ``message_start``, content and tool-call deltas as they come, a
    finish chunk at ``message_delta`` and a usage chunk with no choices at ``message_stop``,
    the terminal event (none when the counts are ones no vendor could bill, see
    ``Usage.reported``). ``usage`` is known from ``message_start`` on (input tokens; output
    tokens so far) and final at ``message_delta``.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self._parser = SSEParser()
        self._id = ""
        self._model = ""
        self._started = False
        self._done = False
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._json_answer = False
        self._counts: dict[str, int] = {}

    @property
    def done(self) -> bool:
        return self._done

    @property
    def usage(self) -> Usage | None:
        return _usage(self._counts) if self._started else None

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        try:
            events = self._parser.feed(data)
        except ResponseFormatError as exc:
            raise self._with_deployment(exc) from None
        return self._handle_all(events)

    def close(self) -> list[ChatCompletionChunk]:
        try:
            events = self._parser.close()
        except ResponseFormatError as exc:
            raise self._with_deployment(exc) from None
        chunks = self._handle_all(events)
        if not self._done:
            raise ResponseFormatError(
                f"{self._target.deployment}: the Anthropic stream ended before its "
                "message_stop event, so the answer is incomplete (the connection dropped or "
                "a proxy cut it). Retry the call.",
                deployment=self._target.deployment,
            )
        return chunks

    def _with_deployment(self, exc: ResponseFormatError) -> ResponseFormatError:
        return ResponseFormatError(
            f"{self._target.deployment}: {exc}",
            deployment=self._target.deployment,
            excerpt=exc.excerpt,
        )

    def _handle_all(self, events: list[ServerSentEvent]) -> list[ChatCompletionChunk]:
        chunks: list[ChatCompletionChunk] = []
        for event in events:
            chunks.extend(self._handle(event))
        return chunks

    def _handle(self, event: ServerSentEvent) -> list[ChatCompletionChunk]:
        if self._done:
            return []  # nothing after message_stop belongs to this answer
        payload = decode_json(event.data.encode(), self._target, what="stream event")
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise malformed(self._target, "stream event type", payload)
        kind = payload["type"]
        if kind == "error":
            raise _stream_error(payload, self._target)
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []  # ping, or an event type newer than this code
        if kind == "message_start" and self._started:
            raise self._out_of_order("a second message_start", event)
        if kind != "message_start" and not self._started:
            raise self._out_of_order(f"{kind} before message_start", event)
        return handler(self, payload)

    def _out_of_order(self, what: str, event: ServerSentEvent) -> ResponseFormatError:
        return ResponseFormatError(
            f"{self._target.deployment}: the Anthropic stream sent {what}; the stream is "
            "malformed. Retry the call.",
            deployment=self._target.deployment,
            excerpt=event.data,
        )

    def _chunk(
        self, delta: ChoiceDelta, finish_reason: FinishReason | None = None
    ) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)
        return ChatCompletionChunk(id=self._id, created=0, model=self._model, choices=(choice,))

    def _on_message_start(self, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
        message = _field(payload, "message", dict, self._target, "message_start")
        self._id = _field(message, "id", str, self._target, "message_start.message")
        self._model = _field(message, "model", str, self._target, "message_start.message")
        self._update_counts(message.get("usage"), "message_start.message.usage")
        self._started = True
        return [self._chunk(ChoiceDelta(role="assistant", content=""))]

    def _on_block_start(self, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
        index = _field(payload, "index", int, self._target, "content_block_start")
        block = _field(payload, "content_block", dict, self._target, "content_block_start")
        where = "content_block_start.content_block"
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            text = block.get("text")
            return (
                [self._chunk(ChoiceDelta(content=text))] if isinstance(text, str) and text else []
            )
        if kind == "thinking":
            text = block.get("thinking")
            text = text if isinstance(text, str) else ""
            signature = block.get("signature")
            self._blocks[index] = _Block(
                "thinking",
                thinking=[text],
                signature=signature if isinstance(signature, str) else "",
            )
            return [self._chunk(ChoiceDelta(reasoning_content=text))] if text else []
        if kind == "redacted_thinking":
            data = _field(block, "data", str, self._target, where)
            self._blocks[index] = _Block("redacted_thinking", data=data)
            return []
        if kind != "tool_use":
            self._blocks[index] = _Block("other")
            return []
        name = _field(block, "name", str, self._target, where)
        start_input = block.get("input")
        start_input = start_input if isinstance(start_input, dict) else {}
        if name == JSON_TOOL_NAME:
            self._blocks[index] = _Block("json", start_input=start_input)
            self._json_answer = True
            return []
        call_id = _field(block, "id", str, self._target, where)
        self._blocks[index] = _Block("tool", tool_index=self._tool_calls, start_input=start_input)
        self._tool_calls += 1
        call = ChoiceDeltaToolCall(
            index=self._blocks[index].tool_index,
            id=call_id,
            type="function",
            function=ChoiceDeltaToolCallFunction(name=name, arguments=""),
        )
        return [self._chunk(ChoiceDelta(tool_calls=(call,)))]

    def _on_block_delta(self, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
        block = self._block(payload, "content_block_delta")
        delta = _field(payload, "delta", dict, self._target, "content_block_delta")
        kind = delta.get("type")
        # Deltas that carry nothing for the OpenAI shape (citations, a server tool's input)
        # are skipped; a signature is kept for the thinking block's end.
        where = "content_block_delta.delta"
        if block.kind == "text" and kind == "text_delta":
            text = _field(delta, "text", str, self._target, where)
            return [self._chunk(ChoiceDelta(content=text))] if text else []
        if block.kind == "thinking" and kind == "thinking_delta":
            text = _field(delta, "thinking", str, self._target, where)
            block.thinking.append(text)
            return [self._chunk(ChoiceDelta(reasoning_content=text))] if text else []
        if block.kind == "thinking" and kind == "signature_delta":
            block.signature = _field(delta, "signature", str, self._target, where)
            return []
        if block.kind in ("tool", "json") and kind == "input_json_delta":
            part = _field(delta, "partial_json", str, self._target, "content_block_delta.delta")
            return [self._arguments(block, part)] if part else []
        return []

    def _on_block_stop(self, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
        block = self._block(payload, "content_block_stop")
        if block.kind == "thinking":
            whole = ThinkingBlock(
                type="thinking", thinking="".join(block.thinking), signature=block.signature
            )
            return [self._chunk(ChoiceDelta(thinking_blocks=(whole,)))]
        if block.kind == "redacted_thinking":
            whole = ThinkingBlock(type="redacted_thinking", data=block.data)
            return [self._chunk(ChoiceDelta(thinking_blocks=(whole,)))]
        if block.kind in ("tool", "json") and not block.has_arguments:
            # No input_json_delta came (a call without arguments): the input is the one the
            # block started with, so clients accumulating arguments still get valid JSON.
            return [self._arguments(block, json_text(block.start_input))]
        return []

    def _on_message_delta(self, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
        delta = _field(payload, "delta", dict, self._target, "message_delta")
        self._update_counts(payload.get("usage"), "message_delta.usage")
        stop_reason = delta.get("stop_reason")
        if stop_reason is None:
            return []
        only_json = self._json_answer and self._tool_calls == 0
        finish = _finish_reason(stop_reason, self._target, json_answer=only_json)
        refusal = _refusal(stop_reason, delta.get("stop_details"))
        return [self._chunk(ChoiceDelta(refusal=refusal), finish)]

    def _on_message_stop(self, payload: dict[str, Any]) -> list[ChatCompletionChunk]:
        self._done = True
        usage = self.usage
        if usage is None:  # counts no vendor could bill: the stream ends without usage
            return []
        return [
            ChatCompletionChunk(id=self._id, created=0, model=self._model, choices=(), usage=usage)
        ]

    def _block(self, payload: dict[str, Any], where: str) -> _Block:
        index = _field(payload, "index", int, self._target, where)
        block = self._blocks.get(index)
        if block is None:
            raise malformed(
                self._target, f"{where}.index (no content block {index} started)", index
            )
        return block

    def _arguments(self, block: _Block, text: str) -> ChatCompletionChunk:
        block.has_arguments = True
        if block.kind == "json":
            return self._chunk(ChoiceDelta(content=text))
        call = ChoiceDeltaToolCall(
            index=block.tool_index, function=ChoiceDeltaToolCallFunction(arguments=text)
        )
        return self._chunk(ChoiceDelta(tool_calls=(call,)))

    def _update_counts(self, usage: object, where: str) -> None:
        # Stream counts are cumulative: a later event's value replaces an earlier one.
        if isinstance(usage, dict):
            self._counts.update(_read_counts(usage, self._target, where))


_Handler = Callable[[AnthropicStreamDecoder, dict[str, Any]], list[ChatCompletionChunk]]

# Event type -> handler; "ping" and unknown types are absent and skipped.
_HANDLERS: Mapping[str, _Handler] = {
    "message_start": AnthropicStreamDecoder._on_message_start,
    "content_block_start": AnthropicStreamDecoder._on_block_start,
    "content_block_delta": AnthropicStreamDecoder._on_block_delta,
    "content_block_stop": AnthropicStreamDecoder._on_block_stop,
    "message_delta": AnthropicStreamDecoder._on_message_delta,
    "message_stop": AnthropicStreamDecoder._on_message_stop,
}


# --------------------------------------------------------------------------- shared pieces


def json_text(value: Any) -> str:
    """JSON text as OpenAI writes tool arguments: compact, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def malformed(target: Target, field: str, value: object) -> ResponseFormatError:
    found = "nothing" if value is None else f"a {type(value).__name__}"
    return ResponseFormatError(
        f"{target.deployment}: the Anthropic answer has no valid `{field}` (found {found}), "
        "so it is not a Messages API answer. Check that the provider's base_url points at the "
        "Anthropic API; retry if it persists.",
        deployment=target.deployment,
        excerpt=repr(value),
    )


def _field(data: Mapping[str, Any], key: str, kind: type[_T], target: Target, where: str) -> _T:
    value = data.get(key)
    # bool is an int in Python, never in a vendor's JSON schema.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise malformed(target, f"{where}.{key}", value)
    return value


def _finish_reason(
    stop_reason: object, target: Target, *, json_answer: bool
) -> FinishReason | None:
    if stop_reason is None:
        return None
    if not isinstance(stop_reason, str):
        raise malformed(target, "stop_reason", stop_reason)
    finish = _FINISH_REASONS.get(stop_reason, "stop")
    return "stop" if finish == "tool_calls" and json_answer else finish


def _refusal(stop_reason: object, details: object) -> str | None:
    """Anthropic's explanation of a refusal, when it gives one (OpenAI's ``refusal``)."""
    if stop_reason != "refusal" or not isinstance(details, dict):
        return None
    explanation = details.get("explanation")
    return explanation if isinstance(explanation, str) else None


def _read_counts(usage: Mapping[str, Any], target: Target, where: str) -> dict[str, int]:
    """The token counts an Anthropic usage object holds; absent or null ones are left out.
    Whether a count is one a vendor could bill is for ``Usage.reported`` to say."""
    counts: dict[str, int] = {}
    for key in _COUNT_FIELDS:
        value = usage.get(key)
        if value is None:
            continue
        if not _is_count(value):
            raise malformed(target, f"{where}.{key}", value)
        counts[key] = value
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and _is_count(details.get("thinking_tokens")):
        counts["thinking_tokens"] = details["thinking_tokens"]
    return counts


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _usage(counts: Mapping[str, int]) -> Usage | None:
    cache_read = counts.get("cache_read_input_tokens", 0)
    prompt = (
        counts.get("input_tokens", 0),
        cache_read,
        counts.get("cache_creation_input_tokens", 0),
    )
    return Usage.reported(
        prompt,
        (counts.get("output_tokens", 0),),
        cached_tokens=cache_read,
        reasoning_tokens=counts.get("thinking_tokens", 0),
    )


def _error_details(data: object) -> tuple[str | None, str | None, str | None]:
    """(error type, message, request id) from an Anthropic error object, each None if absent."""
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    error = error if isinstance(error, dict) else {}
    error_type, message, request_id = (
        error.get("type"),
        error.get("message"),
        data.get("request_id"),
    )
    return (
        error_type if isinstance(error_type, str) else None,
        message if isinstance(message, str) else None,
        request_id if isinstance(request_id, str) else None,
    )


def _names_missing_model(status: int, error_type: str | None, message: str) -> bool:
    # Anthropic says "model: claude-x" for an unknown model; other 404s (a wrong base_url
    # path) are plain NotFoundError.
    return status == 404 and error_type == "not_found_error" and "model" in message.lower()


def _stream_error(payload: dict[str, Any], target: Target) -> ProviderError:
    error_type, message, request_id = _error_details(payload)
    status = _ERROR_STATUS.get(error_type or "", 500)
    message = message or "the stream's error event carried no message"
    return error_for_status(
        status,
        message,
        code=error_type,
        request_id=request_id,
        deployment=target.deployment,
        body=json.dumps(payload),
        model_not_found=_names_missing_model(status, error_type, message),
        overloaded=error_type == "overloaded_error",
        context_length=is_context_length_error(status, error_type, message),
    )
