"""The Anthropic Messages API wire format (provider kind "anthropic").

Requests arrive OpenAI-shaped and leave as ``POST {base_url}/v1/messages``; answers come back
OpenAI-shaped. The translation keeps these rules:

- System and developer messages become the top-level ``system`` string, their texts joined by
  a blank line in order: Anthropic has no system role inside ``messages``.
- Anthropic requires user and assistant turns to alternate, so consecutive messages with the
  same role merge into one message of content blocks. Tool results are user turns: a run of
  tool messages becomes one user message of ``tool_result`` blocks.
- Whatever the request asks that Anthropic cannot express (``seed``, an OpenAI-only ``extra``
  parameter, an image URL scheme, a temperature above 1, ...) raises ``InvalidRequestError``
  naming it; nothing is dropped silently.
- Vendor fields (``extra_body``, then ``provider_options["anthropic"]``, then
  ``provider_options[<provider name>]``) are merged into the body as they are: ``thinking``,
  ``top_k``, ``metadata``, ``service_tier``, ... (``base.merge_vendor_fields``), except the
  fields in ``_GUARDED_FIELDS``. Extended thinking's ``thinking.budget_tokens`` must be below
  ``max_tokens``, the vendor's rule; a request that breaks it is refused here rather than sent
  to a 400.
- Thinking passed back: an assistant message's ``thinking_blocks`` (signed, as an answer gave
  them) go first in its content, unchanged, as Anthropic requires when tools are used with
  thinking; its ``reasoning_content`` alone has no signature, so it is not sent (Anthropic
  would refuse an unsigned thinking block).
- JSON mode: the plain Messages API has none, so ``response_format`` becomes one forced tool
  named ``JSON_TOOL_NAME`` whose input schema is the requested schema, and the parsers turn a
  ``tool_use`` of that name back into message text (finish reason "stop"). The parsers see only
  the answer, not the request, so the name is reserved: a caller's tool may not use it and
  ``response_format`` cannot be combined with ``tools`` or ``tool_choice``. A ``tool_use`` of
  that name can therefore only be the forced JSON answer.

Pure: no I/O, no clock, no environment. This module builds requests; reading answers
(bodies, streams, errors) lives in ``_anthropic_response``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from guardedllm.errors import InvalidRequestError, ProviderError, ThinkingBudgetError
from guardedllm.providers._anthropic_response import (
    JSON_TOOL_NAME,
    AnthropicStreamDecoder,
    parse_error,
    parse_message,
)
from guardedllm.providers.base import (
    GuardedFields,
    Target,
    load_json,
    merge_vendor_fields,
    post_request,
    read_count,
)
from guardedllm.types import ChatCompletion, ChatRequest

__all__ = ["ANTHROPIC_VERSION", "JSON_TOOL_NAME", "AnthropicStreamDecoder", "AnthropicWire"]

# The Messages API version every current Anthropic model speaks; a provider's api_version
# overrides it.
ANTHROPIC_VERSION = "2023-06-01"

# Media types Anthropic accepts for base64 images (anything else is refused by the API).
_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# OpenAI ``extra`` parameters whose value here asks for nothing beyond Anthropic's behaviour:
# one choice, no logprobs. Any other value of these, and any other key (besides
# max_completion_tokens, parallel_tool_calls and stream_options, translated below), has no
# Anthropic meaning and is refused.
_NO_OP_EXTRA: Mapping[str, object] = {"n": 1, "logprobs": False}

_TOOL_CHOICES: Mapping[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "required": {"type": "any"},
    "none": {"type": "none"},
}

JSON_OBJECT_DESCRIPTION = "Give your answer as a JSON object through this tool."
JSON_SCHEMA_DESCRIPTION = "Give your answer, a {name} object, through this tool."

_ROUTE_ADVICE = "route the call to an OpenAI deployment or drop it"

# Body fields the guards count on, refused in extra_body and provider_options.
_GUARDED_FIELDS: GuardedFields = {
    ("model",): "choose the model with create(model=...)",
    ("messages",): "pass messages=... to create()",
    ("system",): "pass system messages in messages=...",
    ("max_tokens",): "pass max_tokens=... to create()",
    ("stream",): "pass stream=True to create()",
}

# The fields of a Messages request that /v1/messages/count_tokens accepts.
_COUNTED_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")


class AnthropicWire:
    """The Anthropic Messages API: request building, response parsing, error mapping."""

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        return self._post(target, "v1/messages", _request_body(request, target))

    def build_count_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        body = _request_body(request, target)
        # count_tokens takes the input side of a Messages request only.
        counted = {key: body[key] for key in _COUNTED_FIELDS if key in body}
        return self._post(target, "v1/messages/count_tokens", counted)

    def parse_count(self, body: bytes, target: Target) -> int:
        return read_count(body, target, "input_tokens")

    def _post(self, target: Target, path: str, body: dict[str, Any]) -> httpx.Request:
        try:
            content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise _invalid(
                f"the request holds a value that is not JSON ({exc}); pass only strings, finite "
                "numbers, booleans, None, lists and dicts"
            ) from None
        headers = {
            "anthropic-version": target.api_version or ANTHROPIC_VERSION,
            "content-type": "application/json",
        }
        if target.api_key is not None:
            headers["x-api-key"] = target.api_key
        headers.update(target.headers)
        return post_request(
            target,
            path,
            headers=list(headers.items()),
            content=content,
        )

    def parse_response(self, body: bytes, target: Target) -> ChatCompletion:
        return parse_message(body, target)

    def parse_error(
        self, status: int, headers: httpx.Headers, body: bytes, target: Target, *, now: float
    ) -> ProviderError:
        return parse_error(status, headers, body, target, now=now)

    def stream_decoder(self, target: Target) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(target)


# --------------------------------------------------------------------------- request body


def _invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Anthropic cannot take this request: {message}.")


def _request_body(request: ChatRequest, target: Target) -> dict[str, Any]:
    # OpenAI's API reads an explicit null as "the default", so None values ask for nothing.
    extra = {key: value for key, value in request.extra.items() if value is not None}
    # The stream decoder always reports usage, whatever include_usage says.
    extra.pop("stream_options", None)
    max_completion_tokens = extra.pop("max_completion_tokens", None)
    parallel = extra.pop("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise _invalid(f"`parallel_tool_calls` must be true or false, not {parallel!r}")
    for key, value in extra.items():
        if key not in _NO_OP_EXTRA or not _same(value, _NO_OP_EXTRA[key]):
            raise _invalid(
                f"the OpenAI parameter `{key}`={value!r} has no equivalent; {_ROUTE_ADVICE}"
            )
    if request.seed is not None:
        raise _invalid(f"Anthropic has no `seed` parameter; {_ROUTE_ADVICE}")

    system, messages = _translate_messages(request.messages)
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": _max_tokens(request.max_tokens, max_completion_tokens, target),
        "messages": messages,
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        if not 0 <= request.temperature <= 1:
            raise _invalid(
                f"`temperature`={request.temperature} is outside Anthropic's range 0-1 "
                "(OpenAI's goes to 2); pass a value from 0 to 1"
            )
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    body.update(_tool_fields(request, parallel=parallel))
    if request.stream:
        body["stream"] = True
    body = merge_vendor_fields(body, request, target, _GUARDED_FIELDS)
    _check_thinking_budget(body.get("thinking"), body["max_tokens"])
    return body


def _check_thinking_budget(thinking: object, max_tokens: int) -> None:
    """Anthropic's rule for extended thinking: the budget is part of ``max_tokens`` and must be
    below it. Refused here, naming both numbers, rather than sent to a 400."""
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= max_tokens:
        raise ThinkingBudgetError(
            f"Anthropic cannot take this request: `thinking.budget_tokens`={budget} is not below "
            f"`max_tokens`={max_tokens}, and Anthropic counts thinking within max_tokens; pass "
            f"max_tokens above {budget} (room for the answer too) or a smaller budget_tokens."
        )


def _plain(value: Any) -> Any:
    """``value`` with every mapping a dict and every tuple a list: callers may hand us frozen
    containers, and json.dumps takes only the plain ones."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _same(value: object, expected: object) -> bool:
    return type(value) is type(expected) and value == expected


