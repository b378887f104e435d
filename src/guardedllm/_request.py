"""Turn the keyword arguments of ``chat.completions.create`` into a validated ``ChatRequest``.

Shared by both clients, so the two accept exactly the same arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from guardedllm.errors import InvalidRequestError
from guardedllm.providers import WIRE_KINDS
from guardedllm.providers.base import KEY_HEADERS
from guardedllm.types import ChatRequest, EmbeddingRequest

__all__ = ["OPENAI_EXTRA_PARAMS", "chat_request", "check_provider_options", "embedding_request"]

# Chat Completions parameters that are passed through to OpenAI-kind providers as they are.
# Other vendors refuse a request carrying one (by name), rather than dropping it silently.
OPENAI_EXTRA_PARAMS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "safety_identifier",
        "service_tier",
        "store",
        "top_logprobs",
        "verbosity",
        "web_search_options",
    }
)

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _fail(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


def _messages(messages: Any) -> tuple[Mapping[str, Any], ...]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise _fail(
            "messages must be a list of message dicts like "
            '[{"role": "user", "content": "Hello"}]; got ' + type(messages).__name__
        )
    if not messages:
        raise _fail("messages is empty; give at least one message.")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _fail(
                f"messages[{index}] is a {type(message).__name__}, not a dict; each message is "
                '{"role": ..., "content": ...}.'
            )
        role = message.get("role")
        if role not in _ROLES:
            raise _fail(f"messages[{index}] has role {role!r}; use one of {sorted(_ROLES)}.")
    return tuple(messages)


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(f"{name} must be a positive integer; got {value!r}.")
    return value


def _number(name: str, value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _fail(f"{name} must be a number from {low:g} to {high:g}; got {value!r}.")
    return float(value)


def _stop(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _fail(f"stop must be a string or a list of strings; got {value!r}.")


def _dicts(name: str, value: Any) -> tuple[Mapping[str, Any], ...] | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and all(isinstance(v, Mapping) for v in value):
        return tuple(value)
    raise _fail(f"{name} must be a list of dicts in the OpenAI format; got {value!r}.")


def _vendor_fields(name: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise _fail(
            f"{name} must be a dict of the vendor's body fields, keyed by their names; got "
            f"{value!r}."
        )
    return value


def _provider_options(value: Any) -> dict[str, Mapping[str, Any]]:
    options = _vendor_fields("provider_options", value)
    return {
        key: _vendor_fields(f"provider_options[{key!r}]", fields) for key, fields in options.items()
    }


def check_provider_options(request: ChatRequest, provider_names: Iterable[str]) -> None:
    """Refuse ``provider_options`` keyed by what no provider is: its keys are provider kinds
    (``WIRE_KINDS``) or the names of the registry's providers, and a misspelt key would
    otherwise leave its options out of every request without a word."""
    known = set(WIRE_KINDS).union(provider_names)
    unknown = sorted(set(request.provider_options) - known)
    if unknown:
        raise _fail(
            f"provider_options has the key(s) {', '.join(map(repr, unknown))}, which name no "
            f"provider kind ({', '.join(sorted(WIRE_KINDS))}) and no provider of the config "
            f"({', '.join(sorted(set(provider_names))) or 'none'}); key each vendor's options "
            "by its provider's kind or name."
        )


def chat_request(
    *,
    model: str,
    messages: Any,
    stream: bool = False,
    max_tokens: int | None = None,
    max_completion_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    response_format: Mapping[str, Any] | None = None,
    stream_options: Mapping[str, Any] | None = None,
    user: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
    **params: Any,
) -> ChatRequest:
    """Validate ``create``'s arguments. Raises ``InvalidRequestError`` naming the bad one.

    ``extra_body`` and ``provider_options`` are kept apart from the OpenAI parameters: they are
    vendor fields, merged as they are into the body of whichever vendor serves the call, while
    an OpenAI parameter is translated, or refused by a vendor that cannot express it."""
    if not isinstance(model, str) or not model:
        raise _fail("model must be a non-empty alias, route or model name.")
    unknown = sorted(set(params) - OPENAI_EXTRA_PARAMS)
    if unknown:
        raise _fail(
            f"unknown parameter(s) {', '.join(unknown)}; pass vendor-specific parameters in "
            "extra_body={...}, or per vendor in provider_options={'anthropic': {...}, ...}."
        )
    tokens = _positive_int("max_tokens", max_tokens)
    completion_tokens = _positive_int("max_completion_tokens", max_completion_tokens)
    if tokens is not None and completion_tokens is not None and tokens != completion_tokens:
        raise _fail("max_tokens and max_completion_tokens disagree; give only one.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _fail(f"seed must be an integer; got {seed!r}.")
    if tool_choice is not None and not isinstance(tool_choice, (str, Mapping)):
        raise _fail(f"tool_choice must be a string or a dict; got {tool_choice!r}.")
    if response_format is not None and not isinstance(response_format, Mapping):
        raise _fail(f"response_format must be a dict; got {response_format!r}.")
    if stream_options is not None and not stream:
        raise _fail("stream_options is only allowed with stream=True.")
    auth = sorted(h for h in (extra_headers or {}) if h.lower() in KEY_HEADERS)
    if auth:
        raise _fail(
            f"extra_headers may not set {', '.join(auth)}: the provider's key comes from its "
            "api_key_env. Use another provider entry for another key."
        )
    return ChatRequest(
        model=model,
        messages=_messages(messages),
        max_tokens=tokens if tokens is not None else completion_tokens,
        temperature=_number("temperature", temperature, 0.0, 2.0),
        top_p=_number("top_p", top_p, 0.0, 1.0),
        stop=_stop(stop),
        seed=seed,
        tools=_dicts("tools", tools),
        tool_choice=tool_choice,
        response_format=response_format,
        stream=bool(stream),
        stream_include_usage=bool(stream_options and stream_options.get("include_usage")),
        user=user,
        extra=dict(params),
        extra_headers=dict(extra_headers or {}),
        extra_body=_vendor_fields("extra_body", extra_body),
        provider_options=_provider_options(provider_options),
    )


def _embedding_inputs(value: Any) -> tuple[tuple[str | tuple[int, ...], ...], bool]:
    """``input`` as OpenAI takes it (a string, a list of strings, a token array or a list of
    token arrays): the inputs, and whether the caller gave one."""
    if isinstance(value, str):
        return (value,), True
    if isinstance(value, Sequence) and value and all(_is_token(t) for t in value):
        return (tuple(value),), True
    if isinstance(value, Sequence) and not isinstance(value, bytes) and value:
        inputs: list[str | tuple[int, ...]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                inputs.append(item)
            elif isinstance(item, Sequence) and item and all(_is_token(t) for t in item):
                inputs.append(tuple(item))
            else:
                raise _fail(
                    f"input[{index}] is {item!r}; each input is a string or a non-empty list "
                    "of token ids."
                )
        return tuple(inputs), False
    raise _fail(
        "input must be a string, a non-empty list of strings, or token ids (a list of ints, or "
        f"a list of such lists); got {value!r}."
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def embedding_request(
    *,
    model: str,
    input: Any,
    dimensions: int | None = None,
    encoding_format: str | None = None,
    user: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ChatRequest:
    """Validate ``embeddings.create``'s arguments into the request the engine runs: no
    messages, and ``embedding`` set (see ``ChatRequest.embedding``). Raises
    ``InvalidRequestError`` naming the bad one."""
    if not isinstance(model, str) or not model:
        raise _fail("model must be a non-empty alias, route or model name.")
    if encoding_format not in (None, "float", "base64"):
        raise _fail(f"encoding_format must be 'float' or 'base64'; got {encoding_format!r}.")
    auth = sorted(h for h in (extra_headers or {}) if h.lower() in KEY_HEADERS)
    if auth:
        raise _fail(
            f"extra_headers may not set {', '.join(auth)}: the provider's key comes from its "
            "api_key_env. Use another provider entry for another key."
        )
    inputs, single = _embedding_inputs(input)
    return ChatRequest(
        model=model,
        messages=(),
        user=user,
        extra_headers=dict(extra_headers or {}),
        extra_body=_vendor_fields("extra_body", extra_body),
        provider_options=_provider_options(provider_options),
        embedding=EmbeddingRequest(
            inputs=inputs,
            single=single,
            dimensions=_positive_int("dimensions", dimensions),
            encoding_format="base64" if encoding_format == "base64" else "float",
        ),
    )
