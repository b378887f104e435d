"""Reading OpenAI Chat Completions answers: bodies and error payloads (streams: ``_openai_stream``).

Everything a server sends is read field by field into the frozen OpenAI-shaped types. A missing
or ill-typed field is a ``ResponseFormatError`` naming the field's path and the deployment; an
optional field may be absent or null. The same reader serves OpenAI, Azure OpenAI and
OpenAI-compatible servers, so it tolerates the variants those servers are known to send (and
says so where it does): a message's ``reasoning_content`` (vLLM's and DeepSeek's thinking text,
which OpenAI itself never sends) is read into the message's field of that name. Pure: no I/O,
no clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from guardedllm.errors import ProviderError, ResponseFormatError, error_for_status
from guardedllm.providers.base import Target, decode_json, is_context_length_error
from guardedllm.types import (
    ChatCompletion,
    ChatCompletionMessage,
    Choice,
    FinishReason,
    Function,
    ToolCall,
    Usage,
)

__all__ = ["VendorError", "mapped_error", "parse_completion", "read_error"]

# OpenAI's finish reasons pass through; a few OpenAI-compatible servers use their own words
# for the same endings (TGI: eos_token / stop_sequence; Mistral: model_length).
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "model_length": "length",
}

# Error codes that say the model (OpenAI) or the deployment (Azure) does not exist.
_MODEL_NOT_FOUND_CODES = frozenset({"model_not_found", "DeploymentNotFound"})
# OpenAI-compatible servers say it only in words: vLLM "The model `x` does not exist.",
# Ollama 'model "x" not found, try pulling it first'.
_MODEL_NOT_FOUND_TEXT = re.compile(r"\bmodel\b.*\b(does not exist|not found)", re.IGNORECASE)


# --------------------------------------------------------------------------- responses


def parse_completion(body: bytes, target: Target) -> ChatCompletion:
    data = decode_json(body, target)
    if type(data) is dict:
        completion = _plain_completion(data, target)
        if completion is not None:
            return completion
    return _checked_completion(data, target)


def _plain_completion(data: dict[str, Any], target: Target) -> ChatCompletion | None:
    """The completion in ``data`` when it has the shape OpenAI sends (text answers, plain
    types, known finish reasons), read without the field-by-field checks that name the path
    of a bad field; None for anything else, which ``_checked_completion`` reads (and reports)."""
    choices = data.get("choices")
    if type(choices) is not list:
        return None
    head = _plain_head(data, target)
    if head is None:
        return None
    parsed = []
    for position, raw in enumerate(choices):
        if type(raw) is not dict:
            return None
        message = raw.get("message")
        if type(message) is not dict or message.get("tool_calls") is not None:
            return None
        content, refusal = message.get("content"), message.get("refusal")
        reasoning = message.get("reasoning_content")
        index = raw.get("index", position)
        finish = _plain_finish(raw)
        if (
            not _str_or_none(content)
            or not _str_or_none(refusal)
            or not _str_or_none(reasoning)
            or (type(index) is not int and index is not None)
            or finish is False
        ):
            return None
        parsed.append(
            Choice(
                index=position if index is None else index,
                message=ChatCompletionMessage(
                    content=content, refusal=refusal, reasoning_content=reasoning
                ),
                finish_reason=finish,
            )
        )
    usage = data.get("usage")
    return ChatCompletion(
        id=head[0],
        created=head[1],
        model=head[2],
        choices=tuple(parsed),
        usage=None if usage is None else _usage(usage, "response.usage", target),
        system_fingerprint=head[3],
    )


def _plain_head(data: dict[str, Any], target: Target) -> tuple[str, int, str, str | None] | None:
    """id, created, model and system_fingerprint as the checked reader gives them, or None
    when one of them is not the plain type (the checked reader then says which)."""
    id_, created = data.get("id", ""), data.get("created", 0)
    model, fingerprint = data.get("model", ""), data.get("system_fingerprint")
    if id_ is None:
        id_ = ""
    if created is None:
        created = 0
    if model is None:
        model = ""
    if (
        type(id_) is not str
        or type(created) is not int
        or type(model) is not str
        or not _str_or_none(fingerprint)
    ):
        return None
    return id_, created, model or target.model, fingerprint


def _str_or_none(value: object) -> bool:
    return value is None or type(value) is str


def _plain_finish(choice: dict[str, Any]) -> FinishReason | Literal[False] | None:
    """A choice's finish reason, or False when the checked reader has something to say."""
    raw = choice.get("finish_reason")
    if raw is None:
        return None
    return _FINISH_REASONS.get(raw, False) if type(raw) is str else False


