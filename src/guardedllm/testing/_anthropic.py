"""Anthropic Messages, as the fake serves it.

Shapes follow the Messages API (and what the official ``anthropic`` SDK parses): a ``message``
body with content blocks; a stream of ``message_start``, ``content_block_start``, ``ping``,
``content_block_delta``, ``content_block_stop``, ``message_delta``, ``message_stop`` events;
``{"type": "error", "error": {"type", "message"}}`` errors (529 ``overloaded_error``).

The API key may come as ``x-api-key`` or as ``Authorization: Bearer`` (what recent SDKs send).
As the real API does, a request needs the ``anthropic-version`` header, and a chat request
needs ``max_tokens``. ``usage.input_tokens`` excludes cached input, which is reported apart as
``cache_read_input_tokens``.

Extended thinking (``"thinking": {"type": "enabled", "budget_tokens": N}``) is answered as the
API answers it: a ``thinking`` block with its ``signature`` first in the content, streamed as
``thinking_delta`` events then one ``signature_delta``; its tokens are part of
``output_tokens`` and reported in ``output_tokens_details.thinking_tokens``. As the API does,
the fake refuses a budget under 1024 or not below ``max_tokens``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from guardedllm.testing._replies import (
    Exchange,
    Failure,
    Rejected,
    Reply,
    Route,
    StreamEvent,
    canonical_json,
    content_text,
    count_prompt_tokens,
    message_text,
)
from guardedllm.testing._script import Vendor

__all__ = ["AnthropicFormat"]

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

# status -> (error type, message) when a script gives only a status.
# Anthropic's floor for a thinking budget.
MIN_THINKING_BUDGET = 1024

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (scripted by FakeProvider)."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization. Please retry later.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


_DELTA_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


def _thinking(value: Any, max_tokens: Any, invalid: Callable[[str], Rejected]) -> bool:
    """Whether ``thinking`` asks for extended thinking; ``invalid(message)`` is the refusal
    for a budget the API refuses."""
    if not isinstance(value, Mapping) or value.get("type") != "enabled":
        return False
    budget = value.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        raise invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}"
        )
    if isinstance(max_tokens, int) and budget >= max_tokens:
        raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return True


def _event(name: str, value: Mapping[str, Any]) -> bytes:
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class AnthropicFormat:
    vendor: Vendor = "anthropic"
    json_content_type = "application/json"

    def stream_content_type(self, exchange: Exchange) -> str:
        return "text/event-stream; charset=utf-8"

    def preflight(self, route: Route, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        if not headers.get("anthropic-version"):
            raise Rejected(
                Failure(
                    kind="invalid_request",
                    status=400,
                    message="anthropic-version: header is required",
                )
            )

    def credential(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        # x-api-key is the documented header; recent SDKs send the key as a Bearer token.
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return headers.get("x-api-key")

    def response_headers(self, number: int) -> dict[str, str]:
        return {"request-id": f"req_fake{number:020d}"}

    def interpret(self, route: Route, payload: Any, query: Mapping[str, str]) -> Exchange:
        def invalid(message: str) -> Rejected:
            return Rejected(Failure(kind="invalid_request", status=400, message=message))

        if not isinstance(payload, Mapping):
            raise invalid("Input should be a valid dictionary")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise invalid("model: Field required")
        messages = payload.get("messages")
        if not isinstance(messages, list):
            raise invalid("messages: Field required")
        max_tokens = payload.get("max_tokens")
        if route.endpoint == "chat":
            if max_tokens is None:
                raise invalid("max_tokens: Field required")
            if not isinstance(max_tokens, int) or max_tokens < 1:
                raise invalid("max_tokens: Input should be greater than or equal to 1")
        thinking = _thinking(payload.get("thinking"), max_tokens, invalid)
        texts = [message_text(m, content_key="content") for m in messages]
        system = payload.get("system")
        if system:
            texts.insert(0, content_text(system))
        users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
        last_user = content_text(users[-1].get("content"), text_only=True) if users else ""
        tools = payload.get("tools")
        return Exchange(
            vendor=self.vendor,
            endpoint=route.endpoint,
            model=model,
            stream=route.endpoint == "chat" and payload.get("stream") is True,
            max_tokens=max_tokens if route.endpoint == "chat" else None,
            has_tools=bool(tools),
            last_user_text=last_user,
            prompt_tokens=count_prompt_tokens(texts, tools),
            thinking=thinking and route.endpoint == "chat",
        )

    # ------------------------------------------------------------------ answers

    def _usage(self, reply: Reply, *, output_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": max(0, reply.prompt_tokens - reply.cached_tokens),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if reply.reasoning is not None:
            thinking = min(reply.reasoning_tokens, output_tokens)
            usage["output_tokens_details"] = {"thinking_tokens": thinking}
        return usage

    def _signature(self, number: int) -> str:
        # Opaque base64, as the API's are; the fake checks none it is given back.
        return base64.b64encode(f"fake-thinking-signature-{number:08d}".encode()).decode()

    def _tool_id(self, number: int, index: int) -> str:
        return f"toolu_fake{number:08d}x{index}"

    def completion(self, exchange: Exchange, reply: Reply, number: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.reasoning is not None:
            content.append(
                {
                    "type": "thinking",
                    "thinking": reply.reasoning,
                    "signature": self._signature(number),
                }
            )
        if reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for i, call in enumerate(reply.tool_calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": self._tool_id(number, i),
                    "name": call.name,
                    "input": dict(call.arguments),
                }
            )
        return {
            "id": f"msg_fake{number:020d}",
            "type": "message",
            "role": "assistant",
            "model": exchange.model,
            "content": content,
            "stop_reason": _STOP_REASONS.get(reply.finish, reply.finish),
            "stop_sequence": None,
            "usage": self._usage(reply, output_tokens=reply.completion_tokens),
        }

    def count_tokens(self, exchange: Exchange) -> dict[str, Any]:
        return {"input_tokens": exchange.prompt_tokens}

    def stream(self, exchange: Exchange, reply: Reply, number: int) -> list[StreamEvent]:
        message = {
            **self.completion(exchange, reply, number),
            "content": [],
            "stop_reason": None,
            # message_start reports the input and a token or so of output; message_delta has
            # the final output count.
            "usage": self._usage(reply, output_tokens=min(1, reply.completion_tokens)),
        }
        start = {"type": "message_start", "message": message}
        events = [StreamEvent(kind="open", data=_event("message_start", start))]
        blocks: list[tuple[dict[str, Any], str, list[str]]] = []
        if reply.reasoning is not None:
            thinking_block = {"type": "thinking", "thinking": "", "signature": ""}
            blocks.append((thinking_block, "thinking_delta", list(reply.reasoning_pieces)))
        if reply.text is not None:
            blocks.append(({"type": "text", "text": ""}, "text_delta", list(reply.pieces)))
        for i, call in enumerate(reply.tool_calls):
            block = {
                "type": "tool_use",
                "id": self._tool_id(number, i),
                "name": call.name,
                "input": {},
            }
            arguments = canonical_json(call.arguments)
            half = len(arguments) // 2
            blocks.append((block, "input_json_delta", [arguments[:half], arguments[half:]]))
        for index, (block, delta_type, parts) in enumerate(blocks):
            start_event = {"type": "content_block_start", "index": index, "content_block": block}
            data = _event("content_block_start", start_event)
            events.append(StreamEvent(kind="open" if index == 0 else "frame", data=data))
            if index == 0:
                events.append(StreamEvent(kind="open", data=_event("ping", {"type": "ping"})))
            field = _DELTA_FIELDS[delta_type]
            for part in parts:
                delta = {"type": delta_type, field: part}
                payload = {"type": "content_block_delta", "index": index, "delta": delta}
                events.append(
                    StreamEvent(kind="piece", data=_event("content_block_delta", payload))
                )
            if delta_type == "thinking_delta":  # the signature comes last, just before the stop
                delta = {"type": "signature_delta", "signature": self._signature(number)}
                payload = {"type": "content_block_delta", "index": index, "delta": delta}
                events.append(
                    StreamEvent(kind="frame", data=_event("content_block_delta", payload))
                )
            stop = {"type": "content_block_stop", "index": index}
            events.append(StreamEvent(kind="frame", data=_event("content_block_stop", stop)))
        delta_event = {
            "type": "message_delta",
            "delta": {
                "stop_reason": _STOP_REASONS.get(reply.finish, reply.finish),
                "stop_sequence": None,
            },
            "usage": {
                key: value
                for key, value in self._usage(reply, output_tokens=reply.completion_tokens).items()
                if key in ("output_tokens", "output_tokens_details")
            },
        }
        events.append(StreamEvent(kind="close", data=_event("message_delta", delta_event)))
        stop_event = {"type": "message_stop"}
        events.append(StreamEvent(kind="close", data=_event("message_stop", stop_event)))
        return events

    def malformed_event(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n'

    def error(self, failure: Failure) -> tuple[int, dict[str, Any]]:
        status = failure.status
        if failure.kind == "model_not_found":
            type_, message = "not_found_error", f"model: {failure.model}"
        elif failure.kind == "missing_key":
            type_, message = "authentication_error", "x-api-key header is required"
        elif failure.kind == "wrong_key":
            type_, message = _ERRORS[401]
        elif failure.kind == "malformed_json":
            type_, message = "invalid_request_error", "The request body is not valid JSON."
        elif failure.kind == "unknown_route":
            type_, message = "not_found_error", "Not Found"
        else:
            type_, message = _ERRORS.get(
                status,
                ("api_error", f"The server answered {status}.")
                if status >= 500
                else ("invalid_request_error", f"The request failed with {status}."),
            )
        error = {"type": failure.code or type_, "message": failure.message or message}
        return status, {"type": "error", "error": error}
