"""The types of ``chat.completions.create``'s arguments, for type checkers, in the manner of
openai-python's ``openai.types.chat`` params: messages, tools, tool choice, response format and
stream options as ``TypedDict``s, and every other parameter with its real type
(``CompletionParams``). A dict literal written for the openai package type-checks here too;
``temperature="hot"`` or an unknown parameter does not.

Nothing here runs per call: the clients import this module only while type checking, and at run
time a request is checked by ``_request.chat_request`` (which raises ``InvalidRequestError``
naming the bad argument), whatever a type checker said.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, TypedDict

__all__ = [
    "ChatCompletionAssistantMessageParam",
    "ChatCompletionContentPartImageParam",
    "ChatCompletionContentPartInputAudioParam",
    "ChatCompletionContentPartParam",
    "ChatCompletionContentPartTextParam",
    "ChatCompletionDeveloperMessageParam",
    "ChatCompletionMessageParam",
    "ChatCompletionMessageToolCallParam",
    "ChatCompletionNamedToolChoiceParam",
    "ChatCompletionStreamOptionsParam",
    "ChatCompletionSystemMessageParam",
    "ChatCompletionToolChoiceOptionParam",
    "ChatCompletionToolMessageParam",
    "ChatCompletionToolParam",
    "ChatCompletionUserMessageParam",
    "CompletionParams",
    "FunctionDefinition",
    "ParseParams",
    "ResponseFormat",
    "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema",
    "ResponseFormatText",
]

# Every JSON value: what a JSON schema, a tool's parameters, extra_body or provider_options hold.
JSONValue = object

# --------------------------------------------------------------------------- content parts


class ChatCompletionContentPartTextParam(TypedDict):
    type: Literal["text"]
    text: str


class _ImageURLRequired(TypedDict):
    url: str


class ImageURL(_ImageURLRequired, total=False):
    detail: Literal["auto", "low", "high"]


class ChatCompletionContentPartImageParam(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(TypedDict):
    data: str
    format: Literal["wav", "mp3"]


class ChatCompletionContentPartInputAudioParam(TypedDict):
    type: Literal["input_audio"]
    input_audio: InputAudio


ChatCompletionContentPartParam = (
    ChatCompletionContentPartTextParam
    | ChatCompletionContentPartImageParam
    | ChatCompletionContentPartInputAudioParam
)

# --------------------------------------------------------------------------- messages


class _SystemRequired(TypedDict):
    role: Literal["system"]
    content: str | Iterable[ChatCompletionContentPartTextParam]


class ChatCompletionSystemMessageParam(_SystemRequired, total=False):
    name: str


class _DeveloperRequired(TypedDict):
    role: Literal["developer"]
    content: str | Iterable[ChatCompletionContentPartTextParam]


class ChatCompletionDeveloperMessageParam(_DeveloperRequired, total=False):
    name: str


class _UserRequired(TypedDict):
    role: Literal["user"]
    content: str | Iterable[ChatCompletionContentPartParam]


class ChatCompletionUserMessageParam(_UserRequired, total=False):
    name: str


class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text, as the model wrote it


class ChatCompletionMessageToolCallParam(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class _AssistantRequired(TypedDict):
    role: Literal["assistant"]


class ChatCompletionAssistantMessageParam(_AssistantRequired, total=False):
    content: str | Iterable[ChatCompletionContentPartTextParam] | None
    name: str
    refusal: str | None
    tool_calls: Iterable[ChatCompletionMessageToolCallParam]


class ChatCompletionToolMessageParam(TypedDict):
    role: Literal["tool"]
    content: str | Iterable[ChatCompletionContentPartTextParam]
    tool_call_id: str


ChatCompletionMessageParam = (
    ChatCompletionDeveloperMessageParam
    | ChatCompletionSystemMessageParam
    | ChatCompletionUserMessageParam
    | ChatCompletionAssistantMessageParam
    | ChatCompletionToolMessageParam
)

# --------------------------------------------------------------------------- tools


class _FunctionDefinitionRequired(TypedDict):
    name: str


class FunctionDefinition(_FunctionDefinitionRequired, total=False):
    description: str
    parameters: Mapping[str, JSONValue]  # a JSON schema
    strict: bool | None


class ChatCompletionToolParam(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


class _NamedFunction(TypedDict):
    name: str


class ChatCompletionNamedToolChoiceParam(TypedDict):
    type: Literal["function"]
    function: _NamedFunction


ChatCompletionToolChoiceOptionParam = (
    Literal["none", "auto", "required"] | ChatCompletionNamedToolChoiceParam
)

# --------------------------------------------------------------------------- response format


class ResponseFormatText(TypedDict):
    type: Literal["text"]


class ResponseFormatJSONObject(TypedDict):
    type: Literal["json_object"]


class _JSONSchemaRequired(TypedDict):
    name: str


class JSONSchema(_JSONSchemaRequired, total=False):
    description: str
    schema: Mapping[str, JSONValue]
    strict: bool | None


class ResponseFormatJSONSchema(TypedDict):
    type: Literal["json_schema"]
    json_schema: JSONSchema


ResponseFormat = ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema


class ChatCompletionStreamOptionsParam(TypedDict, total=False):
    include_usage: bool


# --------------------------------------------------------------------------- the rest


class ParseParams(TypedDict, total=False):
    """Every optional parameter of ``parse`` past ``model``, ``messages``,
    ``response_format``, ``policy`` and ``timeout``: those of ``create`` but
    ``response_format`` (``CompletionParams``)."""

    max_tokens: int | None
    max_completion_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: str | Sequence[str] | None
    seed: int | None
    tools: Iterable[ChatCompletionToolParam] | None
    tool_choice: ChatCompletionToolChoiceOptionParam | None
    stream_options: ChatCompletionStreamOptionsParam | None
    user: str | None
    extra_headers: Mapping[str, str] | None
    extra_body: Mapping[str, JSONValue] | None
    provider_options: Mapping[str, Mapping[str, JSONValue]] | None
    # Passed through to OpenAI-kind providers (``_request.OPENAI_EXTRA_PARAMS``).
    audio: Mapping[str, JSONValue] | None
    frequency_penalty: float | None
    logit_bias: Mapping[str, int] | None
    logprobs: bool | None
    metadata: Mapping[str, str] | None
    modalities: Sequence[Literal["text", "audio"]] | None
    n: int | None
    parallel_tool_calls: bool | None
    prediction: Mapping[str, JSONValue] | None
    presence_penalty: float | None
    prompt_cache_key: str | None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None
    safety_identifier: str | None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None
    store: bool | None
    top_logprobs: int | None
    verbosity: Literal["low", "medium", "high"] | None
    web_search_options: Mapping[str, JSONValue] | None


class CompletionParams(ParseParams, total=False):
    """Every optional parameter of ``create`` (and ``estimate``) past ``model``, ``messages``,
    ``stream``, ``policy`` and ``timeout``. The ones from ``frequency_penalty`` down are passed
    to OpenAI-kind providers as they are; another vendor refuses a call that carries one it
    cannot express. Vendor-specific fields go in ``extra_body`` (merged into the body of
    whichever vendor serves the call) or ``provider_options`` (keyed by provider kind or
    provider name: merged only into that vendor's body, after ``extra_body``)."""

    response_format: ResponseFormat | None