def _checked_completion(raw: object, target: Target) -> ChatCompletion:
    data = _object(raw, "response", target)
    if "choices" not in data and data.get("error"):
        # Some proxies and compatible servers answer 200 with an error body.
        vendor = read_error(data) or VendorError()
        raise mapped_error(vendor.status or 500, vendor, target)
    choices = _list(data, "choices", "response", target)
    # id, created and model are labels, not content: some compatible servers omit them, so they
    # default ("" / 0 / the target's model) where a missing choice or count would be an error.
    return ChatCompletion(
        id=_str(data, "id", "response", target, default=""),
        created=_int(data, "created", "response", target, default=0),
        model=_str(data, "model", "response", target, default="") or target.model,
        choices=tuple(_choice(raw, i, target) for i, raw in enumerate(choices)),
        usage=_usage(data.get("usage"), "response.usage", target),
        system_fingerprint=_optional_str(data, "system_fingerprint", "response", target),
    )


def _choice(raw: object, position: int, target: Target) -> Choice:
    where = f"response.choices[{position}]"
    choice = _object(raw, where, target)
    message = _object(choice.get("message"), f"{where}.message", target)
    calls = _optional_list(message, "tool_calls", f"{where}.message", target)
    return Choice(
        index=_int(choice, "index", where, target, default=position),
        message=ChatCompletionMessage(
            content=_optional_str(message, "content", f"{where}.message", target),
            tool_calls=tuple(
                _tool_call(call, f"{where}.message.tool_calls[{j}]", target)
                for j, call in enumerate(calls)
            )
            or None,
            refusal=_optional_str(message, "refusal", f"{where}.message", target),
            reasoning_content=_optional_str(
                message, "reasoning_content", f"{where}.message", target
            ),
        ),
        finish_reason=_finish_reason(choice, where, target),
    )


def _tool_call(raw: object, where: str, target: Target) -> ToolCall:
    call = _object(raw, where, target)
    _check_function_type(call, where, target)
    function = _object(call.get("function"), f"{where}.function", target)
    return ToolCall(
        id=_str(call, "id", where, target),
        function=Function(
            name=_str(function, "name", f"{where}.function", target),
            arguments=_arguments(function, f"{where}.function", target) or "",
        ),
    )


def _arguments(function: Mapping[str, Any], where: str, target: Target) -> str | None:
    """Arguments as JSON text. Some compatible servers (Ollama) send an object; we re-encode it
    so callers always get what OpenAI gives: a string to ``json.loads``."""
    value = function.get("arguments")
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"))
    return _optional_str(function, "arguments", where, target)


def _check_function_type(call: Mapping[str, Any], where: str, target: Target) -> None:
    kind = call.get("type")
    if kind not in (None, "function"):
        raise _format_error(
            target, f"{where}.type is {kind!r}; only function tool calls are supported"
        )


def _finish_reason(choice: Mapping[str, Any], where: str, target: Target) -> FinishReason | None:
    raw = _optional_str(choice, "finish_reason", where, target)
    if raw is None:
        return None
    reason = _FINISH_REASONS.get(raw)
    if reason is None:
        raise _format_error(target, f"{where}.finish_reason {raw!r} is not one OpenAI defines")
    return reason