def _max_tokens(max_tokens: int | None, max_completion_tokens: object, target: Target) -> int:
    if max_completion_tokens is not None:
        if not isinstance(max_completion_tokens, int) or isinstance(max_completion_tokens, bool):
            raise _invalid("`max_completion_tokens` must be an integer")
        if max_tokens is not None and max_tokens != max_completion_tokens:
            raise _invalid(
                f"`max_tokens`={max_tokens} and `max_completion_tokens`={max_completion_tokens} "
                "disagree; pass only one"
            )
        return max_completion_tokens
    if max_tokens is not None:
        return max_tokens
    if target.max_output_tokens is not None:
        return target.max_output_tokens
    raise _invalid(
        f"Anthropic requires `max_tokens` and deployment {target.deployment!r} has no "
        "max_output_tokens to default to; pass max_tokens or set max_output_tokens for the model"
    )


def _translate_messages(messages: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _invalid(f"{where} is a {type(message).__name__}, not a message object")
        _refuse_unsupported_keys(message, where)
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _content_blocks(message.get("content"), where, images=False)
            system.extend(block["text"] for block in blocks)
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), where, images=True)
            if not blocks:
                raise _invalid(f"{where} (user) has no content; Anthropic rejects empty turns")
        elif role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result_block(message, where)]
        elif role is None:
            raise _invalid(f"{where} has no `role`; give each message a role")
        else:
            raise _invalid(
                f"{where} has role {role!r}; use system, developer, user, assistant or tool"
            )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise _invalid("it needs at least one user or assistant message besides system ones")
    for turn in turns:
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]  # the plain form, as Anthropic's docs write it
    return "\n\n".join(system), turns


