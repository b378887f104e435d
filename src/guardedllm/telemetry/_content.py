"""Message content in the conventions' JSON shape, for ``record_content=True`` only.

The conventions describe a chat as messages of typed parts (``{"role": "user", "parts":
[{"type": "text", "content": "..."}]}``); output messages add a ``finish_reason``. Attribute
values cannot nest, so each list is serialized to one JSON string, as the conventions allow for
structured values. Images are recorded as a part naming their kind, never their bytes or URL:
a data URL would put megabytes of base64 on a span, and a signed URL is a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from guardedllm.types import ChatCompletion, ChatCompletionChunk

Part = dict[str, Any]


def input_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """The request's messages, as ``gen_ai.input.messages`` JSON."""
    return _dump([_input_message(message) for message in messages])


def output_messages_of_completion(response: ChatCompletion) -> str:
    """A completion's choices, as ``gen_ai.output.messages`` JSON."""
    messages = []
    for choice in response.choices:
        parts: list[Part] = []
        if choice.message.content:
            parts.append({"type": "text", "content": choice.message.content})
        for call in choice.message.tool_calls or ():
            parts.append(_tool_call(call.id, call.function.name, call.function.arguments))
        messages.append(
            {"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason or ""}
        )
    return _dump(messages)


def output_messages_of_chunks(chunks: Sequence[ChatCompletionChunk]) -> str:
    """A stream's choices, reassembled from its deltas, as ``gen_ai.output.messages`` JSON."""
    texts: dict[int, list[str]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    reasons: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts.setdefault(choice.index, [])
            if choice.delta.content:
                texts[choice.index].append(choice.delta.content)
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(choice.index, {}).setdefault(
                    delta.index, {"id": None, "name": "", "arguments": []}
                )
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"].append(delta.function.arguments or "")
            if choice.finish_reason is not None:
                reasons[choice.index] = choice.finish_reason
    messages = []
    for index in sorted(texts):
        parts: list[Part] = []
        text = "".join(texts[index])
        if text:
            parts.append({"type": "text", "content": text})
        for _, call in sorted(calls.get(index, {}).items()):
            parts.append(_tool_call(call["id"], call["name"], "".join(call["arguments"])))
        messages.append(
            {"role": "assistant", "parts": parts, "finish_reason": reasons.get(index, "")}
        )
    return _dump(messages)


def _input_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    parts = _content_parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
    if role == "tool":
        response = message.get("content")
        parts = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": response if isinstance(response, str) else _texts_of(response),
            }
        ]
    return {"role": role, "parts": parts}


def _content_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[Part] = []
    for item in content or ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "text":
            parts.append({"type": "text", "content": item.get("text", "")})
        elif kind == "image_url":
            parts.append({"type": "image", "modality": "image"})
        else:
            parts.append({"type": str(kind)})
    return parts


def _texts_of(content: Any) -> str:
    return "".join(part.get("content", "") for part in _content_parts(content))


def _tool_call(call_id: Any, name: Any, arguments: Any) -> Part:
    # The conventions record arguments as a value: parse the JSON text the model wrote, and keep
    # the text itself when it is not valid JSON (a stream cut short, a model's typo).
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else arguments
    except (ValueError, RecursionError):  # nested deeper than the parser goes: kept as text
        value = arguments
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": value}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
