"""What the fake answers, before any vendor's shape is put on it. Pure: no I/O, no clock.

A vendor format reads a request into an ``Exchange`` (the model, the last user text, the limits
that matter); ``compose_reply`` turns an exchange and a scripted ``Behaviour`` into a ``Reply``;
the vendor format then renders the reply as its JSON body or its stream of events.

The default reply is ``"Fake reply from {model}: {first 40 chars of the last user text}"``.
A request that asks for thinking (``Exchange.thinking``) is answered with thoughts first, by
default ``"Fake thoughts of {model}: {the same echo}"``; they count as output tokens, within
``max_tokens`` (the reply gets what they leave), and are reported as the vendor reports them.

Token counts are a documented, stable approximation, not any real tokenizer:

* a text counts ``ceil(len(text) / 4)`` tokens;
* a prompt counts ``PRIMING_TOKENS``, plus for each message (a system prompt counts as one)
  ``PER_MESSAGE_TOKENS`` plus the tokens of its text: its text parts, plus the canonical JSON
  (sorted keys, no spaces) of every other part and of every field besides role and content;
* the tool definitions count the tokens of their canonical JSON;
* a reply's tokens are its words: each run of non-space characters with the spaces before it is
  one token, so ``max_tokens=3`` cuts ``"Fake reply from gpt-4o: hi"`` to ``"Fake reply from"``;
  a tool call counts the tokens of its name plus the canonical JSON of its arguments.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from guardedllm.testing._script import Behaviour, Endpoint, ScriptedToolCall, Vendor

__all__ = [
    "Exchange",
    "Failure",
    "Rejected",
    "Reply",
    "Route",
    "StreamEvent",
    "VendorFormat",
    "compose_reply",
    "count_prompt_tokens",
    "count_text_tokens",
    "split_pieces",
]

# A chat template's fixed cost around the messages (OpenAI's documented "every reply is primed
# with <|start|>assistant<|message|>" is 3 tokens).
PRIMING_TOKENS = 3
# Per-message framing (role and separators), the figure OpenAI's cookbook uses.
PER_MESSAGE_TOKENS = 4
# Words per streamed piece when a script does not say: several pieces for a default reply, so
# a stream has a middle to cut or corrupt.
DEFAULT_TOKENS_PER_PIECE = 3
# How much of the last user text the default reply echoes: enough to tell replies apart.
ECHO_CHARS = 40

_TOKEN = re.compile(r"\s*\S+|\s+")

FailureKind = Literal[
    "status",
    "model_not_found",
    "missing_key",
    "wrong_key",
    "malformed_json",
    "invalid_request",
    "unknown_route",
]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def count_text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def content_text(content: Any, *, text_only: bool = False) -> str:
    """The text of a message's content in any vendor's shape (a string, or a list of parts
    with ``text``); other parts count as their canonical JSON unless ``text_only``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            pieces.append(part["text"])
        elif isinstance(part, str):
            pieces.append(part)
        elif not text_only:
            pieces.append(canonical_json(part))
    return "".join(pieces)


def message_text(message: Any, *, content_key: str) -> str:
    """A message's text for counting: its content plus every field besides role."""
    if not isinstance(message, Mapping):
        return canonical_json(message)
    rest = {k: v for k, v in message.items() if k not in ("role", content_key)}
    return content_text(message.get(content_key)) + (canonical_json(rest) if rest else "")


def count_prompt_tokens(message_texts: Iterable[str], tools: Any = None) -> int:
    total = PRIMING_TOKENS
    for text in message_texts:
        total += PER_MESSAGE_TOKENS + count_text_tokens(text)
    if tools:
        total += count_text_tokens(canonical_json(tools))
    return total


def split_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _split_even(items: Sequence[str], count: int) -> list[str]:
    size, extra = divmod(len(items), count)
    out: list[str] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append("".join(items[start:end]))
        start = end
    return out


def split_pieces(text: str, chunks: int | None) -> tuple[str, ...]:
    """Cut ``text`` into stream pieces: ``DEFAULT_TOKENS_PER_PIECE`` words each, or exactly
    ``chunks`` pieces as even as possible (by words, or by characters when there are fewer
    words than pieces; never more pieces than characters)."""
    if not text:
        return ()
    tokens = split_tokens(text)
    if chunks is None:
        step = DEFAULT_TOKENS_PER_PIECE
        return tuple("".join(tokens[i : i + step]) for i in range(0, len(tokens), step))
    if len(tokens) >= chunks:
        return tuple(_split_even(tokens, chunks))
    return tuple(_split_even(list(text), min(chunks, len(text))))


@attrs.frozen(kw_only=True)
class Route:
    """Where a request went: the vendor and endpoint its path belongs to, and what the path
    itself says (Azure and Gemini put the model in the path; Gemini the streaming too)."""

    vendor: Vendor
    endpoint: Endpoint
    path_model: str | None = None
    stream: bool = False
    batch: bool = False  # Gemini's batchEmbedContents (embedContent takes one input)


@attrs.frozen(kw_only=True)
class Exchange:
    """What the fake understood of one valid request."""

    vendor: Vendor
    endpoint: Endpoint
    model: str
    stream: bool = False
    include_usage: bool = False  # OpenAI stream_options.include_usage
    max_tokens: int | None = None
    has_tools: bool = False
    last_user_text: str = ""
    prompt_tokens: int = 0
    sse: bool = True  # Gemini streams as SSE with alt=sse, else as a JSON array
    thinking: bool = False  # the request asks to see the model's thinking


