"""Request, response, usage and chunk values.

Responses follow the OpenAI Chat Completions shape whatever vendor served the call, attribute
for attribute (``resp.choices[0].message.content``, ``resp.usage.prompt_tokens``,
``resp.usage.prompt_tokens_details.cached_tokens``), so code written against the openai package
keeps working. Every value is a frozen attrs class: safe to share between threads and tasks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError

__all__ = [
    "Attempt",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatRequest",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingUsage",
    "FinishReason",
    "Function",
    "GuardInfo",
    "PlanEntry",
    "PromptTokensDetails",
    "ThinkingBlock",
    "ToolCall",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]

# Every JSON-ish value we pass through untouched (messages, tools, response_format).
JSON = Any


def _to_dict(value: Any) -> Any:
    """Plain-data form of a value, as the OpenAI SDK's ``model_dump()`` gives it."""
    if attrs.has(type(value)):
        return {
            f.name: _to_dict(getattr(value, f.name))
            for f in attrs.fields(type(value))
            if f.name != "guard"
        }
    if isinstance(value, (list, tuple)):
        return [_to_dict(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_dict(v) for k, v in value.items()}
    if hasattr(value, "model_dump"):  # a pydantic model (``message.parsed``)
        return value.model_dump()
    return value


# What ``model_dump(include=..., exclude=...)`` takes, as pydantic does: a set of field names, or
# a mapping of field name (or, within a list, index or "__all__") to True or a nested selection.
IncEx = AbstractSet[str] | AbstractSet[int] | Mapping[Any, Any]


def _part(selection: IncEx | None, key: str | int) -> IncEx | bool | None:
    """What ``selection`` says of ``key``: True (all of it), a nested selection, or None
    (``key`` is not named)."""
    if selection is None:
        return None
    if isinstance(selection, Mapping):
        part = selection.get(key, selection.get("__all__"))
        return True if part is True or part is ... else part
    return True if key in selection else None


def _narrowed(
    include: IncEx | None, exclude: IncEx | None, key: str | int
) -> tuple[bool, Any, Any]:
    """Whether ``key`` is kept by the selections, and the selections within it."""
    inner_include = _part(include, key)
    inner_exclude = _part(exclude, key)
    if (include is not None and inner_include is None) or inner_exclude is True:
        return False, None, None
    return True, None if inner_include is True else inner_include, inner_exclude


def _dump(
    value: Any,
    include: IncEx | None,
    exclude: IncEx | None,
    *,
    exclude_none: bool,
    exclude_defaults: bool,
) -> Any:
    """``_to_dict`` with pydantic's selections: ``include`` keeps only what it names,
    ``exclude`` drops what it names (with True) or narrows into it (a nested selection)."""
    dump = functools.partial(_dump, exclude_none=exclude_none, exclude_defaults=exclude_defaults)
    if attrs.has(type(value)):
        out: dict[str, Any] = {}
        for f in attrs.fields(type(value)):
            name = f.name
            item = getattr(value, name)
            if name == "guard" or (exclude_none and item is None):
                continue
            if exclude_defaults and f.default is not attrs.NOTHING:
                # A factory default (``attrs.Factory``) is compared by what it makes.
                factory = getattr(f.default, "factory", None)
                default = factory() if callable(factory) else f.default
                if item == default:
                    continue
            keep, inner_include, inner_exclude = _narrowed(include, exclude, name)
            if keep:
                out[name] = dump(item, inner_include, inner_exclude)
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            keep, inner_include, inner_exclude = _narrowed(include, exclude, index)
            if keep:
                items.append(dump(item, inner_include, inner_exclude))
        return items
    return _to_dict(value)


class _Dumpable:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """This value as plain data (dicts, lists, numbers, strings), OpenAI-shaped."""
        result: dict[str, Any] = _to_dict(self)
        return result

    def model_dump(
        self,
        *,
        mode: Literal["json", "python"] | str = "python",
        include: IncEx | None = None,
        exclude: IncEx | None = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: bool | Literal["none", "warn", "error"] = True,
    ) -> dict[str, Any]:
        """This value as plain data, as the openai package's ``model_dump`` gives it, with
        its selections: ``include``/``exclude`` (sets of field names, or nested mappings),
        ``exclude_none`` and ``exclude_defaults``. Both modes give the same data: every
        value here is already JSON's (str, int, float, bool, None, lists and dicts).
        ``exclude_unset`` leaves out what ``exclude_defaults`` does: these values do not
        remember which fields the vendor's answer set, and a field it left out holds its
        default. ``by_alias``, ``round_trip`` and ``warnings`` change nothing (no field has an
        alias or a computed form) and are taken so that code written for openai's types runs.
        """
        if mode not in ("json", "python"):
            raise ArgumentError(
                f"model_dump(mode={mode!r}): mode must be 'python' or 'json' (both give the "
                "same plain data here)"
            )
        if (include, exclude) == (None, None) and not (
            exclude_none or exclude_defaults or exclude_unset
        ):
            return self.to_dict()
        result: dict[str, Any] = _dump(
            self,
            include,
            exclude,
            exclude_none=exclude_none,
            exclude_defaults=exclude_defaults or exclude_unset,
        )
        return result

    def model_dump_json(
        self,
        *,
        indent: int | None = None,
        include: IncEx | None = None,
        exclude: IncEx | None = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        round_trip: bool = False,
        warnings: bool | Literal["none", "warn", "error"] = True,
    ) -> str:
        """``model_dump`` as JSON text, compact unless ``indent`` is given, as pydantic
        writes it (non-ASCII text kept as it is)."""
        data = self.model_dump(
            include=include,
            exclude=exclude,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        if indent is None:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return json.dumps(data, ensure_ascii=False, indent=indent)


# --------------------------------------------------------------------------- request


@attrs.frozen(kw_only=True)
class ChatRequest:
    """One OpenAI-shaped chat request, as the caller gave it, before routing.

    ``messages``, ``tools``, ``tool_choice`` and ``response_format`` keep the OpenAI JSON shape;
    each wire format translates them for its vendor. ``extra`` holds further OpenAI parameters
    (``presence_penalty``, ``logit_bias``, ...): OpenAI-kind providers send them as they are,
    other vendors refuse a request that carries one they cannot express.

    ``extra_body`` and ``provider_options`` are vendor fields, in the vendor's own terms: the
    wire format of whichever deployment serves the call merges ``extra_body`` into its body,
    then ``provider_options[kind]``, then ``provider_options[provider name]`` (see
    ``providers.base.merge_vendor_fields``); they are never translated.
    """

    model: str
    messages: tuple[Mapping[str, JSON], ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    tools: tuple[Mapping[str, JSON], ...] | None = None
    tool_choice: str | Mapping[str, JSON] | None = None
    response_format: Mapping[str, JSON] | None = None
    stream: bool = False
    # Whether the caller asked for the usage-only last chunk (stream_options.include_usage).
    # Streams always request usage from the vendor, to price the call; this only decides
    # whether the caller sees that chunk, as with the openai package.
    stream_include_usage: bool = False
    user: str | None = None
    extra: Mapping[str, JSON] = attrs.field(factory=dict)
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    extra_body: Mapping[str, JSON] = attrs.field(factory=dict)
    # Provider kind or provider name -> fields for that vendor's body only.
    provider_options: Mapping[str, Mapping[str, JSON]] = attrs.field(factory=dict)
    # Set for an embeddings call (``embeddings.create``), which has no messages. This is the one
    # seam between the two kinds of call: routing, every guard, telemetry and settlement take
    # the request as it is, and only what must differ dispatches on this field (the wire
    # format's body and answer, the estimate, the pre-flight checks).
    embedding: EmbeddingRequest | None = None


@attrs.frozen(kw_only=True)
class EmbeddingRequest:
    """What an embeddings call asks for, beyond what every call has: ``inputs`` is the list of
    texts (or of token arrays, which only OpenAI-kind vendors take) to embed; ``single`` says
    the caller passed one input rather than a list (Gemini has an endpoint for each);
    ``dimensions`` shortens the vectors where the model can; ``encoding_format`` is "float"
    (lists of floats) or "base64" (little-endian float32, base64-encoded, as OpenAI sends it)."""

    inputs: tuple[str | tuple[int, ...], ...]
    single: bool = False
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"


# --------------------------------------------------------------------------- response


@attrs.frozen(kw_only=True)
class Function(_Dumpable):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@attrs.frozen(kw_only=True)
class ToolCall(_Dumpable):
    id: str
    function: Function
    type: Literal["function"] = "function"


@attrs.frozen(kw_only=True)
class ThinkingBlock(_Dumpable):
    """One of Anthropic's signed thinking blocks, kept so that it can be passed back.

    Anthropic requires the thinking blocks of an assistant turn to come back unchanged, with
    their ``signature``, when the turn called tools with extended thinking on. A message's
    ``thinking_blocks`` are those blocks: an assistant message passed back in ``messages``
    with its ``thinking_blocks`` (``message.model_dump()`` keeps them) is sent to Anthropic
    with them, first in its content, as the vendor asks. ``type`` "thinking" has the text and
    its ``signature``; "redacted_thinking" has only the encrypted ``data`` (its text is shown
    nowhere, not in ``reasoning_content`` either). Other vendors do not take them back and
    they are left out of requests to them.
    """

    type: Literal["thinking", "redacted_thinking"]
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


@attrs.frozen(kw_only=True)
class ChatCompletionMessage(_Dumpable):
    """The assistant's answer, in OpenAI's shape.

    ``reasoning_content`` is the model's thinking as text, when the vendor shows it (Anthropic
    extended thinking, Gemini thoughts asked for with ``includeThoughts``, OpenAI-compatible
    servers such as vLLM and DeepSeek that send it under this name): the field DeepSeek and
    vLLM use in the OpenAI shape; None when there is none. It is never part of ``content``.
    ``thinking_blocks`` are Anthropic's signed thinking blocks (see ``ThinkingBlock``).

    ``parsed`` is set by ``chat.completions.parse``: the content read into the pydantic model
    given as ``response_format`` (None for a refusal or a tool call), as in openai-python's
    ``ParsedChatCompletionMessage``.
    """

    content: str | None
    role: Literal["assistant"] = "assistant"
    tool_calls: tuple[ToolCall, ...] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    thinking_blocks: tuple[ThinkingBlock, ...] | None = None
    parsed: Any = attrs.field(default=None, eq=False)


@attrs.frozen(kw_only=True)
class Choice(_Dumpable):
    index: int
    message: ChatCompletionMessage
    finish_reason: FinishReason | None
    logprobs: None = None


@attrs.frozen(kw_only=True)
class PromptTokensDetails(_Dumpable):
    cached_tokens: int = 0


@attrs.frozen(kw_only=True)
class CompletionTokensDetails(_Dumpable):
    reasoning_tokens: int = 0


@attrs.frozen(kw_only=True)
class Usage(_Dumpable):
    """Token counts as the vendor reported them, in OpenAI's terms.

    ``prompt_tokens`` includes cached input tokens (Anthropic reports them apart; the wire
    format adds them back), ``completion_tokens`` includes reasoning tokens.
    """

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = attrs.field(factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = attrs.field(
        factory=CompletionTokensDetails
    )

    @classmethod
    def of(
        cls,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning_tokens),
        )

    @classmethod
    def reported(
        cls,
        prompt: Sequence[int],
        completion: Sequence[int],
        *,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Usage | None:
        """The usage a vendor reported, built from its wire counts: ``prompt`` and
        ``completion`` are the counts that add up to each (Anthropic reports cache reads and
        writes apart from the rest of the input, Gemini thoughts apart from the answer). Every
        wire format builds its usage here, for answers and streams alike.

        None when a count is one no vendor could bill: negative, or past
        ``defaults.MAX_USAGE_TOKENS``. Such a report is trusted in no part: the answer stands
        without usage and its call keeps the worst-case cost it reserved, as for a vendor that
        reports no usage at all. So no count reaches the cost arithmetic that could make it
        fail, overflow, or bill less than the vendor may have.
        """
        ceiling = defaults.MAX_USAGE_TOKENS
        for count in (*prompt, *completion, cached_tokens, reasoning_tokens):
            if not 0 <= count <= ceiling:
                return None
        prompt_tokens, completion_tokens = sum(prompt), sum(completion)
        if prompt_tokens > ceiling or completion_tokens > ceiling:
            return None
        return cls.of(
            prompt_tokens,
            completion_tokens,
            cached_tokens=cached_tokens,
            reasoning_tokens=reasoning_tokens,
        )


@attrs.frozen(kw_only=True)
class Attempt(_Dumpable):
    """One try of one deployment within a call.

    ``outcome`` is "ok", "error" (the attempt was sent and failed), "skipped" (the plan
    passed over this deployment without sending; ``error`` says why) or "cancelled" (a hedged
    attempt that lost the race to the other one).
    """

    deployment: str
    provider: str
    number: int
    outcome: Literal["ok", "error", "skipped", "cancelled"]
    status: int | None = None
    latency_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    retry_reason: str | None = None


@attrs.frozen(kw_only=True)
class PlanEntry(_Dumpable):
    """One line of a call's plan: a deployment routing considered, whether it is in the plan
    (``included``), and why."""

    deployment: str
    included: bool
    reason: str


@attrs.frozen(kw_only=True)
class GuardInfo(_Dumpable):
    """What guardedllm did for one call: which deployment answered and how it got there.

    ``plan`` is every deployment routing considered, in order, with why it is in the plan or
    left out; ``attempts`` each deployment tried or skipped, with its outcome; ``decisions``
    the choices taken after planning (escalation, shadow copy), each with its reason.
    ``cost_usd`` is what every answered attempt of the call cost (an answer escalated past is
    billed too). ``explain()`` puts it all in a few lines of text.
    """

    requested: str
    route: str
    route_reason: str
    deployment: str | None
    attempts: tuple[Attempt, ...]
    estimate: Any = None  # guardedllm.estimate.Estimate for the deployment that answered
    cost_usd: float | None = None
    latency_s: float = 0.0
    plan: tuple[PlanEntry, ...] = ()
    decisions: tuple[str, ...] = ()

    def explain(self) -> str:
        """The plan, each attempt and each decision, one per line."""
        lines = [f"{self.requested!r}: {self.route_reason}", "plan:"]
        lines.extend(
            f"  {'+' if e.included else '-'} {e.deployment}: {e.reason}" for e in self.plan
        )
        lines.append("attempts:")
        for a in self.attempts:
            what = a.outcome if a.status is None else f"{a.outcome} {a.status}"
            why = f" ({a.error_type}: {a.error})" if a.error else ""
            lines.append(f"  {a.deployment} #{a.number}: {what} in {a.latency_s:.3f} s{why}")
        lines.extend(f"decision: {d}" for d in self.decisions)
        answered = self.deployment or "nobody"
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        lines.append(f"answered by {answered}, cost {cost}, {self.latency_s:.3f} s in all")
        return "\n".join(lines)


@attrs.frozen(kw_only=True)
class ChatCompletion(_Dumpable):
    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    usage: Usage | None
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None
    guard: GuardInfo | None = attrs.field(default=None, eq=False, repr=False)


# --------------------------------------------------------------------------- embeddings


@attrs.frozen(kw_only=True)
class Embedding(_Dumpable):
    """One input's vector: a list of floats, or its base64 text when the call asked for
    ``encoding_format="base64"`` (whatever vendor served it)."""

    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


@attrs.frozen(kw_only=True)
class EmbeddingUsage(_Dumpable):
    """The input tokens billed (an embedding has no output tokens). For a vendor that reports
    none (Gemini), the pre-flight estimate: its ``Estimate.notes`` say so."""

    prompt_tokens: int
    total_tokens: int


@attrs.frozen(kw_only=True)
class CreateEmbeddingResponse(_Dumpable):
    """An embeddings answer in OpenAI's shape, whatever vendor served it; ``guard`` as on a
    ``ChatCompletion``."""

    data: tuple[Embedding, ...]
    model: str
    usage: EmbeddingUsage | None
    object: Literal["list"] = "list"
    guard: GuardInfo | None = attrs.field(default=None, eq=False, repr=False)

    def billed(self) -> Usage | None:
        """The usage in the terms the guards settle in (input only)."""
        if self.usage is None:
            return None
        return Usage.reported((self.usage.prompt_tokens,), ())


# --------------------------------------------------------------------------- stream chunks


@attrs.frozen(kw_only=True)
class ChoiceDeltaToolCallFunction(_Dumpable):
    name: str | None = None
    arguments: str | None = None


@attrs.frozen(kw_only=True)
class ChoiceDeltaToolCall(_Dumpable):
    index: int
    id: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None
    type: Literal["function"] | None = None


@attrs.frozen(kw_only=True)
class ChoiceDelta(_Dumpable):
    """One piece of a streamed answer. ``reasoning_content`` is a piece of the thinking text
    (joined in order, as ``content`` is); ``thinking_blocks`` carries each Anthropic thinking
    block whole, signature and all, once its end has come (its text having streamed as
    ``reasoning_content`` already), so the blocks of a stream, in order, are the message's."""

    content: str | None = None
    role: Literal["assistant"] | None = None
    tool_calls: tuple[ChoiceDeltaToolCall, ...] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    thinking_blocks: tuple[ThinkingBlock, ...] | None = None


@attrs.frozen(kw_only=True)
class ChunkChoice(_Dumpable):
    index: int
    delta: ChoiceDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


@attrs.frozen(kw_only=True)
class ChatCompletionChunk(_Dumpable):
    """One streamed piece. The last chunk of a stream carries ``usage`` and no choices."""

    id: str
    created: int
    model: str
    choices: tuple[ChunkChoice, ...]
    usage: Usage | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    system_fingerprint: str | None = None
