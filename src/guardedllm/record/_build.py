"""Building records: a call's facts in, one JSON line per docs/record-format.md out. Pure.

What a record may hold is decided here, once, for every caller:

- Never a header, an API key or an error's message (which may quote a vendor's echo of the
  request): an error is its class name only. Never the request's ``user`` (an identity) or its
  ``extra_headers``.
- With ``content="none"``, nothing the caller wrote: counts (messages, tools, tokens), numbers
  and flags; ``response_format`` by its type, ``tool_choice`` by its kind, ``stop`` by how many,
  other parameters only when they are numbers, flags or one of a few short enumerations.
- With ``content="full"``, the OpenAI-shaped body besides (``body_of``), serialized on the
  caller's thread: its messages are the caller's own dicts, which the caller may change once the
  call returns.

A record is written into its JSON line by one template per kind (``call_line``,
``shadow_line``: the format in field order), on the writer thread, from the call's values taken
as it ended (``engine._recording``): writing lines one after another there costs a recorded
call about half what the same writing did in the midst of the call, and no nested dict is
built for an encoder to walk. The line is exactly what ``json.dumps(record, ensure_ascii=False,
separators=(",", ":"), default=repr)`` writes for the record's dict (what the recorder wrote
before): strings through the json module's own escaper, numbers as it writes them (a float's
repr; ``NaN`` and ``Infinity`` as it spells them), and a value of any other type (a caller's
number subclass) through its encoder. ``json.loads(line)`` is the record's dict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any, Final

from guardedllm.types import Attempt, ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = [
    "FORMAT_VERSION",
    "attempt_counts",
    "body_of",
    "call_line",
    "finish_reason_of",
    "params_of",
    "shadow_line",
]

# The version of docs/record-format.md these records follow; readers refuse a higher one.
FORMAT_VERSION: Final = 1

# ``extra`` parameters whose string values are short enumerations, not text the caller wrote:
# they change what a call costs (reasoning effort, service tier), which simulate needs.
_ENUM_PARAMS: Final = frozenset({"reasoning_effort", "service_tier", "verbosity", "modalities"})

# The encoder of a value of no type ``_value`` knows, of the parameters (a small dict) and of a
# body: ``json.dumps`` with any option builds a new encoder per call. A value JSON has no form
# for (a caller's object) is written as its repr.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr)
_encode: Final = _ENCODER.encode
_quote: Final = encode_basestring  # a str as JSON: the json module's own (C) escaper

# How a float's repr differs from what the json module writes: only where it is not finite.
_NON_FINITE: Final = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

# ``round(x, digits)`` as JSON, for the digits records round to: the format that rounds the
# same way, and the magnitude below which the rounded value has at most 15 significant digits.
_FIXED: Final = {3: (".3f", 1e12), 6: (".6f", 1e9)}


def _value(value: object) -> str:
    """``value`` as JSON, exactly as ``_ENCODER`` writes it: a string (of any str type, as the
    encoder takes it), None and the exact types a record holds here; anything else (a number
    of a subclass, a caller's object) by the encoder itself."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _quote(value)
    kind = type(value)
    if kind is int or kind is float:
        text = repr(value)
        return _NON_FINITE.get(text, text)
    if kind is bool:
        return "true" if value else "false"
    return _encode(value)


def _rounded(value: float, digits: int) -> str:
    """``_value(round(value, digits))``, for ``digits`` of ``_FIXED``, at about half the cost.

    Formatting with that many decimals rounds exactly as ``round`` does (both from the float's
    exact binary value), and a decimal of at most 15 significant digits is what ``repr``
    writes for the float nearest it, once its trailing zeros go, wherever ``repr`` writes no
    exponent (from 1e-4 up). Any other value takes the long way."""
    spec, below = _FIXED[digits]
    if type(value) is float and 1e-4 <= abs(value) < below:
        text = format(value, spec).rstrip("0")
        return text + "0" if text[-1] == "." else text
    return _value(round(value, digits))


def params_of(request: ChatRequest) -> dict[str, Any]:
    """The request's sampling parameters besides messages, tools and max_tokens, as shapes."""
    params: dict[str, Any] = {}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.seed is not None:
        params["seed"] = request.seed
    if request.stop is not None:
        params["stop"] = len(request.stop)
    if request.tool_choice is not None:
        choice = request.tool_choice
        params["tool_choice"] = choice if isinstance(choice, str) else "function"
    if request.response_format is not None:
        params["response_format"] = str(request.response_format.get("type", "unknown"))
    for name, value in request.extra.items():
        enumeration = name in _ENUM_PARAMS and isinstance(value, str) and len(value) <= 32
        if enumeration or value is None or isinstance(value, (bool, int, float)):
            params[name] = value
    return params


def body_of(request: ChatRequest) -> str:
    """The request as an OpenAI chat-completions body, serialized: what simulate re-tokenizes.
    Without ``user``, headers or anything but the request's own fields."""
    body: dict[str, Any] = {"model": request.model, "messages": list(request.messages)}
    if request.tools is not None:
        body["tools"] = list(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    for name in ("temperature", "top_p", "seed", "response_format"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop is not None:
        body["stop"] = list(request.stop)
    if request.stream:
        body["stream"] = True
    for name, value in request.extra.items():
        body.setdefault(name, value)
    return _encode(body)


def finish_reason_of(
    completion: ChatCompletion | None, chunks: Sequence[ChatCompletionChunk] = ()
) -> str | None:
    """The first choice's finish reason: of an answer, or the last a stream's chunks gave."""
    if completion is not None:
        return completion.choices[0].finish_reason if completion.choices else None
    for chunk in reversed(chunks):
        for choice in chunk.choices:
            if choice.index == 0 and choice.finish_reason is not None:
                return choice.finish_reason
    return None


def attempt_counts(attempts: Sequence[Attempt]) -> tuple[int, int, int]:
    """A record's ``attempts``, ``retries`` and ``fallbacks``: the attempts sent (a skip is
    not), those that retried the same deployment, and the moves to another one (a hedge's
    second attempt is neither)."""
    sent = retries = fallbacks = 0
    for attempt in attempts:
        if attempt.outcome == "skipped":
            continue
        sent += 1
        if attempt.number > 1:
            retries += 1
        elif attempt.retry_reason is not None and attempt.retry_reason != "hedge":
            fallbacks += 1
    return sent, retries, fallbacks


def call_line(  # noqa: PLR0917 - positional, in the record's order: see the docstring
    id: str,
    time: float,
    env: str | None,
    requested: str,
    route: str | None,
    split: tuple[str, str] | None,
    shadow_of: str | None,
    deployment: str | None,
    vendor_model: str | None,
    messages: int,
    counts: Sequence[tuple[str, int, bool]],
    tools: int,
    max_tokens: int | None,
    stream: bool,
    params: Sequence[tuple[str, Any]],
    body: str | None,
    status: str,
    error_type: str | None,
    attempts: int,
    retries: int,
    fallbacks: int,
    escalated: bool,
    latency_s: float,
    first_chunk_s: float | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cost_usd: float | None,
    finish_reason: str | None,
    /,
) -> str:
    """One ``"kind": "call"`` record (docs/record-format.md) as its line, newline included.

    The arguments are the record's fields, in its order: ``split`` is (split, arm);
    ``counts`` the prompt's token counts, (tokenizer, tokens, exact) each; ``params`` the
    request's (``params_of``), (name, value) each; ``body`` the request's, serialized
    (``body_of``), with ``content="full"``; ``attempts``, ``retries`` and ``fallbacks`` from
    ``attempt_counts``. They are positional: binding so many keywords took a tenth of what
    writing the line takes. They are names and numbers, and tuples of them: nothing the
    garbage collector keeps tracking once it has seen it (a dict, even of numbers, it does),
    so records waiting for the writer never burden its collections.

    Values of ours are of the types they are declared: names (the registry's, a record id, an
    error's class) go to the escaper as they are, counts and flags are written as they are;
    the caller's and the vendor's values go through ``_value``."""
    tokens = exact = ""
    for name, number, whole in counts:
        key = _quote(name)
        tokens += f",{key}:{number}"
        exact += f",{key}:{'true' if whole else 'false'}"
    return (
        f'{{"v":{FORMAT_VERSION},"kind":"call",'
        f'"id":{_quote(id)},"time":{_rounded(time, 3)},'
        f'"env":{"null" if env is None else _quote(env)},'
        f'"requested":{_value(requested)},'
        f'"route":{"null" if route is None else _quote(route)},'
        f'"split":{"null" if split is None else _quote(split[0])},'
        f'"arm":{"null" if split is None else _quote(split[1])},'
        f'"shadow_of":{"null" if shadow_of is None else _quote(shadow_of)},'
        f'"deployment":{"null" if deployment is None else _quote(deployment)},'
        f'"vendor_model":{"null" if vendor_model is None else _quote(vendor_model)},'
        '"request":{'
        f'"messages":{messages},'
        f'"tokens":{{{tokens[1:]}}},"exact":{{{exact[1:]}}},'
        f'"tools":{tools},'
        f'"max_tokens":{_value(max_tokens)},'
        f'"stream":{_value(stream)},'
        f'"params":{_encode(dict(params)) if params else "{}"}'
        "},"
        f'"body":{"null" if body is None else body},'
        '"outcome":{'
        f'"status":{_quote(status)},'
        f'"error_type":{"null" if error_type is None else _quote(error_type)},'
        f'"attempts":{attempts},"retries":{retries},"fallbacks":{fallbacks},'
        f'"escalated":{"true" if escalated else "false"},'
        f'"latency_s":{_rounded(latency_s, 6)},'
        f'"first_chunk_s":{"null" if first_chunk_s is None else _rounded(first_chunk_s, 6)},'
        f'"input_tokens":{_value(input_tokens)},'
        f'"output_tokens":{_value(output_tokens)},'
        f'"cost_usd":{_value(cost_usd)},'
        f'"finish_reason":{_value(finish_reason)}'
        "}}\n"
    )


def shadow_line(  # noqa: PLR0917 - positional, in the record's order, as call_line
    id: str,
    time: float,
    route: str,
    candidate: str,
    primary_deployment: str | None,
    primary_ok: bool,
    primary_latency_s: float,
    primary_cost_usd: float | None,
    ok: bool,
    error_type: str | None,
    latency_s: float,
    cost_usd: float | None,
    same_content: bool | None,
    /,
) -> str:
    """One ``"kind": "shadow"`` record as its line: a shadow copy beside the call it copied
    (``id``); the arguments in the record's order, as for ``call_line``."""
    return (
        f'{{"v":{FORMAT_VERSION},"kind":"shadow","time":{_rounded(time, 3)},'
        f'"id":{_quote(id)},"route":{_quote(route)},"candidate":{_quote(candidate)},'
        '"primary":{'
        f'"deployment":{"null" if primary_deployment is None else _quote(primary_deployment)},'
        f'"ok":{_value(primary_ok)},'
        f'"latency_s":{_rounded(primary_latency_s, 6)},'
        f'"cost_usd":{_value(primary_cost_usd)}'
        "},"
        '"copy":{'
        f'"ok":{_value(ok)},'
        f'"error_type":{"null" if error_type is None else _quote(error_type)},'
        f'"latency_s":{_rounded(latency_s, 6)},'
        f'"cost_usd":{_value(cost_usd)}'
        "},"
        f'"same_content":{_value(same_content)}'
        "}\n"
    )
