"""Building records: a call's facts in, one dict per docs/record-format.md out. Pure.

What a record may hold is decided here, once, for every caller:

- Never a header, an API key or an error's message (which may quote a vendor's echo of the
  request): an error is its class name only. Never the request's ``user`` (an identity) or its
  ``extra_headers``.
- With ``content="none"``, nothing the caller wrote: counts (messages, tools, tokens), numbers
  and flags; ``response_format`` by its type, ``tool_choice`` by its kind, ``stop`` by how many,
  other parameters only when they are numbers, flags or one of a few short enumerations.
- With ``content="full"``, the OpenAI-shaped body besides (``body_of``), serialized on the
  caller's thread: its messages are the caller's own dicts, which the caller may change once the
  call returns, while the writer thread would still be reading them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from guardedllm.estimate import TokenCount
from guardedllm.types import (
    Attempt,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Usage,
)

__all__ = ["FORMAT_VERSION", "body_of", "call_record", "finish_reason_of", "shadow_record"]

# The version of docs/record-format.md these records follow; readers refuse a higher one.
FORMAT_VERSION: Final = 1

# ``extra`` parameters whose string values are short enumerations, not text the caller wrote:
# they change what a call costs (reasoning effort, service tier), which simulate needs.
_ENUM_PARAMS: Final = frozenset({"reasoning_effort", "service_tier", "verbosity", "modalities"})


def params_of(request: ChatRequest) -> dict[str, Any]:
    """The request's sampling parameters besides messages, tools and max_tokens, as shapes."""
    params: dict[str, Any] = {}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.seed is not None:
        params["seed"] = request.seed
    if request.stop is not None:
        params["stop"] = len(request.stop)
    if request.tool_choice is not None:
        choice = request.tool_choice
        params["tool_choice"] = choice if isinstance(choice, str) else "function"
    if request.response_format is not None:
        params["response_format"] = str(request.response_format.get("type", "unknown"))
    for name, value in request.extra.items():
        enumeration = name in _ENUM_PARAMS and isinstance(value, str) and len(value) <= 32
        if enumeration or value is None or isinstance(value, (bool, int, float)):
            params[name] = value
    return params


def body_of(request: ChatRequest) -> str:
    """The request as an OpenAI chat-completions body, serialized: what simulate re-tokenizes.
    Without ``user``, headers or anything but the request's own fields."""
    body: dict[str, Any] = {"model": request.model, "messages": list(request.messages)}
    if request.tools is not None:
        body["tools"] = list(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    for name in ("temperature", "top_p", "seed", "response_format"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop is not None:
        body["stop"] = list(request.stop)
    if request.stream:
        body["stream"] = True
    for name, value in request.extra.items():
        body.setdefault(name, value)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=repr)


def finish_reason_of(
    completion: ChatCompletion | None, chunks: Sequence[ChatCompletionChunk] = ()
) -> str | None:
    """The first choice's finish reason: of an answer, or the last a stream's chunks gave."""
    if completion is not None:
        return completion.choices[0].finish_reason if completion.choices else None
    for chunk in reversed(chunks):
        for choice in chunk.choices:
            if choice.index == 0 and choice.finish_reason is not None:
                return choice.finish_reason
    return None


def call_record(
    *,
    id: str,
    time: float,
    env: str | None,
    request: ChatRequest,
    counts: Mapping[str, TokenCount],
    route: str | None,
    split: tuple[str, str] | None,
    shadow_of: str | None,
    deployment: str | None,
    vendor_model: str | None,
    status: str,
    error_type: str | None,
    attempts: Sequence[Attempt],
    escalated: bool,
    latency_s: float,
    first_chunk_s: float | None,
    usage: Usage | None,
    cost_usd: float | None,
    finish_reason: str | None,
) -> dict[str, Any]:
    """One ``"kind": "call"`` record (docs/record-format.md). ``counts`` are the prompt's token
    counts by tokenizer; ``attempts`` the call's, skips included (they are not counted)."""
    sent = retries = fallbacks = 0
    for attempt in attempts:
        if attempt.outcome == "skipped":
            continue
        sent += 1
        if attempt.number > 1:
            retries += 1
        elif attempt.retry_reason is not None and attempt.retry_reason != "hedge":
            fallbacks += 1
    return {
        "v": FORMAT_VERSION,
        "kind": "call",
        "id": id,
        "time": round(time, 3),
        "env": env,
        "requested": request.model,
        "route": route,
        "split": split[0] if split is not None else None,
        "arm": split[1] if split is not None else None,
        "shadow_of": shadow_of,
        "deployment": deployment,
        "vendor_model": vendor_model,
        "request": {
            "messages": len(request.messages),
            "tokens": {name: count.tokens for name, count in counts.items()},
            "exact": {name: count.exact for name, count in counts.items()},
            "tools": len(request.tools) if request.tools else 0,
            "max_tokens": request.max_tokens,
            "stream": request.stream,
            "params": params_of(request),
        },
        "body": None,
        "outcome": {
            "status": status,
            "error_type": error_type,
            "attempts": sent,
            "retries": retries,
            "fallbacks": fallbacks,
            "escalated": escalated,
            "latency_s": round(latency_s, 6),
            "first_chunk_s": round(first_chunk_s, 6) if first_chunk_s is not None else None,
            "input_tokens": usage.prompt_tokens if usage is not None else None,
            "output_tokens": usage.completion_tokens if usage is not None else None,
            "cost_usd": cost_usd,
            "finish_reason": finish_reason,
        },
    }


def shadow_record(
    *,
    id: str,
    time: float,
    route: str,
    candidate: str,
    primary_deployment: str | None,
    primary_ok: bool,
    primary_latency_s: float,
    primary_cost_usd: float | None,
    ok: bool,
    error_type: str | None,
    latency_s: float,
    cost_usd: float | None,
    same_content: bool | None,
) -> dict[str, Any]:
    """One ``"kind": "shadow"`` record: a shadow copy beside the call it copied (``id``)."""
    return {
        "v": FORMAT_VERSION,
        "kind": "shadow",
        "time": round(time, 3),
        "id": id,
        "route": route,
        "candidate": candidate,
        "primary": {
            "deployment": primary_deployment,
            "ok": primary_ok,
            "latency_s": round(primary_latency_s, 6),
            "cost_usd": primary_cost_usd,
        },
        "copy": {
            "ok": ok,
            "error_type": error_type,
            "latency_s": round(latency_s, 6),
            "cost_usd": cost_usd,
        },
        "same_content": same_content,
    }
