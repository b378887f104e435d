"""OpenAI Chat Completions and Azure OpenAI, as the fake serves them.

Shapes follow what the two services send (and what the official ``openai`` SDK parses): the
``chat.completion`` body, ``chat.completion.chunk`` events ending in ``data: [DONE]``, with a
final choices-less usage chunk when ``stream_options.include_usage`` is set, and the
``{"error": {"message", "type", "param", "code"}}`` error body.

Azure differs where the real service does: the deployment in the path is the model, the
``api-version`` query parameter is required (without it Azure answers 404 "Resource not
found"), the key may come in an ``api-key`` header, bodies carry content-filter annotations, a
stream opens with a choices-less ``prompt_filter_results`` chunk, and most errors are
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
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

__all__ = ["AzureFormat", "OpenAIFormat"]

# status -> (type, code, message) when a script gives only a status.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (scripted by FakeProvider)."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", None, "You are not allowed to perform this request."),
    404: ("invalid_request_error", None, "The requested resource was not found."),
    408: ("invalid_request_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "The request conflicts with another request."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}

_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_MALFORMED = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _sse(value: Any) -> bytes:
    return b"data: " + _dumps(value) + b"\n\n"


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _error_body(
    message: str, type_: str | None, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class OpenAIFormat:
    vendor: Vendor = "openai"
    json_content_type = "application/json"
    id_prefix = "chatcmpl-fake"

    def stream_content_type(self, exchange: Exchange) -> str:
        return "text/event-stream; charset=utf-8"

    def preflight(self, route: Route, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        return None

    def credential(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return headers.get("api-key")

    def response_headers(self, number: int) -> dict[str, str]:
        return {
            "x-request-id": f"req_fake{number:024d}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
        }

    # ------------------------------------------------------------------ requests

    def interpret(self, route: Route, payload: Any, query: Mapping[str, str]) -> Exchange:
        def invalid(message: str, param: str | None = None) -> Rejected:
            failure = Failure(kind="invalid_request", status=400, message=message, param=param)
            return Rejected(failure)

        if not isinstance(payload, Mapping):
            raise invalid("The request body must be a JSON object.")
        model = route.path_model if route.path_model is not None else payload.get("model")
        if not isinstance(model, str) or not model:
            raise invalid("you must provide a model parameter", "model")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise invalid("Missing required parameter: 'messages'.", "messages")
        max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise invalid(
                f"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, "
                f"but got {max_tokens!r} instead.",
                "max_tokens",
            )
        tools = payload.get("tools") or payload.get("functions")
        stream = payload.get("stream") is True
        options = payload.get("stream_options")
        include_usage = (
            stream and isinstance(options, Mapping) and options.get("include_usage") is True
        )
        users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
        last_user = content_text(users[-1].get("content"), text_only=True) if users else ""
        return Exchange(
            vendor=self.vendor,
            endpoint=route.endpoint,
            model=model,
            stream=stream,
            include_usage=include_usage,
            max_tokens=max_tokens,
            has_tools=bool(tools),
            last_user_text=last_user,
            prompt_tokens=count_prompt_tokens(
                (message_text(m, content_key="content") for m in messages), tools
            ),
        )

    # ------------------------------------------------------------------ answers

    def completion(self, exchange: Exchange, reply: Reply, number: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._call_id(number, i),
                    "type": "function",
                    "function": {"name": call.name, "arguments": canonical_json(call.arguments)},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"{self.id_prefix}{number:020d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": exchange.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish}
            ],
            "usage": _usage(reply),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def count_tokens(self, exchange: Exchange) -> dict[str, Any]:
        return {"input_tokens": exchange.prompt_tokens}  # no such endpoint; never routed here

    def stream(self, exchange: Exchange, reply: Reply, number: int) -> list[StreamEvent]:
        base: dict[str, Any] = {
            "id": f"{self.id_prefix}{number:020d}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": exchange.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if exchange.include_usage:
            base["usage"] = None  # every chunk but the last carries "usage": null

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**base, "choices": [choice]})

        events = [
            StreamEvent(
                kind="open",
                data=chunk(
                    {
                        "role": "assistant",
                        "content": "" if reply.text is not None else None,
                        "refusal": None,
                    }
                ),
            )
        ]
        events += [StreamEvent(kind="piece", data=chunk({"content": p})) for p in reply.pieces]
        for i, call in enumerate(reply.tool_calls):
            opening = {
                "index": i,
                "id": self._call_id(number, i),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(StreamEvent(kind="frame", data=chunk({"tool_calls": [opening]})))
            arguments = canonical_json(call.arguments)
            half = len(arguments) // 2
            for part in (arguments[:half], arguments[half:]):
                delta = {"tool_calls": [{"index": i, "function": {"arguments": part}}]}
                events.append(StreamEvent(kind="piece", data=chunk(delta)))
        events.append(StreamEvent(kind="close", data=chunk({}, reply.finish)))
        if exchange.include_usage:
            final = {**base, "choices": [], "usage": _usage(reply)}
            events.append(StreamEvent(kind="close", data=_sse(final)))
        events.append(StreamEvent(kind="close", data=b"data: [DONE]\n\n"))
        return events

    def malformed_event(self) -> bytes:
        return b'data: {"id":"chatcmpl-garbage","choices":[{"delta":\n\n'

    def error(self, failure: Failure) -> tuple[int, dict[str, Any]]:
        status = failure.status
        if failure.kind == "model_not_found":
            message = f"The model `{failure.model}` does not exist or you do not have access to it."
            type_, code = "invalid_request_error", "model_not_found"
        elif failure.kind == "missing_key":
            type_, code, message = "invalid_request_error", None, _MISSING_KEY
        elif failure.kind == "wrong_key":
            type_, code, message = _ERRORS[401]
        elif failure.kind == "malformed_json":
            type_, code, message = "invalid_request_error", None, _MALFORMED
        elif failure.kind == "unknown_route":
            type_, code, message = "invalid_request_error", None, f"Invalid URL ({failure.route})"
        else:
            default = _ERRORS.get(status) or (
                ("server_error", None, f"The server answered {status}.")
                if status >= 500
                else ("invalid_request_error", None, f"The request failed with {status}.")
            )
            type_, code, message = default
        return status, _error_body(
            failure.message or message, type_, failure.code or code, failure.param
        )

    def _call_id(self, number: int, index: int) -> str:
        return f"call_fake{number:08d}x{index}"


# Azure's content-filter verdict for a harmless text, as it annotates every prompt and choice.
_SAFE = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}

_AZURE_ERRORS: dict[int, tuple[str, str]] = {
    401: (
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    ),
    404: ("404", "Resource not found"),
    429: (
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have exceeded "
        "call rate limit of your current pricing tier. Please retry after 1 second.",
    ),
    500: ("InternalServerError", "The service encountered an internal error. Please retry."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry."),
}


class AzureFormat(OpenAIFormat):
    vendor: Vendor = "azure"
    id_prefix = "chatcmpl-azfake"

    def preflight(self, route: Route, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        # The deployments route needs ?api-version=; the newer /openai/v1 route does not.
        if route.path_model is not None and not query.get("api-version"):
            raise Rejected(Failure(kind="unknown_route", status=404))

    def response_headers(self, number: int) -> dict[str, str]:
        request_id = f"00000000-0000-4000-8000-{number:012d}"
        return {"x-request-id": request_id, "apim-request-id": request_id, "x-ms-region": "fake"}

    def completion(self, exchange: Exchange, reply: Reply, number: int) -> dict[str, Any]:
        body = super().completion(exchange, reply, number)
        body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _SAFE}]
        for choice in body["choices"]:
            choice["content_filter_results"] = _SAFE
        return body

    def stream(self, exchange: Exchange, reply: Reply, number: int) -> list[StreamEvent]:
        prelude = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _SAFE}],
        }
        opening = StreamEvent(kind="open", data=_sse(prelude))
        return [opening, *super().stream(exchange, reply, number)]

    def error(self, failure: Failure) -> tuple[int, dict[str, Any]]:
        status = failure.status
        # Validation errors pass through from the OpenAI service in its shape.
        if failure.kind in ("malformed_json", "invalid_request") or status in (400, 422):
            return super().error(failure)
        if failure.kind == "model_not_found":
            code, message = (
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
            )
        elif failure.kind in ("missing_key", "wrong_key"):
            code, message = _AZURE_ERRORS[401]
        elif failure.kind == "unknown_route":
            code, message = _AZURE_ERRORS[404]
        else:
            code, message = _AZURE_ERRORS.get(
                status, (str(status), f"The service answered {status}.")
            )
        return status, {
            "error": {"code": failure.code or code, "message": failure.message or message}
        }