def _usage(raw: object, where: str, target: Target) -> Usage | None:
    if raw is None:
        return None
    usage = _object(raw, where, target)
    prompt = _object(
        usage.get("prompt_tokens_details") or {}, f"{where}.prompt_tokens_details", target
    )
    completion = _object(
        usage.get("completion_tokens_details") or {}, f"{where}.completion_tokens_details", target
    )
    return Usage.reported(
        (_int(usage, "prompt_tokens", where, target),),
        (_int(usage, "completion_tokens", where, target),),
        cached_tokens=_int(
            prompt, "cached_tokens", f"{where}.prompt_tokens_details", target, default=0
        ),
        reasoning_tokens=_int(
            completion, "reasoning_tokens", f"{where}.completion_tokens_details", target, default=0
        ),
    )


# --------------------------------------------------------------------------- errors


@attrs.frozen(kw_only=True)
class VendorError:
    """What an OpenAI-style error payload says, whichever of its variants a server used."""

    message: str = ""
    code: str | None = None
    status: int | None = None


def read_error(payload: object) -> VendorError | None:
    """The error in ``payload``: OpenAI's ``{"error": {...}}``; ``{"error": "text"}``; or the
    fields at the top level (older vLLM; Azure's gateway ``{"statusCode", "message"}``)."""
    if not isinstance(payload, Mapping):
        return None
    inner = payload.get("error")
    if isinstance(inner, str):
        return VendorError(message=inner)
    if isinstance(inner, Mapping):
        source: Mapping[str, Any] = inner
    elif isinstance(payload.get("message"), str):
        source = payload
    else:
        return None
    message = source.get("message")
    code = source.get("code")
    kind = source.get("type")
    status = _status_of(source.get("status")) or _status_of(payload.get("statusCode"))
    if status is None:
        status = _status_of(code)  # vLLM and Azure put the HTTP status in "code"
    return VendorError(
        message=message if isinstance(message, str) else "",
        code=code if isinstance(code, str) and code else kind if isinstance(kind, str) else None,
        status=status,
    )


def _status_of(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    return None


def mapped_error(
    status: int,
    vendor: VendorError,
    target: Target,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    body: str = "",
) -> ProviderError:
    message = vendor.message or "no error message"
    model_not_found = vendor.code in _MODEL_NOT_FOUND_CODES or (
        status == 404 and _MODEL_NOT_FOUND_TEXT.search(message) is not None
    )
    overloaded = status >= 500 and (
        "overloaded" in (vendor.code or "").lower() or "overloaded" in message.lower()
    )
    return error_for_status(
        status,
        message,
        code=vendor.code,
        request_id=request_id,
        retry_after=retry_after,
        deployment=target.deployment,
        body=body,
        model_not_found=model_not_found,
        overloaded=overloaded,
        context_length=is_context_length_error(status, vendor.code, message),
    )


# --------------------------------------------------------------------------- typed field reads


def _format_error(target: Target, problem: str, excerpt: str = "") -> ResponseFormatError:
    return ResponseFormatError(
        f"{target.deployment}: {problem} in the answer from {target.provider}; it does not "
        "follow the OpenAI Chat Completions format. Check the provider's base_url and kind.",
        deployment=target.deployment,
        excerpt=excerpt,
    )


def _object(value: object, where: str, target: Target) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _format_error(target, f"{where} is {_describe(value)}, not an object")
    return value


def _list(data: Mapping[str, Any], key: str, where: str, target: Target) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise _format_error(target, f"{where}.{key} is {_describe(value)}, not a list")
    return value


def _optional_list(data: Mapping[str, Any], key: str, where: str, target: Target) -> list[Any]:
    return [] if data.get(key) is None else _list(data, key, where, target)


def _str(
    data: Mapping[str, Any], key: str, where: str, target: Target, *, default: str | None = None
) -> str:
    value = data.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise _format_error(target, f"{where}.{key} is {_describe(value)}, not a string")
    return value


def _optional_str(data: Mapping[str, Any], key: str, where: str, target: Target) -> str | None:
    return None if data.get(key) is None else _str(data, key, where, target)


def _int(
    data: Mapping[str, Any], key: str, where: str, target: Target, *, default: int | None = None
) -> int:
    value = data.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _format_error(target, f"{where}.{key} is {_describe(value)}, not an integer")
    return value


def _describe(value: object) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"
