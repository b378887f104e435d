"""Google Gemini (Generative Language API), as the fake serves it.

Shapes follow the documented ``GenerateContentResponse`` (``candidates`` with ``content.parts``
and ``finishReason``, ``usageMetadata``), served by ``models/{model}:generateContent``,
``:streamGenerateContent`` (SSE events ``data: {...}`` separated by CRLF CRLF with ``alt=sse``;
otherwise one JSON array, streamed) and ``:countTokens``. A stream has no terminal sentinel:
its last response carries ``finishReason`` and the full ``usageMetadata``.

A request whose ``generationConfig.thinkingConfig.includeThoughts`` is true is answered with its
thoughts first, as parts marked ``"thought": true`` (streamed before the answer's text), their
tokens reported as ``usageMetadata.thoughtsTokenCount`` apart from ``candidatesTokenCount``.

Errors are ``{"error": {"code", "message", "status"}}``. As the real API does, a missing key is
403 PERMISSION_DENIED and a wrong key 400 INVALID_ARGUMENT with reason API_KEY_INVALID (Gemini
never answers 401 to an API-key caller).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from guardedllm.testing._replies import (
    Exchange,
    Failure,
    Rejected,
    Reply,
    Route,
    StreamEvent,
    content_text,
    count_prompt_tokens,
    message_text,
)
from guardedllm.testing._script import Vendor

__all__ = ["GeminiFormat"]

_FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",  # Gemini has no tool-call finish reason: the parts say it
    "content_filter": "SAFETY",
}

# HTTP status -> (google.rpc status, message) when a script gives only a status.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    501: ("UNIMPLEMENTED", "Method not implemented."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}

_MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_KEY_INVALID_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class GeminiFormat:
    vendor: Vendor = "gemini"
    json_content_type = "application/json; charset=UTF-8"

    def stream_content_type(self, exchange: Exchange) -> str:
        return "text/event-stream" if exchange.sse else "application/json; charset=UTF-8"

    def preflight(self, route: Route, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        return None

    def credential(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        return headers.get("x-goog-api-key") or query.get("key")

    def response_headers(self, number: int) -> dict[str, str]:
        return {}

    def interpret(self, route: Route, payload: Any, query: Mapping[str, str]) -> Exchange:
        def invalid(message: str) -> Rejected:
            return Rejected(Failure(kind="invalid_request", status=400, message=message))

        if not isinstance(payload, Mapping):
            raise invalid("Invalid JSON payload received. Expected an object.")
        if route.endpoint == "count_tokens" and isinstance(
            payload.get("generateContentRequest"), Mapping
        ):
            payload = payload["generateContentRequest"]
        contents = payload.get("contents")
        if not isinstance(contents, list) or not contents:
            raise invalid("* GenerateContentRequest.contents: contents is not specified\n")
        config = payload.get("generationConfig") or payload.get("generation_config") or {}
        max_tokens = config.get("maxOutputTokens") if isinstance(config, Mapping) else None
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise invalid(
                "* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n"
            )
        thinking = config.get("thinkingConfig") if isinstance(config, Mapping) else None
        texts = [message_text(c, content_key="parts") for c in contents]
        system = payload.get("systemInstruction") or payload.get("system_instruction")
        if isinstance(system, Mapping):
            texts.insert(0, content_text(system.get("parts")))
        tools = payload.get("tools")
        declared = [
            d
            for tool in (tools if isinstance(tools, list) else [])
            if isinstance(tool, Mapping)
            for d in (tool.get("functionDeclarations") or tool.get("function_declarations") or [])
        ]
        users = [c for c in contents if isinstance(c, Mapping) and c.get("role", "user") == "user"]
        last_user = content_text(users[-1].get("parts"), text_only=True) if users else ""
        return Exchange(
            vendor=self.vendor,
            endpoint=route.endpoint,
            model=route.path_model or "",
            stream=route.stream,
            max_tokens=max_tokens,
            has_tools=bool(declared),
            last_user_text=last_user,
            prompt_tokens=count_prompt_tokens(texts, tools),
            sse=query.get("alt") == "sse",
            thinking=isinstance(thinking, Mapping) and thinking.get("includeThoughts") is True,
        )

    # ------------------------------------------------------------------ answers

    def _usage(self, reply: Reply, *, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": reply.prompt_tokens}
        if final:
            # Gemini counts thoughts apart from the answer; the two add up to the output.
            usage["candidatesTokenCount"] = reply.completion_tokens - reply.reasoning_tokens
            if reply.reasoning is not None:
                usage["thoughtsTokenCount"] = reply.reasoning_tokens
        usage["totalTokenCount"] = reply.prompt_tokens + (reply.completion_tokens if final else 0)
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
        return usage

    def _response(
        self,
        exchange: Exchange,
        number: int,
        parts: list[dict[str, Any]],
        usage: dict[str, Any],
        finish: str | None = None,
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            candidate["finishReason"] = _FINISH_REASONS.get(finish, finish)
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": exchange.model,
            "responseId": f"fake{number:020d}",
        }

    def _call_parts(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {"functionCall": {"name": call.name, "args": dict(call.arguments)}}
            for call in reply.tool_calls
        ]

    def completion(self, exchange: Exchange, reply: Reply, number: int) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if reply.reasoning is not None:
            parts.append({"text": reply.reasoning, "thought": True})
        if reply.text is not None:
            parts.append({"text": reply.text})
        parts += self._call_parts(reply)
        usage = self._usage(reply, final=True)
        return self._response(exchange, number, parts, usage, reply.finish)

    def count_tokens(self, exchange: Exchange) -> dict[str, Any]:
        return {
            "totalTokens": exchange.prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": exchange.prompt_tokens}],
        }

    def stream(self, exchange: Exchange, reply: Reply, number: int) -> list[StreamEvent]:
        partial = self._usage(reply, final=False)
        bodies: list[tuple[str, dict[str, Any]]] = [
            ("piece", self._response(exchange, number, [{"text": p, "thought": True}], partial))
            for p in reply.reasoning_pieces
        ]
        bodies += [
            ("piece", self._response(exchange, number, [{"text": p}], partial))
            for p in reply.pieces
        ]
        bodies += [
            ("piece", self._response(exchange, number, [part], partial))
            for part in self._call_parts(reply)
        ]
        last = self._response(
            exchange, number, [{"text": ""}], self._usage(reply, final=True), reply.finish
        )
        bodies.append(("close", last))
        events = []
        for i, (kind, body) in enumerate(bodies):
            if exchange.sse:
                data = b"data: " + _dumps(body) + b"\r\n\r\n"
            else:  # one JSON array, an element at a time
                data = (b"[" if i == 0 else b",\r\n") + _dumps(body)
                if i == len(bodies) - 1:
                    data += b"]"
            events.append(StreamEvent(kind="piece" if kind == "piece" else "close", data=data))
        return events

    def malformed_event(self) -> bytes:
        return b'data: {"candidates":[{"content":{"parts":[{"text":\r\n\r\n'

    def error(self, failure: Failure) -> tuple[int, dict[str, Any]]:
        status = failure.status
        details: list[dict[str, Any]] | None = None
        if failure.kind == "model_not_found":
            status_name, message = (
                "NOT_FOUND",
                f"models/{failure.model} is not found for API version v1beta, or is not "
                "supported for generateContent. Call ListModels to see the list of available "
                "models and their supported methods.",
            )
        elif failure.kind == "missing_key":
            status, status_name, message = 403, "PERMISSION_DENIED", _MISSING_KEY
        elif failure.kind == "wrong_key":
            status, status_name = 400, "INVALID_ARGUMENT"
            message = "API key not valid. Please pass a valid API key."
            details = _KEY_INVALID_DETAILS
        elif failure.kind == "malformed_json":
            status_name, message = "INVALID_ARGUMENT", "Invalid JSON payload received."
        else:
            status_name, message = _ERRORS.get(
                status,
                ("INTERNAL", f"The server answered {status}.")
                if status >= 500
                else ("FAILED_PRECONDITION", f"The request failed with {status}."),
            )
        error: dict[str, Any] = {
            "code": status,
            "message": failure.message or message,
            "status": failure.code or status_name,
        }
        if details is not None:
            error["details"] = details
        return status, {"error": error}