@attrs.frozen(kw_only=True)
class Reply:
    """One answer, vendor-neutral. ``finish`` is in OpenAI's words ("stop", "length",
    "tool_calls", "content_filter") or a vendor value a script gave verbatim."""

    text: str | None
    tool_calls: tuple[ScriptedToolCall, ...]
    finish: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    pieces: tuple[str, ...]
    # The thinking, when the request asked for it: its text, its pieces in a stream, and its
    # tokens (part of ``completion_tokens``).
    reasoning: str | None = None
    reasoning_pieces: tuple[str, ...] = ()
    reasoning_tokens: int = 0


def default_text(exchange: Exchange) -> str:
    echo = exchange.last_user_text[:ECHO_CHARS]
    return f"Fake reply from {exchange.model}: {echo}".rstrip()


def default_reasoning(exchange: Exchange) -> str:
    echo = exchange.last_user_text[:ECHO_CHARS]
    return f"Fake thoughts of {exchange.model}: {echo}".rstrip()


def _cut(text: str, limit: int | None) -> tuple[str, int, bool]:
    """``text`` cut to ``limit`` tokens: the text, its tokens, and whether it was cut."""
    tokens = split_tokens(text)
    if limit is not None and len(tokens) > limit:
        tokens = tokens[: max(0, limit)]
        return "".join(tokens), len(tokens), True
    return text, len(tokens), False


def compose_reply(exchange: Exchange, behaviour: Behaviour) -> Reply:
    """The reply to ``exchange``: scripted content or the default, cut to ``max_tokens``.

    Scripted tool calls are used only when the request declared tools, as a real model does;
    without scripted content a tool-call reply has no text.
    """
    tool_calls = behaviour.tool_calls if exchange.has_tools and behaviour.tool_calls else ()
    text: str | None
    if behaviour.content is not None:
        text = behaviour.content
    elif tool_calls:
        text = None
    else:
        text = default_text(exchange)
    reasoning: str | None = None
    reasoning_tokens = 0
    truncated = False
    limit = exchange.max_tokens
    if exchange.thinking:
        # Thinking comes first and counts within max_tokens, as the vendors count it.
        thoughts = behaviour.reasoning
        reasoning, reasoning_tokens, truncated = _cut(
            default_reasoning(exchange) if thoughts is None else thoughts, limit
        )
        limit = None if limit is None else limit - reasoning_tokens
    text_tokens = 0
    if text is not None:
        text, text_tokens, cut = _cut(text, limit)
        truncated = truncated or cut
    call_tokens = sum(
        count_text_tokens(call.name + canonical_json(call.arguments)) for call in tool_calls
    )
    if behaviour.finish_reason is not None:
        finish = behaviour.finish_reason
    elif truncated:
        finish = "length"
    elif tool_calls:
        finish = "tool_calls"
    else:
        finish = "stop"
    usage = behaviour.usage
    prompt = exchange.prompt_tokens
    completion = reasoning_tokens + text_tokens + call_tokens
    cached = 0
    if usage is not None:
        prompt = prompt if usage.prompt_tokens is None else usage.prompt_tokens
        completion = completion if usage.completion_tokens is None else usage.completion_tokens
        cached = cached if usage.cached_tokens is None else usage.cached_tokens
    return Reply(
        text=text,
        tool_calls=tool_calls,
        finish=finish,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        pieces=split_pieces(text or "", behaviour.chunks),
        reasoning=reasoning,
        reasoning_pieces=split_pieces(reasoning or "", behaviour.chunks),
        reasoning_tokens=min(reasoning_tokens, completion),
    )


@attrs.frozen(kw_only=True)
class Failure:
    """An error answer, vendor-neutral; each vendor format renders it in its own shape.

    ``message`` / ``code`` replace the vendor's defaults when given (a script's
    ``error_message`` / ``error_code``).
    """

    kind: FailureKind
    status: int
    message: str | None = None
    code: str | None = None
    model: str = ""
    param: str | None = None
    route: str = ""  # "METHOD /path" of a request to a path the vendor does not serve


class Rejected(Exception):
    """Raised by a vendor format while reading a request the vendor would refuse."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message or failure.kind)
        self.failure = failure


@attrs.frozen(kw_only=True)
class StreamEvent:
    """One event of a stream, already framed as bytes.

    ``kind`` drives the scripted faults: "piece" events carry content (they are what
    ``cut_after_chunks`` counts), "close" events end the stream (a cut never sends them),
    "open" and "frame" events are the vendor's bookkeeping around the pieces.
    """

    kind: Literal["open", "piece", "frame", "close"]
    data: bytes


class VendorFormat(Protocol):
    """One vendor's wire format, as the fake serves it."""

    vendor: Vendor
    json_content_type: str

    def stream_content_type(self, exchange: Exchange) -> str: ...

    def interpret(self, route: Route, payload: Any, query: Mapping[str, str]) -> Exchange:
        """Read a parsed request body. Raises ``Rejected`` as the vendor would refuse it."""
        ...

    def preflight(self, route: Route, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Refuse (``Rejected``) a request missing something the vendor requires outside the
        body (Anthropic's version header, Azure's api-version)."""
        ...

    def credential(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The API key the request carries, where this vendor takes it."""
        ...

    def response_headers(self, number: int) -> dict[str, str]:
        """Headers the vendor puts on every answer (request ids), for request ``number``."""
        ...

    def error(self, failure: Failure) -> tuple[int, dict[str, Any]]:
        """The status and JSON body this vendor sends for ``failure``."""
        ...

    def completion(self, exchange: Exchange, reply: Reply, number: int) -> dict[str, Any]: ...

    def count_tokens(self, exchange: Exchange) -> dict[str, Any]: ...

    def stream(self, exchange: Exchange, reply: Reply, number: int) -> list[StreamEvent]: ...

    def malformed_event(self) -> bytes:
        """An event whose data is not JSON, framed as this vendor frames events."""
        ...