def _refuse_unsupported_keys(message: Mapping[str, Any], where: str) -> None:
    # Keys an echoed OpenAI response message carries with null values are harmless; these
    # three mean something Anthropic cannot say when they are set.
    for key, why in (
        ("name", "Anthropic has no participant names"),
        ("function_call", "the legacy function_call form is not translated; use tool_calls"),
        ("audio", "Anthropic takes no audio"),
    ):
        if message.get(key) is not None:
            raise _invalid(f"{where}.{key} is set: {why}; drop it or {_ROUTE_ADVICE}")


def _content_blocks(content: Any, where: str, *, images: bool) -> list[dict[str, Any]]:
    """OpenAI message content as Anthropic blocks; empty texts are left out (Anthropic
    rejects empty text blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, (list, tuple)):
        raise _invalid(f"{where}.content must be a string or a list of content parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        part_where = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _invalid(f"{part_where}.text must be a string")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and images:
            blocks.append(_image_block(part, part_where))
        else:
            raise _invalid(
                f"{part_where} has type {kind!r}, which this Anthropic message cannot hold "
                f"(it takes text{' and image_url' if images else ''} parts); {_ROUTE_ADVICE}"
            )
    return blocks


def _image_block(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    if not isinstance(image, Mapping) or not isinstance(image.get("url"), str):
        raise _invalid(f"{where}.image_url must be an object with a string url")
    url: str = image["url"]
    if image.get("detail") not in (None, "auto"):
        raise _invalid(f"{where}.image_url.detail has no Anthropic equivalent; drop it")
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url.startswith("data:"):
        header, _, data = url[len("data:") :].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding == "base64" and media_type in _IMAGE_MEDIA_TYPES and data:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
        raise _invalid(
            f"{where}.image_url is a data URL Anthropic cannot take; send "
            f"data:<type>;base64,<data> with one of {', '.join(sorted(_IMAGE_MEDIA_TYPES))}"
        )
    raise _invalid(f"{where}.image_url.url must be an http(s) URL or a base64 data URL")


def _assistant_blocks(message: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    # Signed thinking comes first in the turn, as Anthropic answered it and requires it back.
    blocks = _thinking_blocks(message.get("thinking_blocks"), where)
    blocks += _content_blocks(message.get("content"), where, images=False)
    refusal = message.get("refusal")
    if not blocks and isinstance(refusal, str) and refusal:
        blocks.append({"type": "text", "text": refusal})  # what the assistant said, after all
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, (list, tuple)):
            raise _invalid(f"{where}.tool_calls must be a list")
        for k, call in enumerate(tool_calls):
            blocks.append(_tool_use_block(call, f"{where}.tool_calls[{k}]"))
    if not blocks:
        raise _invalid(f"{where} (assistant) has neither content nor tool_calls")
    return blocks


def _thinking_blocks(value: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's ``thinking_blocks`` as the Anthropic blocks they came from."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise _invalid(f"{where}.thinking_blocks must be a list, as the answer gave it")
    blocks: list[dict[str, Any]] = []
    for k, block in enumerate(value):
        kind = block.get("type") if isinstance(block, Mapping) else None
        fields = ("thinking", "signature") if kind == "thinking" else ("data",)
        if kind not in ("thinking", "redacted_thinking") or not all(
            isinstance(block.get(name), str) for name in fields
        ):
            raise _invalid(
                f"{where}.thinking_blocks[{k}] is not a thinking block as an answer gave it "
                "(type thinking with thinking and signature, or redacted_thinking with data); "
                "pass the blocks back unchanged"
            )
        blocks.append({"type": kind, **{name: block[name] for name in fields}})
    return blocks


def _tool_use_block(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, Mapping) or call.get("type", "function") != "function":
        raise _invalid(f"{where} must be a function tool call; {_ROUTE_ADVICE}")
    call_id = call.get("id")
    function = call.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"{where}.id must be a non-empty string")
    if not isinstance(name, str) or not isinstance(arguments, str):
        raise _invalid(f"{where}.function needs a string name and string arguments")
    try:
        # Some clients send "" for a call without arguments; that is the empty object.
        tool_input = load_json(arguments) if arguments.strip() else {}
    except ValueError:
        tool_input = None
    if not isinstance(tool_input, dict):
        raise _invalid(
            f"{where}.function.arguments is not a JSON object, and Anthropic tool inputs must "
            "be one; pass the arguments as JSON object text"
        )
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def _tool_result_block(message: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"{where} (tool) needs `tool_call_id`, the id of the call it answers")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        block["content"] = content
    elif content is not None:
        block["content"] = _content_blocks(content, where, images=True)
    return block


# --------------------------------------------------------------------------- tools


def _tool_fields(request: ChatRequest, *, parallel: bool) -> dict[str, Any]:
    if request.response_format is not None:
        json_tool = _json_tool(request.response_format)
        if json_tool is not None:
            if request.tools or request.tool_choice is not None:
                raise _invalid(
                    "`response_format` becomes a forced tool on Anthropic, so it cannot be "
                    "combined with `tools` or `tool_choice`; drop one of them"
                )
            return {"tools": [json_tool], "tool_choice": {"type": "tool", "name": JSON_TOOL_NAME}}
    fields: dict[str, Any] = {}
    if request.tools is not None:
        fields["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        fields["tool_choice"] = _tool_choice(request.tool_choice)
    if not parallel and fields.get("tools"):
        choice = fields.setdefault("tool_choice", {"type": "auto"})
        if choice["type"] != "none":  # "none" takes no such flag: no tool runs at all
            choice["disable_parallel_tool_use"] = True
    return fields


def _json_tool(response_format: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "text":
        return None  # OpenAI's default: nothing to ask for
    if kind == "json_object":
        return {
            "name": JSON_TOOL_NAME,
            "description": JSON_OBJECT_DESCRIPTION,
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping):
            raise _invalid("`response_format.json_schema` must be an object")
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise _invalid(
                "`response_format.json_schema.schema` must describe an object (Anthropic tool "
                "inputs are objects); wrap the schema in an object property"
            )
        name = spec.get("name")
        description = JSON_SCHEMA_DESCRIPTION.format(name=name if name else "JSON")
        if isinstance(spec.get("description"), str):
            description += " " + spec["description"]
        tool: dict[str, Any] = {
            "name": JSON_TOOL_NAME,
            "description": description,
            "input_schema": _plain(schema),
        }
        if spec.get("strict") is True:
            tool["strict"] = True
        return tool
    raise _invalid(
        f"`response_format` type {kind!r} is unknown; use text, json_object or json_schema"
    )


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, Mapping) else type(tool).__name__
        raise _invalid(f"{where} has type {kind!r}; only function tools translate; {_ROUTE_ADVICE}")
    function = tool.get("function")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _invalid(f"{where}.function must be an object with a string name")
    name: str = function["name"]
    if name == JSON_TOOL_NAME:
        raise _invalid(
            f"{where} is named {JSON_TOOL_NAME!r}, the name reserved for response_format on "
            "Anthropic; rename the tool"
        )
    result: dict[str, Any] = {
        "name": name,
        "input_schema": _plain(function.get("parameters") or {"type": "object", "properties": {}}),
    }
    if isinstance(function.get("description"), str):
        result["description"] = function["description"]
    if function.get("strict") is True:
        result["strict"] = True
    return result


def _tool_choice(choice: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str):
        if choice in _TOOL_CHOICES:
            return dict(_TOOL_CHOICES[choice])
    elif choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise _invalid(
        f"`tool_choice`={choice!r} does not translate; use auto, none, required or "
        '{"type": "function", "function": {"name": ...}}'
    )
