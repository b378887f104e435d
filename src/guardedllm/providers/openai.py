"""The OpenAI Chat Completions wire format: OpenAI, OpenAI-compatible servers and Azure OpenAI.

Requests are already OpenAI-shaped, so building one is mostly passing it through. What this
module adds on the way out: a check that the messages are well formed before anything is sent,
and a refusal of parameters whose answers guardedllm's response types have no place for
(logprobs, audio, legacy function calling, non-function tools), so nothing the caller asked for
is dropped on the way back.

Three provider kinds speak it:

- "openai": ``OpenAIWire()``: bearer auth; ``max_tokens`` is sent as ``max_completion_tokens``
  (o-series models reject ``max_tokens``).
- "openai-compatible" (vLLM, Ollama, LM Studio, ...): ``OpenAIWire(max_tokens_field="max_tokens")``.
- "azure-openai": ``AzureOpenAIWire()``: the deployment goes in the path, the key in an
  ``api-key`` header, ``api-version`` in the query, and the body has no "model".

Streams ask for ``stream_options.include_usage`` because cost accounting needs the usage.

The caller's ``extra_body`` and ``provider_options`` (under the provider's kind or name) are
merged into the body as they are (``base.merge_vendor_fields``), except the fields in
``_GUARDED_FIELDS``. An assistant message passed back with ``reasoning_content`` or
``thinking_blocks`` (what a thinking answer carries) goes out without them: they are answer
fields, which DeepSeek refuses in a request and OpenAI has no use for.
Pure: no I/O, no clock, no environment. This module builds requests; reading answers (bodies,
streams, errors) lives in ``_openai_response``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import attrs
import httpx

from guardedllm.errors import InvalidRequestError, ProviderError
from guardedllm.providers._embeddings import openai_embedding_body, parse_openai_embeddings
from guardedllm.providers._openai_response import (
    VendorError,
    mapped_error,
    parse_completion,
    read_error,
)
from guardedllm.providers._openai_stream import OpenAIStreamDecoder
from guardedllm.providers.base import (
    GuardedFields,
    Target,
    first_header,
    load_json,
    merge_vendor_fields,
    post_request,
    retry_after_seconds,
)
from guardedllm.types import (
    ChatCompletion,
    ChatRequest,
    CreateEmbeddingResponse,
    EmbeddingRequest,
)

__all__ = ["AzureOpenAIWire", "OpenAIStreamDecoder", "OpenAIWire"]

MaxTokensField = Literal["max_completion_tokens", "max_tokens"]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")

# ChatRequest fields and what this module sets itself. In ``extra`` they would bypass the
# estimate and the cost guard (max_tokens) or contradict the request (stream), so they are refused.
_RESERVED_EXTRA = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "user",
    }
)

# Body fields the guards count on, refused in extra_body and provider_options. The stream's
# usage is what a streamed call's cost is settled on.
_GUARDED_FIELDS: GuardedFields = {
    ("model",): "choose the model with create(model=...)",
    ("messages",): "pass messages=... to create()",
    ("max_tokens",): "pass max_tokens=... to create()",
    ("max_completion_tokens",): "pass max_tokens=... to create()",
    ("stream",): "pass stream=True to create()",
    ("stream_options", "include_usage"): "pass stream_options={'include_usage': ...} to create()",
    ("n",): "pass n=... to create()",
}

# Answer fields an assistant message may carry back that no Chat Completions request takes.
_ANSWER_ONLY_FIELDS = frozenset({"reasoning_content", "thinking_blocks"})

# OpenAI parameters whose answers the OpenAI-shaped response types have no field for: sending
# one would silently drop what the caller asked for on the way back.
_UNREPRESENTABLE_EXTRA = {
    "logprobs": "the response types carry no logprobs",
    "top_logprobs": "the response types carry no logprobs",
    "audio": "the response types carry no audio",
    "functions": "legacy function calling is not supported; declare them as tools",
    "function_call": "legacy function calling is not supported; use tool_choice",
}

# --------------------------------------------------------------------------- the wire formats


@attrs.frozen(kw_only=True)
class _ChatCompletionsWire:
    """What OpenAI and Azure share: the body, the response, the stream and the error shapes."""

    max_tokens_field: MaxTokensField = attrs.field(
        default="max_completion_tokens",
        validator=attrs.validators.in_(("max_completion_tokens", "max_tokens")),
    )
    # Headers that carry the vendor's request id, most specific first.
    _request_id_headers: ClassVar[tuple[str, ...]] = ("x-request-id",)

    def parse_response(self, body: bytes, target: Target) -> ChatCompletion:
        return parse_completion(body, target)

    def parse_embeddings(
        self, body: bytes, target: Target, embedding: EmbeddingRequest
    ) -> CreateEmbeddingResponse:
        return parse_openai_embeddings(body, target, embedding)

    def parse_error(
        self, status: int, headers: httpx.Headers, body: bytes, target: Target, *, now: float
    ) -> ProviderError:
        text = body.decode("utf-8", "replace")
        try:
            payload = load_json(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        vendor = read_error(payload)
        if vendor is None:
            excerpt = text[:200].strip()
            vendor = VendorError(
                message=f"a body that is not an OpenAI error: {excerpt!r}" if excerpt else "",
            )
        return mapped_error(
            status,
            vendor,
            target,
            request_id=first_header(headers, *self._request_id_headers),
            retry_after=retry_after_seconds(headers, now=now),
            body=text,
        )

    def stream_decoder(self, target: Target) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(target)


@attrs.frozen(kw_only=True)
class OpenAIWire(_ChatCompletionsWire):
    """Kind "openai" (the default ``max_tokens_field``) and "openai-compatible"
    (``max_tokens_field="max_tokens"``): POST ``{base_url}/chat/completions``, bearer auth."""

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        if request.embedding is not None:
            body = openai_embedding_body(request, request.embedding, target, include_model=True)
            path = "embeddings"
        else:
            body = _request_body(request, target, self.max_tokens_field, include_model=True)
            path = "chat/completions"
        auth = {"authorization": f"Bearer {_checked_key(target)}"} if target.api_key else {}
        return _http_request(
            path,
            params=None,
            body=body,
            target=target,
            auth=auth,
            request=request,
        )


@attrs.frozen(kw_only=True)
class AzureOpenAIWire(_ChatCompletionsWire):
    """Kind "azure-openai": ``target.model`` is the Azure deployment name, which picks the model,
    so the body carries none; ``target.api_version`` is required."""

    _request_id_headers: ClassVar[tuple[str, ...]] = (
        "apim-request-id",
        "x-ms-request-id",
        "x-request-id",
    )

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        if not target.api_version:
            raise InvalidRequestError(
                f"{target.deployment}: provider {target.provider!r} is azure-openai but has no "
                'api_version; set api_version (e.g. "2024-10-21") in the provider config.'
            )
        if request.embedding is not None:
            body = openai_embedding_body(request, request.embedding, target, include_model=False)
            endpoint = "embeddings"
        else:
            body = _request_body(request, target, self.max_tokens_field, include_model=False)
            endpoint = "chat/completions"
        auth = {"api-key": _checked_key(target)} if target.api_key else {}
        path = f"openai/deployments/{quote(target.model, safe='')}/{endpoint}"
        params = {"api-version": target.api_version}
        return _http_request(
            path, params=params, body=body, target=target, auth=auth, request=request
        )


# --------------------------------------------------------------------------- request


def _request_body(
    request: ChatRequest, target: Target, max_tokens_field: str, *, include_model: bool
) -> dict[str, Any]:
    _check_messages(request.messages)
    body: dict[str, Any] = {"model": target.model} if include_model else {}
    body["messages"] = [
        _plain(_sendable(message), f"messages[{i}]") for i, message in enumerate(request.messages)
    ]
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop is not None:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    # OpenAI rejects an empty tools array, and no tools means the same as none given.
    if request.tools:
        _check_tools(request.tools)
        body["tools"] = _plain(request.tools, "tools")
    if request.tool_choice is not None:
        body["tool_choice"] = _plain(request.tool_choice, "tool_choice")
    if request.response_format is not None:
        body["response_format"] = _plain(request.response_format, "response_format")
    if request.user is not None:
        body["user"] = request.user
    for key, value in request.extra.items():
        _check_extra(key, value)
        body[key] = _plain(value, key)
    if request.stream:
        # Usage is what the cost guard settles on; a stream without it cannot be accounted.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body = merge_vendor_fields(body, request, target, _GUARDED_FIELDS)
    for key, value in body.items():
        _check_answerable(key, value)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError(
            f"stream_options is {type(options).__name__}, not a dict; pass a dict or drop it."
        )
    return body


def _sendable(message: Mapping[str, Any]) -> Mapping[str, Any]:
    if message.get("role") != "assistant" or _ANSWER_ONLY_FIELDS.isdisjoint(message):
        return message
    return {key: value for key, value in message.items() if key not in _ANSWER_ONLY_FIELDS}


def _http_request(
    path: str,
    *,
    params: Mapping[str, str] | None,
    body: dict[str, Any],
    target: Target,
    auth: Mapping[str, str],
    request: ChatRequest,
) -> httpx.Request:
    try:
        content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"{target.deployment}: the request cannot be encoded as JSON ({exc}); pass only "
            "JSON values (str, finite numbers, bool, None, lists, dicts)."
        ) from None
    # The provider's key wins over a stray auth header in the config or the call.
    headers = _overlaid(
        _STREAM_HEADERS if request.stream else _ANSWER_HEADERS,
        target.headers,
        request.extra_headers,
        auth,
    )
    return post_request(target, path, params=params, headers=headers, content=content)


_ANSWER_HEADERS = (("content-type", "application/json"), ("accept", "application/json"))
_STREAM_HEADERS = (("content-type", "application/json"), ("accept", "text/event-stream"))


def _overlaid(
    base: Sequence[tuple[str, str]], *layers: Mapping[str, str]
) -> Sequence[tuple[str, str]]:
    """``base`` with each layer laid over it in turn, as ``httpx.Headers.update`` does: a name
    a layer sets (in any case) drops every earlier header of that name, and the layer's own
    headers go at the end."""
    headers = base
    for layer in layers:
        if layer:
            names = {name.lower() for name in layer}
            headers = [(k, v) for k, v in headers if k.lower() not in names]
            headers.extend(layer.items())
    return headers


def _checked_key(target: Target) -> str:
    """The key, if it can go in a header. h11 would refuse it at send time and quote the whole
    header value in its error; this refuses it first without showing the key."""
    key = target.api_key or ""
    if not (key.isascii() and key.isprintable()) or key != key.strip():
        raise InvalidRequestError(
            f"{target.deployment}: the API key of provider {target.provider!r} contains "
            "whitespace or non-printable characters (often a trailing newline); fix the value "
            "of the provider's api_key_env variable."
        )
    return key


def _check_messages(messages: Sequence[object]) -> None:
    if not messages:
        raise InvalidRequestError(
            "messages is empty; pass at least one message, e.g. "
            "{'role': 'user', 'content': 'Hello'}."
        )
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"{where} is a {type(message).__name__}; pass each message as a dict with "
                "'role' and 'content'."
            )
        role = message.get("role")
        if role not in _ROLES:
            said = "has no 'role'" if role is None else f"has role {role!r}"
            raise InvalidRequestError(f"{where} {said}; use one of {', '.join(_ROLES)}.")
        content = message.get("content")
        _check_content(content, where)
        if role == "assistant":
            _check_assistant(message, where)
        elif content is None and role != "function":
            raise InvalidRequestError(f"{where} ({role}) has no 'content'; give it content.")
        if role == "tool" and not _is_text(message.get("tool_call_id")):
            raise InvalidRequestError(
                f"{where} is a tool result without 'tool_call_id'; set it to the id of the "
                "assistant tool call it answers."
            )
        if role == "function" and not _is_text(message.get("name")):
            raise InvalidRequestError(f"{where} (function) has no 'name'; set the function name.")


def _check_content(content: object, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, (list, tuple)):
        raise InvalidRequestError(
            f"{where}.content is a {type(content).__name__}; pass a string or a list of "
            "content parts."
        )
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or not _is_text(part.get("type")):
            raise InvalidRequestError(
                f"{where}.content[{j}] is not a content part; pass a dict with a 'type', "
                "e.g. {'type': 'text', 'text': '...'}."
            )


def _check_assistant(message: Mapping[str, object], where: str) -> None:
    calls = message.get("tool_calls")
    if message.get("content") is None and not calls and message.get("refusal") is None:
        raise InvalidRequestError(
            f"{where} (assistant) has neither 'content' nor 'tool_calls'; give it one of them."
        )
    if calls is None:
        return
    if not isinstance(calls, (list, tuple)):
        raise InvalidRequestError(f"{where}.tool_calls is not a list; pass a list of tool calls.")
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if (
            not isinstance(call, Mapping)
            or not _is_text(call.get("id"))
            or not isinstance(function, Mapping)
            or not _is_text(function.get("name"))
            or not isinstance(function.get("arguments"), str)
        ):
            raise InvalidRequestError(
                f"{where}.tool_calls[{j}] is malformed; pass it as the response gave it: "
                "{'id': ..., 'type': 'function', 'function': {'name': ..., 'arguments': '<JSON>'}}."
            )


def _check_tools(tools: Sequence[object]) -> None:
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind != "function":
            raise InvalidRequestError(
                f"tools[{i}] has type {kind!r}; guardedllm's responses carry function tool calls "
                "only, so declare it as {'type': 'function', 'function': {...}}."
            )


def _check_extra(key: str, value: object) -> None:
    if key in _RESERVED_EXTRA:
        raise InvalidRequestError(
            f"extra parameter {key!r} is a named argument of create(); pass it as "
            f"{'max_tokens' if key == 'max_completion_tokens' else key}=... instead (the wire "
            "format sends it under the name the provider expects)."
        )
    _check_answerable(key, value)


def _check_answerable(key: str, value: object) -> None:
    """Refuse a body field whose answer the response types cannot carry."""
    why = _UNREPRESENTABLE_EXTRA.get(key)
    if why is not None and value not in (None, False):
        raise InvalidRequestError(
            f"parameter {key!r} cannot be honoured: {why}. Drop it, or call the openai SDK "
            "directly for this request."
        )
    if key == "modalities" and isinstance(value, (list, tuple)) and set(value) - {"text"}:
        raise InvalidRequestError(
            f"modalities={list(value)!r} cannot be honoured: the response types carry text "
            "only. Drop the parameter or use ['text']."
        )


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _plain(value: object, where: str) -> Any:
    """``value`` as dicts and lists: callers may hand us any Mapping or tuple, json wants these."""
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequestError(
                    f"{where} has a non-string key {key!r}; JSON object keys must be strings."
                )
            result[key] = _plain(item, f"{where}.{key}")
        return result
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value
