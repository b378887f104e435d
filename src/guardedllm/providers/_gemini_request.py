"""Translation of an OpenAI-shaped ``ChatRequest`` into a Gemini ``generateContent`` body.

- System and developer messages become ``systemInstruction`` (Gemini has one; all of them join
  it, in order); user messages are role ``user``, assistant messages role ``model``, and tool
  results are ``functionResponse`` parts of a ``user`` turn. Consecutive turns of one role merge,
  because Gemini expects user and model turns to alternate.
- Gemini cannot fetch images from the web: an image is inline data (a base64 data URL) or a
  file it already holds (``gs://`` or a Gemini File API URI), whose MIME type must be inferable
  from the file name.
- A ``functionResponse`` needs the function's name, which OpenAI tool messages do not carry: it
  is looked up by ``tool_call_id`` among the tool calls of earlier assistant messages, the most
  recent call with that id winning (generated ids like ``call_0`` repeat across turns).
- Tool parameters go out as Gemini's OpenAPI-subset ``parameters`` schema. Keys that schema
  rejects and that only annotate or loosen validation (``$schema``, ``$id``, ``$comment``,
  ``additionalProperties``) are stripped at every level, and local ``$ref``s into ``$defs`` /
  ``definitions`` are inlined (pydantic emits them for nested models). Any other unsupported
  keyword is left for Gemini to reject loudly rather than dropped quietly.
- Vendor fields (``extra_body``, then ``provider_options["gemini"]``, then
  ``provider_options[<provider name>]``) are merged into the body as they are, deeply:
  ``{"generationConfig": {"thinkingConfig": {...}}}`` joins the generationConfig built here,
  ``safetySettings`` sits beside it (``base.merge_vendor_fields``), except the fields in
  ``_GUARDED_FIELDS``. An assistant message's ``reasoning_content`` and ``thinking_blocks`` are
  answer fields Gemini has no use for (and Anthropic's signed blocks mean nothing to it); they
  are not sent.
- Whatever else Gemini cannot express (``user``, most ``extra`` keys, remote image URLs, unknown
  content parts) raises ``InvalidRequestError`` naming it. Three OpenAI hints with no Gemini
  equivalent are deliberately not sent, because refusing them would make ordinary OpenAI
  requests unusable here: a message's ``name`` (a speaker label), an image's ``detail`` (a
  resolution hint) and a tool's ``strict`` (Gemini constrains calls to the declared schema
  without being asked, though without OpenAI's guarantee).

Pure: values in, a JSON-ready dict out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from guardedllm.errors import InvalidRequestError
from guardedllm.providers.base import GuardedFields, Target, load_json, merge_vendor_fields
from guardedllm.types import ChatRequest

__all__ = ["request_body"]

_ROUTE_ELSEWHERE = "drop it or route this call to a deployment of a vendor that supports it"

# Schema keys Gemini's `parameters` schema rejects and whose removal only loosens validation.
_STRIPPED_SCHEMA_KEYS = frozenset({"$schema", "$id", "$comment", "additionalProperties"})
# Keys whose value is one sub-schema, or a list of them.
_SUBSCHEMA_KEYS = frozenset({"items", "not", "anyOf", "oneOf", "allOf", "prefixItems"})

# Image types Gemini accepts, by file extension (mimetypes would read system files).
_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_FILE_API_PREFIX = "https://generativelanguage.googleapis.com/"

# Body fields the guards count on, refused in extra_body and provider_options; Gemini reads
# its JSON fields in snake_case too, so both spellings are guarded.
_MAX_TOKENS = "pass max_tokens=... to create()"
_SYSTEM = "pass system messages in messages=..."
_GUARDED_FIELDS: GuardedFields = {
    ("contents",): "pass messages=... to create()",
    ("systemInstruction",): _SYSTEM,
    ("system_instruction",): _SYSTEM,
    ("generationConfig", "maxOutputTokens"): _MAX_TOKENS,
    ("generation_config", "max_output_tokens"): _MAX_TOKENS,
    ("generationConfig", "candidateCount"): "guardedllm reads one candidate; drop it",
    ("generation_config", "candidate_count"): "guardedllm reads one candidate; drop it",
}

# OpenAI parameters in `extra` with a Gemini generationConfig equivalent.
_EXTRA_CONFIG_KEYS = {
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "max_completion_tokens": "maxOutputTokens",
}
# OpenAI `extra` parameters whose value here asks for nothing beyond what Gemini does anyway:
# one choice, no logprobs, several tool calls at once allowed. (`stream_options` is accepted
# whatever it says: the stream decoder always reports usage.)
_NO_OP_EXTRA: Mapping[str, object] = {"n": 1, "logprobs": False, "parallel_tool_calls": True}


def request_body(request: ChatRequest, target: Target) -> dict[str, Any]:
    """The ``generateContent`` body for ``request`` at ``target``, the caller's vendor fields
    merged in; ``InvalidRequestError`` names anything Gemini cannot express."""
    if request.user is not None:
        raise InvalidRequestError(f"Gemini has no end-user field for `user`; {_ROUTE_ELSEWHERE}.")
    system, contents = _contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": _function_declarations(request.tools)}]
    if request.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    return merge_vendor_fields(body, request, target, _GUARDED_FIELDS)


def _contents(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, latest call wins
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidRequestError(f"{where} is not a dict; give each message as a dict.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_parts(message.get("content"), where))
            continue
        if role == "user":
            gemini_role, parts = "user", _user_parts(message.get("content"), where)
        elif role == "assistant":
            gemini_role, parts = "model", _assistant_parts(message, where, call_names)
        elif role == "tool":
            gemini_role, parts = "user", [_function_response(message, where, call_names)]
        elif role is None:
            raise InvalidRequestError(
                f"{where} has no role; give it one of system, developer, user, assistant or tool."
            )
        else:
            raise InvalidRequestError(
                f"{where} has role {role!r}, which Gemini cannot take; use system, developer, "
                "user, assistant or tool."
            )
        if not parts:
            raise InvalidRequestError(
                f"{where} ({role}) is empty and Gemini rejects empty turns; give it content "
                "or remove it."
            )
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "The messages hold no user or assistant message; Gemini needs at least one."
        )
    return system, contents


def _content_items(content: Any, where: str) -> list[Mapping[str, Any]]:
    """The content as a list of OpenAI parts (a plain string is one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, Sequence) and all(isinstance(p, Mapping) for p in content):
        return list(content)
    raise InvalidRequestError(
        f"{where}.content is {type(content).__name__}; give a string or a list of content parts."
    )


