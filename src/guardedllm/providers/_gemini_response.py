"""Reading Gemini answers: ``generateContent`` bodies, SSE streams and error bodies.

Parts marked ``thought`` (sent when the request's ``thinkingConfig.includeThoughts`` asks for
them) are reasoning, not content: their text is ``message.reasoning_content`` (a stream's
``delta.reasoning_content``), never part of ``content``. Their tokens are
``usageMetadata.thoughtsTokenCount``, reported apart from the answer's: they are added to
``completion_tokens`` (Gemini bills them as output) and are its ``reasoning_tokens``.

Gemini function calls usually have no id, so a call without one gets ``call_<n>``, numbered in
the order of the response: deterministic, since this module reads no clock and draws no random
numbers.

Streams (``streamGenerateContent?alt=sse``) carry one whole ``GenerateContentResponse`` per
event, each holding the next piece, with no terminal sentinel: the stream is complete once a
candidate carries a ``finishReason``. ``usageMetadata`` is cumulative, and the event carrying
the finish reason (or a later one) holds the final counts.

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from guardedllm.errors import ProviderError, ResponseFormatError, error_for_status
from guardedllm.providers._sse import SSEParser
from guardedllm.providers.base import (
    Target,
    decode_json,
    is_context_length_error,
    load_json,
    wait_seconds,
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
    ToolCall,
    Usage,
)

__all__ = ["GeminiStreamDecoder", "parse_error_payload", "parse_response"]

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

# A retry delay in google.rpc.RetryInfo: a protobuf Duration as JSON, like "2s" or "0.5s".
_DURATION = re.compile(r"(\d+(?:\.\d+)?)s")


def parse_response(body: bytes, target: Target) -> ChatCompletion:
    """The ``ChatCompletion`` in a 2xx ``generateContent`` body."""
    data = decode_json(body, target)
    read = _Reader(target, body[:200].decode("utf-8", "replace"))
    payload = read.obj(data, "the body")
    candidates = read.opt_list(payload, "candidates", "response")
    if candidates:
        piece = _read_candidate(read.obj(candidates[0], "candidates[0]"), read, 0)
        calls = tuple(
            ToolCall(id=c.id or f"call_{n}", function=Function(name=c.name, arguments=c.arguments))
            for n, c in enumerate(piece.calls)
        )
        message = ChatCompletionMessage(
            content=piece.text, tool_calls=calls or None, reasoning_content=piece.reasoning
        )
        finish = _finish_reason(piece.finish_reason, has_calls=bool(calls))
    elif _block_reason(payload, read) is not None:
        # The prompt itself was blocked: no candidate at all, only the reason.
        message = ChatCompletionMessage(content=None)
        finish = "content_filter"
    else:
        raise read.bad("candidates", "missing or empty, and promptFeedback.blockReason is absent")
    return ChatCompletion(
        id=read.opt_str(payload, "responseId", "response") or "",
        created=0,  # Gemini's answer has no creation time, and this module reads no clock
        model=read.opt_str(payload, "modelVersion", "response") or target.model,
        choices=(Choice(index=0, message=message, finish_reason=finish),),
        usage=_usage(payload, read),
    )


def parse_error_payload(
    status: int,
    body: bytes,
    target: Target,
    *,
    request_id: str | None,
    retry_after: float | None,
) -> ProviderError:
    """The typed error for a non-2xx answer with ``body``; the headers were read by the caller."""
    try:
        data = load_json(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    # The streaming endpoint can answer an error as a one-element JSON array.
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(error, Mapping):
        error = {"message": f"a body that is not a Gemini error ({len(body)} bytes)"}
    return _provider_error(
        status,
        error,
        target,
        request_id=request_id,
        retry_after=retry_after,
        body=body.decode("utf-8", "replace"),
    )


class _Reader:
    """Typed reads of a Gemini body; each failure names the field and the deployment."""

    def __init__(self, target: Target, excerpt: str) -> None:
        self.target = target
        self.excerpt = excerpt

    def bad(self, field: str, problem: str) -> ResponseFormatError:
        deployment = self.target.deployment
        return ResponseFormatError(
            f"{deployment}: in the Gemini response, {field} is {problem}; the provider sent "
            "a body guardedllm cannot read. Retry, and check that base_url points at the "
            "Gemini API if it persists.",
            deployment=deployment,
            excerpt=self.excerpt,
        )

    def obj(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.bad(field, f"{type(value).__name__}, not an object")
        return value

    def opt_obj(self, parent: Mapping[str, Any], key: str, at: str) -> Mapping[str, Any]:
        value = parent.get(key)
        return {} if value is None else self.obj(value, f"{at}.{key}")

    def opt_list(self, parent: Mapping[str, Any], key: str, at: str) -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.bad(f"{at}.{key}", f"{type(value).__name__}, not a list")
        return value

    def opt_str(self, parent: Mapping[str, Any], key: str, at: str) -> str | None:
        value = parent.get(key)
        if value is not None and not isinstance(value, str):
            raise self.bad(f"{at}.{key}", f"{type(value).__name__}, not a string")
        return value

    def count(self, parent: Mapping[str, Any], key: str, at: str) -> int:
        """An integer count (0 when absent); whether it is one a vendor could bill is for
        ``Usage.reported`` to say."""
        value = parent.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.bad(f"{at}.{key}", f"{value!r}, not a token count")
        return value


@attrs.frozen(kw_only=True)
class _Call:
    id: str | None
    name: str
    arguments: str  # JSON text


@attrs.frozen(kw_only=True)
class _Piece:
    """What one candidate (or one streamed piece of it) holds."""

    text: str | None  # None when it has no non-thought text part
    calls: tuple[_Call, ...]
    finish_reason: str | None
    reasoning: str | None = None  # None when it has no thought part


def _read_candidate(candidate: Mapping[str, Any], read: _Reader, index: int) -> _Piece:
    at = f"candidates[{index}]"
    content = read.opt_obj(candidate, "content", at)
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[_Call] = []
    for j, raw in enumerate(read.opt_list(content, "parts", f"{at}.content")):
        part_at = f"{at}.content.parts[{j}]"
        part = read.obj(raw, part_at)
        if "functionCall" in part:
            call = read.obj(part["functionCall"], f"{part_at}.functionCall")
            name = read.opt_str(call, "name", f"{part_at}.functionCall")
            if not name:
                raise read.bad(f"{part_at}.functionCall.name", "missing")
            args = read.opt_obj(call, "args", f"{part_at}.functionCall")
            call_id = read.opt_str(call, "id", f"{part_at}.functionCall")
            calls.append(_Call(id=call_id, name=name, arguments=json.dumps(args)))
        elif "text" in part:
            text = read.opt_str(part, "text", part_at) or ""
            (thoughts if part.get("thought") is True else texts).append(text)
        # Other parts (thought signatures, executable code, generated media) have no place
        # in the OpenAI message shape.
    return _Piece(
        text="".join(texts) if texts else None,
        calls=tuple(calls),
        finish_reason=read.opt_str(candidate, "finishReason", at),
        reasoning="".join(thoughts) if thoughts else None,
    )


def _finish_reason(raw: str | None, *, has_calls: bool) -> FinishReason | None:
    if raw is None:
        return None
    reason = _FINISH_REASONS.get(raw, "stop")
    return "tool_calls" if reason == "stop" and has_calls else reason


def _block_reason(payload: Mapping[str, Any], read: _Reader) -> str | None:
    feedback = read.opt_obj(payload, "promptFeedback", "response")
    return read.opt_str(feedback, "blockReason", "response.promptFeedback")


def _usage(payload: Mapping[str, Any], read: _Reader) -> Usage | None:
    if payload.get("usageMetadata") is None:
        return None
    meta = read.opt_obj(payload, "usageMetadata", "response")
    at = "usageMetadata"
    thoughts = read.count(meta, "thoughtsTokenCount", at)
    return Usage.reported(
        (read.count(meta, "promptTokenCount", at),),
        (read.count(meta, "candidatesTokenCount", at), thoughts),
        cached_tokens=read.count(meta, "cachedContentTokenCount", at),
        reasoning_tokens=thoughts,
    )


# --------------------------------------------------------------------------- errors


def _provider_error(
    status: int,
    error: Mapping[str, Any],
    target: Target,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    body: str = "",
) -> ProviderError:
    message = error.get("message")
    message = message if isinstance(message, str) and message else "no error message"
    code = error.get("status") if isinstance(error.get("status"), str) else None
    if retry_after is None:
        retry_after = _retry_delay(error.get("details"))
    if target.api_key:  # belt and braces: scrub_secrets only knows the common key shapes
        message = message.replace(target.api_key, "[redacted]")
        body = body.replace(target.api_key, "[redacted]")
    return error_for_status(
        status,
        message,
        code=code,
        request_id=request_id,
        retry_after=retry_after,
        deployment=target.deployment,
        body=body,
        model_not_found=status == 404 and code in (None, "NOT_FOUND") and "models/" in message,
        overloaded=code == "UNAVAILABLE" or "overloaded" in message.lower(),
        bad_credentials=_has_reason(error.get("details"), "API_KEY_INVALID"),
        context_length=is_context_length_error(status, code, message),
    )


def _has_reason(details: Any, reason: str) -> bool:
    """Whether a google.rpc.ErrorInfo detail carries ``reason``."""
    if not isinstance(details, list):
        return False
    return any(isinstance(d, Mapping) and d.get("reason") == reason for d in details)


def _retry_delay(details: Any) -> float | None:
    """The delay of a google.rpc.RetryInfo detail, which Gemini sends with 429s."""
    if not isinstance(details, list):
        return None
    for detail in details:
        delay = detail.get("retryDelay") if isinstance(detail, Mapping) else None
        if isinstance(delay, str) and (match := _DURATION.fullmatch(delay.strip())):
            return wait_seconds(match.group(1), unit_s=1.0)
    return None


# --------------------------------------------------------------------------- streams


class GeminiStreamDecoder:
    """Turns a ``streamGenerateContent?alt=sse`` body into OpenAI-shaped chunks."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._parser = SSEParser()
        self._id = ""
        self._model = target.model
        self._started = False
        self._calls = 0  # tool calls so far: the index of the next one
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._usage_sent = False

    @property
    def done(self) -> bool:
        """True once a candidate has carried a finish reason (Gemini has no other terminal)."""
        return self._finish is not None

    @property
    def usage(self) -> Usage | None:
        """The latest cumulative usage; final once ``done``."""
        return self._usage

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        try:
            events = self._parser.feed(data)
        except ResponseFormatError as exc:
            raise self._garbage(str(exc), exc.excerpt) from None
        return [chunk for event in events for chunk in self._on_event(event.data)]

    def close(self) -> list[ChatCompletionChunk]:
        try:
            events = self._parser.close()
        except ResponseFormatError as exc:
            raise self._garbage(str(exc), exc.excerpt) from None
        chunks = [chunk for event in events for chunk in self._on_event(event.data)]
        if self._finish is None:
            raise self._garbage(
                "the stream ended before Gemini sent a finishReason, so the reply is "
                "truncated. Retry the call.",
                "",
            )
        if not self._usage_sent and self._usage is not None:
            chunks.append(self._usage_chunk())
        return chunks

    def _garbage(self, problem: str, excerpt: str) -> ResponseFormatError:
        deployment = self._target.deployment
        return ResponseFormatError(
            f"{deployment}: {problem}", deployment=deployment, excerpt=excerpt
        )

    def _chunk(
        self, delta: ChoiceDelta, finish_reason: FinishReason | None = None
    ) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)
        return ChatCompletionChunk(id=self._id, created=0, model=self._model, choices=(choice,))

    def _usage_chunk(self) -> ChatCompletionChunk:
        self._usage_sent = True
        return ChatCompletionChunk(
            id=self._id, created=0, model=self._model, choices=(), usage=self._usage
        )

    def _on_event(self, data: str) -> list[ChatCompletionChunk]:
        try:
            payload = load_json(data)
        except ValueError:
            payload = None
        if not isinstance(payload, Mapping):
            raise self._garbage(
                "a stream event is not a JSON object; the stream is corrupt. Retry the call.",
                data[:200],
            )
        if isinstance(error := payload.get("error"), Mapping):
            code = error.get("code")
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            raise _provider_error(status, error, self._target, body=data)
        read = _Reader(self._target, data[:200])
        chunks: list[ChatCompletionChunk] = []
        if not self._started:
            self._started = True
            self._id = read.opt_str(payload, "responseId", "event") or ""
            self._model = read.opt_str(payload, "modelVersion", "event") or self._model
            chunks.append(self._chunk(ChoiceDelta(role="assistant", content="")))
        candidates = read.opt_list(payload, "candidates", "event")
        if candidates:
            piece = _read_candidate(read.obj(candidates[0], "candidates[0]"), read, 0)
            chunks.extend(self._on_piece(piece, read))
        elif self._finish is None and _block_reason(payload, read) is not None:
            self._finish = "content_filter"
            chunks.append(self._chunk(ChoiceDelta(), "content_filter"))
        # Counts are cumulative; once the final usage chunk is out, it is what was reported.
        if payload.get("usageMetadata") is not None and not self._usage_sent:
            self._usage = _usage(payload, read)
            if self._finish is not None and self._usage is not None:
                chunks.append(self._usage_chunk())
        return chunks

    def _on_piece(self, piece: _Piece, read: _Reader) -> list[ChatCompletionChunk]:
        if self._finish is not None:
            if piece.text or piece.calls or piece.reasoning:
                raise read.bad("candidates[0].content", "present after the finishReason")
            return []
        chunks: list[ChatCompletionChunk] = []
        if piece.reasoning:
            chunks.append(self._chunk(ChoiceDelta(reasoning_content=piece.reasoning)))
        if piece.text:
            chunks.append(self._chunk(ChoiceDelta(content=piece.text)))
        if piece.calls:
            deltas = []
            for call in piece.calls:
                deltas.append(
                    ChoiceDeltaToolCall(
                        index=self._calls,
                        id=call.id or f"call_{self._calls}",
                        type="function",
                        function=ChoiceDeltaToolCallFunction(
                            name=call.name, arguments=call.arguments
                        ),
                    )
                )
                self._calls += 1
            chunks.append(self._chunk(ChoiceDelta(tool_calls=tuple(deltas))))
        finish = _finish_reason(piece.finish_reason, has_calls=self._calls > 0)
        if finish is not None:
            self._finish = finish
            chunks.append(self._chunk(ChoiceDelta(), finish))
        return chunks