def _part_text(part: Mapping[str, Any], key: str, where: str) -> str:
    text = part.get(key)
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}.{key} is missing or not a string; give its text.")
    return text


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Parts of a message that may hold only text (system, developer, tool)."""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(_content_items(content, where)):
        if part.get("type") != "text":
            raise InvalidRequestError(
                f"{where}.content[{j}] has type {part.get('type')!r}; system, developer and "
                "tool messages take only text parts."
            )
        if text := _part_text(part, "text", f"{where}.content[{j}]"):
            parts.append({"text": text})
    return parts


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(_content_items(content, where)):
        at = f"{where}.content[{j}]"
        kind = part.get("type")
        if kind == "text":
            if text := _part_text(part, "text", at):
                parts.append({"text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else None
            if not isinstance(url, str):
                raise InvalidRequestError(f"{at}.image_url.url is missing; give the image URL.")
            parts.append(_image_part(url, f"{at}.image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            fmt = audio.get("format") if isinstance(audio, Mapping) else None
            data = audio.get("data") if isinstance(audio, Mapping) else None
            if fmt not in _AUDIO_TYPES or not isinstance(data, str):
                raise InvalidRequestError(
                    f"{at}.input_audio needs base64 `data` and a `format` of wav or mp3."
                )
            parts.append({"inlineData": {"mimeType": _AUDIO_TYPES[fmt], "data": data}})
        elif kind == "file":
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, Mapping) else None
            if not isinstance(data, str):
                raise InvalidRequestError(
                    f"{at}.file has no file_data; Gemini cannot read OpenAI file ids, so "
                    "send the file inline as a base64 data URL in file_data."
                )
            parts.append(_data_url_part(data, f"{at}.file.file_data"))
        else:
            raise InvalidRequestError(
                f"{at} has content part type {kind!r}, which Gemini cannot take; use text, "
                f"image_url, input_audio or file parts, or {_ROUTE_ELSEWHERE}."
            )
    return parts


def _data_url_part(url: str, where: str) -> dict[str, Any]:
    header, comma, data = url.partition(",")
    mime = header.removeprefix("data:").split(";", 1)[0]
    if not (comma and header.startswith("data:") and header.endswith(";base64") and "/" in mime):
        raise InvalidRequestError(
            f"{where} is not a base64 data URL; give it as data:<mime type>;base64,<data>."
        )
    return {"inlineData": {"mimeType": mime, "data": data}}


def _image_part(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        return _data_url_part(url, where)
    if url.startswith("gs://") or (url.startswith(_FILE_API_PREFIX) and "/files/" in url):
        extension = urlsplit(url).path.rpartition("/")[2].rpartition(".")[2].lower()
        mime = _IMAGE_TYPES.get(extension)
        if mime is None:
            raise InvalidRequestError(
                f"{where}: cannot tell the image type of {url!r} from its name (Gemini needs "
                f"it); name the file with one of the extensions {', '.join(_IMAGE_TYPES)}, or "
                "send the image inline as a base64 data URL."
            )
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise InvalidRequestError(
        f"{where}: Gemini cannot fetch images from URLs; send the image inline as a base64 "
        f"data URL (data:image/png;base64,...), upload it to the Gemini File API, or "
        f"{_ROUTE_ELSEWHERE}."
    )


def _assistant_parts(
    message: Mapping[str, Any], where: str, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if content is not None:
        for j, part in enumerate(_content_items(content, where)):
            key = part.get("type")
            if key not in ("text", "refusal"):
                raise InvalidRequestError(
                    f"{where}.content[{j}] has type {part.get('type')!r}; assistant messages "
                    "take only text and refusal parts."
                )
            if text := _part_text(part, key, f"{where}.content[{j}]"):
                parts.append({"text": text})
    tool_calls = message.get("tool_calls") or ()
    if isinstance(tool_calls, str) or not isinstance(tool_calls, Sequence):
        raise InvalidRequestError(f"{where}.tool_calls is not a list; give a list of calls.")
    for j, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or call.get("type", "function") != "function":
            raise InvalidRequestError(
                f"{at} is not a function call; Gemini takes only function tool calls."
            )
        name = _part_text(function, "name", f"{at}.function")
        call_id = call.get("id")
        if isinstance(call_id, str):
            call_names[call_id] = name
        parts.append({"functionCall": {"name": name, "args": _arguments(function, at)}})
    return parts


def _arguments(function: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    raw = function.get("arguments")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        args = load_json(raw) if isinstance(raw, str) else None
    except ValueError:
        args = None
    if not isinstance(args, Mapping):
        raise InvalidRequestError(
            f"{where}.function.arguments is not a JSON object as text; Gemini needs the "
            'arguments as an object, so give valid JSON like \'{"city": "Paris"}\'.'
        )
    return args


def _function_response(
    message: Mapping[str, Any], where: str, call_names: Mapping[str, str]
) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidRequestError(
            f"{where} is a tool message without tool_call_id; give the id of the call it answers."
        )
    name = call_names.get(call_id)
    if name is None:
        raise InvalidRequestError(
            f"{where} answers tool call {call_id!r}, but no earlier assistant message made that "
            "call; Gemini needs the function's name, so keep the assistant message with its "
            "tool_calls before the tool results."
        )
    text = "".join(p["text"] for p in _text_parts(message.get("content"), where))
    try:
        parsed = load_json(text)
    except ValueError:
        parsed = None
    response = parsed if isinstance(parsed, Mapping) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _function_declarations(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, Mapping) else type(tool).__name__
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if kind != "function" or not isinstance(function, Mapping):
            raise InvalidRequestError(
                f"{where} has type {kind!r}; Gemini takes only function tools (with a "
                f'"function" object) here, so {_ROUTE_ELSEWHERE}.'
            )
        declaration: dict[str, Any] = {"name": _part_text(function, "name", f"{where}.function")}
        if isinstance(description := function.get("description"), str):
            declaration["description"] = description
        parameters = function.get("parameters")
        if parameters is not None:
            schema = _gemini_schema(parameters, f"{where}.function.parameters")
            # Gemini rejects an OBJECT schema with no properties; a function without
            # parameters is declared without the key.
            if schema.get("type") != "object" or schema.get("properties"):
                declaration["parameters"] = schema
        declarations.append(declaration)
    return declarations


def _gemini_schema(schema: Any, where: str) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"{where} is not a JSON schema object; give a dict.")
    definitions: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        if isinstance(defs := schema.get(key), Mapping):
            definitions.update(defs)
    result: dict[str, Any] = _strip_schema(schema, definitions, where, ())
    return result


def _strip_schema(
    node: Any, definitions: Mapping[str, Any], where: str, refs: tuple[str, ...]
) -> Any:
    if isinstance(node, list):
        return [_strip_schema(n, definitions, where, refs) for n in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        name = str(ref).rpartition("/")[2]
        local = isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/"))
        if not local or name not in definitions or name in refs:
            raise InvalidRequestError(
                f"{where}: cannot inline $ref {ref!r} (only non-recursive refs into $defs or "
                "definitions can be inlined for Gemini); flatten the schema."
            )
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _strip_schema({**definitions[name], **siblings}, definitions, where, (*refs, name))
    stripped: dict[str, Any] = {}
    for key, value in node.items():
        if key in _STRIPPED_SCHEMA_KEYS or key in ("$defs", "definitions"):
            continue
        if key == "properties" and isinstance(value, Mapping):
            # Property names are data, not schema keys: a property may be called "$schema".
            stripped[key] = {
                prop: _strip_schema(sub, definitions, where, refs) for prop, sub in value.items()
            }
        elif key in _SUBSCHEMA_KEYS:
            stripped[key] = _strip_schema(value, definitions, where, refs)
        else:
            stripped[key] = value
    return stripped


def _calling_config(tool_choice: str | Mapping[str, Any]) -> dict[str, Any]:
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(tool_choice, str) and tool_choice in modes:
        return {"mode": modes[tool_choice]}
    function = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function" and name:
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise InvalidRequestError(
        f"tool_choice {tool_choice!r} has no Gemini equivalent; use auto, none, required or "
        '{"type": "function", "function": {"name": ...}}.'
    )


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("temperature", request.temperature),
        ("topP", request.top_p),
        ("maxOutputTokens", request.max_tokens),
        ("seed", request.seed),
    ):
        if value is not None:
            config[key] = value
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.response_format is not None:
        config.update(_response_format(request.response_format))
    unsupported: list[str] = []
    for key, value in request.extra.items():
        gemini_key = _EXTRA_CONFIG_KEYS.get(key)
        if value is None or key == "stream_options":
            continue  # None asks for the default
        if gemini_key is not None:
            if config.get(gemini_key, value) != value:
                raise InvalidRequestError(
                    f"max_tokens and {key} disagree ({config[gemini_key]} vs {value}); "
                    "give only one of them."
                )
            config[gemini_key] = value
        elif key not in _NO_OP_EXTRA or _NO_OP_EXTRA[key] != value:
            unsupported.append(key)
    if unsupported:
        raise InvalidRequestError(
            f"Gemini cannot express the parameter(s) {', '.join(sorted(unsupported))}; "
            f"{_ROUTE_ELSEWHERE} (an OpenAI deployment takes every OpenAI parameter)."
        )
    return config


def _response_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    kind = response_format.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping):
            raise InvalidRequestError(
                'response_format json_schema has no "json_schema" object; give '
                '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}.'
            )
        config: dict[str, Any] = {"responseMimeType": "application/json"}
        if spec.get("schema") is not None:
            config["responseJsonSchema"] = spec["schema"]
        return config
    raise InvalidRequestError(
        f"response_format type {kind!r} has no Gemini equivalent; use text, json_object or "
        "json_schema."
    )
