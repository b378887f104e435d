"""A record is written as its JSON line by one template per kind (``record._build``), from the
values the engine hands the recorder: each line is exactly what the recorder wrote before, a
nested dict through ``json.dumps`` (the reference builder below, kept here as it was), for
every kind of value a field may hold: text that needs escaping, None beside 0, floats json
writes in full or as exponents, non-finite ones, a split, parameters of a caller's own types,
a body; and ``json.loads`` of a line is the record."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from guardedllm.estimate import TokenCount
from guardedllm.record._build import (
    _rounded,
    _value,
    attempt_counts,
    body_of,
    call_line,
    params_of,
    shadow_line,
)
from guardedllm.registry import Deployment
from guardedllm.types import Attempt, ChatRequest, Usage

# ------------------------------------------------------------------ the reference: as it was

_REFERENCE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr)


def reference_call_line(
    id: str,
    time: float,
    env: str | None,
    request: ChatRequest,
    route: str | None,
    split: tuple[str, str] | None,
    shadow_of: str | None,
    deployment: Deployment | None,
    counts: Mapping[str, TokenCount],
    body: str | None,
    status: str,
    error_type: str | None,
    attempts: Sequence[Attempt],
    escalated: bool,
    latency_s: float,
    first_chunk_s: float | None,
    usage: Usage | None,
    cost_usd: float | None,
    finish_reason: str | None,
) -> str:
    """The record as the recorder built it (a dict) and its writer encoded it (the body spliced
    in for the null its dict held), before records were written as lines."""
    sent = retries = fallbacks = 0
    for attempt in attempts:
        if attempt.outcome == "skipped":
            continue
        sent += 1
        if attempt.number > 1:
            retries += 1
        elif attempt.retry_reason is not None and attempt.retry_reason != "hedge":
            fallbacks += 1
    record = {
        "v": 1,
        "kind": "call",
        "id": id,
        "time": round(time, 3),
        "env": env,
        "requested": request.model,
        "route": route,
        "split": split[0] if split is not None else None,
        "arm": split[1] if split is not None else None,
        "shadow_of": shadow_of,
        "deployment": deployment.name if deployment is not None else None,
        "vendor_model": deployment.model if deployment is not None else None,
        "request": {
            "messages": len(request.messages),
            "tokens": {name: count.tokens for name, count in counts.items()},
            "exact": {name: count.exact for name, count in counts.items()},
            "tools": len(request.tools) if request.tools else 0,
            "max_tokens": request.max_tokens,
            "stream": request.stream,
            "params": params_of(request),
        },
        "body": None,
        "outcome": {
            "status": status,
            "error_type": error_type,
            "attempts": sent,
            "retries": retries,
            "fallbacks": fallbacks,
            "escalated": escalated,
            "latency_s": round(latency_s, 6),
            "first_chunk_s": round(first_chunk_s, 6) if first_chunk_s is not None else None,
            "input_tokens": usage.prompt_tokens if usage is not None else None,
            "output_tokens": usage.completion_tokens if usage is not None else None,
            "cost_usd": cost_usd,
            "finish_reason": finish_reason,
        },
    }
    text = _REFERENCE.encode(record)
    if body is not None:
        text = text.replace('"body":null,"outcome"', f'"body":{body},"outcome"', 1)
    return text + "\n"


def reference_shadow_line(
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
) -> str:
    record = {
        "v": 1,
        "kind": "shadow",
        "time": round(time, 3),
        "id": id,
        "route": route,
        "candidate": candidate,
        "primary": {
            "deployment": primary_deployment,
            "ok": primary_ok,
            "latency_s": round(primary_latency_s, 6),
            "cost_usd": primary_cost_usd,
        },
        "copy": {
            "ok": ok,
            "error_type": error_type,
            "latency_s": round(latency_s, 6),
            "cost_usd": cost_usd,
        },
        "same_content": same_content,
    }
    return _REFERENCE.encode(record) + "\n"


# ------------------------------------------------------------------ values that need care

TRICKY = [
    "",
    'say "hi"',
    "back\\slash",
    "tab\tnew\nline\rcr",
    "\x00\x01\x1f\x7f",
    "caf\u00e9 \u65e5\u672c \U0001f600",
    "\u2028\u2029",
    "lone \ud800 surrogate",
    "</script>",
]
FLOATS = [
    0.0,
    -0.0,
    0.1,
    1e-07,
    1.5e-05,
    2.0099999999999997e-05,
    0.0001,
    0.00009999995,
    123456.0005,
    1e16,
    1.7976931348623157e308,
    5e-324,
    -3.25,
    math.nan,
    math.inf,
    -math.inf,
]


class Effort(str, enum.Enum):
    HIGH = "high"


class Level(enum.IntEnum):
    TWO = 2


class Temperature(float):
    def __repr__(self) -> str:
        return "Temperature(warm)"


class Opaque:
    def __repr__(self) -> str:
        return 'Opaque("caller\'s")'


def deployment(name: str = "gpt-4o-mini", model: str = "gpt-4o-mini-2024-07-18") -> Deployment:
    return Deployment(
        name=name,
        provider="openai",
        model=model,
        tokenizer="o200k_base",
        context_window=1000,
        max_output_tokens=100,
        input_usd_per_mtok=1.0,
    )


def request(**fields: Any) -> ChatRequest:
    fields.setdefault("model", "chat")
    fields.setdefault("messages", ({"role": "user", "content": "hi"},))
    return ChatRequest(**fields)


def call_args(**changes: Any) -> dict[str, Any]:
    """A recorded answer's arguments for ``call_line``, by name, with ``changes``."""
    args: dict[str, Any] = {
        "id": "5f0c2a9e8b7d4c1a",
        "time": 1764896523.4567,
        "env": "prod",
        "request": request(max_tokens=200),
        "route": "chat",
        "split": None,
        "shadow_of": None,
        "deployment": deployment(),
        "counts": {"o200k_base": TokenCount(tokens=812, exact=True)},
        "body": None,
        "status": "ok",
        "error_type": None,
        "attempts": [Attempt(deployment="gpt-4o-mini", provider="openai", number=1, outcome="ok")],
        "escalated": False,
        "latency_s": 1.2345678,
        "first_chunk_s": None,
        "usage": Usage(prompt_tokens=812, completion_tokens=120, total_tokens=932),
        "cost_usd": 0.00234,
        "finish_reason": "stop",
    }
    args.update(changes)
    return args


def line_of(
    id: str,
    time: float,
    env: str | None,
    request: ChatRequest,
    route: str | None,
    split: tuple[str, str] | None,
    shadow_of: str | None,
    deployment: Deployment | None,
    counts: Mapping[str, TokenCount],
    body: str | None,
    status: str,
    error_type: str | None,
    attempts: Sequence[Attempt],
    escalated: bool,
    latency_s: float,
    first_chunk_s: float | None,
    usage: Usage | None,
    cost_usd: float | None,
    finish_reason: str | None,
) -> str:
    """The line ``call_line`` writes from what the engine hands it for these facts."""
    return call_line(
        id, time, env, request.model, route, split, shadow_of,
        deployment.name if deployment is not None else None,
        deployment.model if deployment is not None else None,
        len(request.messages),
        tuple((name, count.tokens, count.exact) for name, count in counts.items()),
        len(request.tools) if request.tools else 0,
        request.max_tokens, request.stream, tuple(params_of(request).items()), body,
        status, error_type, *attempt_counts(attempts), escalated, latency_s, first_chunk_s,
        usage.prompt_tokens if usage is not None else None,
        usage.completion_tokens if usage is not None else None,
        cost_usd, finish_reason,
    )  # fmt: skip


def both(args: dict[str, Any]) -> tuple[str, str]:
    """The line ``call_line`` writes and the reference's, for ``args``."""
    return line_of(**args), reference_call_line(**args)


# ------------------------------------------------------------------ tests


def test_a_line_reads_back_as_the_record_format_says() -> None:
    attempts = [
        Attempt(deployment="a", provider="openai", number=1, outcome="error"),
        Attempt(deployment="a", provider="openai", number=2, outcome="error"),
        Attempt(deployment="b", provider="x", number=1, outcome="skipped", retry_reason="f"),
        Attempt(deployment="c", provider="x", number=1, outcome="ok", retry_reason="fallback"),
        Attempt(deployment="c", provider="x", number=1, outcome="cancelled", retry_reason="hedge"),
    ]
    line = line_of(**call_args(split=("gpt5-trial", "candidate"), attempts=attempts))
    assert line.endswith("}\n")
    assert line.count("\n") == 1
    assert json.loads(line) == {
        "v": 1,
        "kind": "call",
        "id": "5f0c2a9e8b7d4c1a",
        "time": 1764896523.457,
        "env": "prod",
        "requested": "chat",
        "route": "chat",
        "split": "gpt5-trial",
        "arm": "candidate",
        "shadow_of": None,
        "deployment": "gpt-4o-mini",
        "vendor_model": "gpt-4o-mini-2024-07-18",
        "request": {
            "messages": 1,
            "tokens": {"o200k_base": 812},
            "exact": {"o200k_base": True},
            "tools": 0,
            "max_tokens": 200,
            "stream": False,
            "params": {},
        },
        "body": None,
        "outcome": {
            "status": "ok",
            "error_type": None,
            "attempts": 4,
            "retries": 1,
            "fallbacks": 1,
            "escalated": False,
            "latency_s": 1.234568,
            "first_chunk_s": None,
            "input_tokens": 812,
            "output_tokens": 120,
            "cost_usd": 0.00234,
            "finish_reason": "stop",
        },
    }


@pytest.mark.parametrize("text", TRICKY)
def test_text_is_escaped_as_json_escapes_it(text: str) -> None:
    # In every field that holds a name: ours, the caller's, a vendor's.
    args = call_args(
        env=text,
        request=request(model=text),
        route=text,
        split=(text, text),
        shadow_of=text,
        deployment=deployment(name=text, model=text),
        counts={text: TokenCount(tokens=1, exact=False)},
        status=text,
        error_type=text,
        finish_reason=text,
    )
    line, reference = both(args)
    assert line == reference
    record = json.loads(line)
    assert record["env"] == record["deployment"] == record["outcome"]["finish_reason"] == text
    assert record["request"]["tokens"] == {text: 1}


def test_null_and_zero_are_told_apart() -> None:
    nothing = call_args(
        env=None,
        route=None,
        deployment=None,
        counts={},
        request=request(max_tokens=None),
        usage=None,
        cost_usd=None,
        finish_reason=None,
        attempts=(),
    )
    zeros = call_args(
        counts={"o200k_base": TokenCount(tokens=0, exact=True)},
        request=request(max_tokens=0, temperature=0.0, seed=0),
        usage=Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
        latency_s=0.0,
        first_chunk_s=0.0,
        cost_usd=0.0,
    )
    for args in (nothing, zeros):
        line, reference = both(args)
        assert line == reference
    empty, zero = json.loads(line_of(**nothing)), json.loads(line_of(**zeros))
    assert empty["request"]["tokens"] == empty["request"]["exact"] == {}
    assert empty["outcome"]["input_tokens"] is None
    assert zero["outcome"]["input_tokens"] == 0
    assert zero["request"]["params"] == {"temperature": 0.0, "seed": 0}
    assert (zero["outcome"]["cost_usd"], zero["outcome"]["first_chunk_s"]) == (0.0, 0.0)


@pytest.mark.parametrize("number", FLOATS)
def test_floats_are_written_as_json_writes_them(number: float) -> None:
    args = call_args(
        time=number,
        latency_s=number,
        first_chunk_s=number,
        cost_usd=number,
        request=request(temperature=number, extra={"presence_penalty": number}),
    )
    line, reference = both(args)
    assert line == reference


@given(
    number=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20),
    digits=st.sampled_from([3, 6]),
)
@example(number=0.0005, digits=3)  # a tie in decimal, not in binary
@example(number=0.0015, digits=3)
@example(number=999999999999.9995, digits=3)  # rounds up to the bound
@example(number=999999999.9999995, digits=6)
@example(number=0.00009999995, digits=6)  # rounds up to 1e-4
@example(number=-0.0000001, digits=6)  # rounds to -0.0
@example(number=1e-4, digits=3)
@example(number=135229879868.28882, digits=6)  # past 15 digits: fixed notation writes more
@example(number=57494816359081.88, digits=3)
@example(number=True, digits=3)
def test_rounding_is_written_as_round_then_json(number: float, digits: int) -> None:
    assert _rounded(number, digits) == _REFERENCE.encode(round(number, digits))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        1,
        -(2**70),
        0.1,
        math.nan,
        "x",
        Effort.HIGH,
        Level.TWO,
        Temperature(0.7),
        Opaque(),
        [1, "a"],
        {"k": None},
    ],
)
def test_any_value_is_written_as_the_encoder_writes_it(value: object) -> None:
    assert _value(value) == _REFERENCE.encode(value)


def test_parameters_of_a_callers_own_types_are_written_as_json_writes_them() -> None:
    extra = {
        "reasoning_effort": Effort.HIGH,
        "logprobs": True,
        "top_logprobs": Level.TWO,
        "frequency_penalty": Temperature(0.5),
        "metadata": Opaque(),  # no shape: left out of params
    }
    args = call_args(request=request(temperature=Temperature(0.7), seed=Level.TWO, extra=extra))
    line, reference = both(args)
    assert line == reference
    params = json.loads(line)["request"]["params"]
    assert params == {
        "temperature": 0.7,
        "seed": 2,
        "reasoning_effort": "high",
        "logprobs": True,
        "top_logprobs": 2,
        "frequency_penalty": 0.5,
    }


def test_a_full_body_goes_in_place_with_a_callers_object_as_its_repr() -> None:
    prompt = 'a "body":null,"outcome" look-alike \u2028 \U0001f600'
    req = request(
        messages=({"role": "user", "content": prompt},),
        stream=True,
        tools=({"type": "function", "function": {"name": "f"}},),
        extra={"metadata": Opaque()},
    )
    args = call_args(request=req, body=body_of(req))
    line, reference = both(args)
    assert line == reference
    record = json.loads(line)
    assert record["body"]["messages"] == [{"role": "user", "content": prompt}]
    assert record["body"]["metadata"] == 'Opaque("caller\'s")'
    assert record["body"]["stream"] is True
    assert record["request"]["tools"] == 1
    assert list(record)[-2:] == ["body", "outcome"]


# ------------------------------------------------------------------ against the reference

names = st.text(max_size=12)
maybe_names = st.none() | names
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**12)
maybe_numbers = st.none() | numbers
counts = st.integers(0, 10**7)
parameters = st.dictionaries(
    st.sampled_from(["presence_penalty", "logprobs", "reasoning_effort", "metadata", "n"]),
    st.none() | st.booleans() | numbers | names | st.builds(Opaque),
    max_size=3,
)
requests = st.builds(
    ChatRequest,
    model=names,
    messages=st.lists(st.just({"role": "user", "content": "hi"}), max_size=3).map(tuple),
    max_tokens=st.none() | counts,
    temperature=st.none() | numbers,
    top_p=st.none() | numbers,
    seed=st.none() | st.integers(),
    stop=st.none() | st.lists(names, max_size=2).map(tuple),
    tools=st.none() | st.lists(st.just({"type": "function"}), max_size=2).map(tuple),
    tool_choice=st.none() | names | st.just({"type": "function"}),
    response_format=st.none() | st.fixed_dictionaries({"type": names}),
    stream=st.booleans(),
    extra=parameters,
)
attempts = st.lists(
    st.builds(
        Attempt,
        deployment=names,
        provider=st.just("openai"),
        number=st.integers(1, 3),
        outcome=st.sampled_from(["ok", "error", "skipped", "cancelled"]),
        retry_reason=st.none() | st.sampled_from(["fallback", "hedge", "escalation"]),
    ),
    max_size=4,
)
usages = st.none() | st.builds(
    Usage, prompt_tokens=counts, completion_tokens=counts, total_tokens=counts
)


@given(
    id=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    time=numbers,
    env=maybe_names,
    request=requests,
    route=maybe_names,
    split=st.none() | st.tuples(names, names),
    shadow_of=maybe_names,
    deployment=st.none() | st.builds(deployment, name=names, model=names),
    counts=st.dictionaries(names, st.builds(TokenCount, tokens=counts, exact=st.booleans())),
    full=st.booleans(),
    status=st.sampled_from(["ok", "error", "abandoned"]),
    error_type=maybe_names,
    attempts=attempts,
    escalated=st.booleans(),
    latency_s=numbers,
    first_chunk_s=maybe_numbers,
    usage=usages,
    cost_usd=maybe_numbers,
    finish_reason=maybe_names,
)
def test_every_call_line_is_the_references(
    id: str,
    time: float,
    env: str | None,
    request: ChatRequest,
    route: str | None,
    split: tuple[str, str] | None,
    shadow_of: str | None,
    deployment: Deployment | None,
    counts: dict[str, TokenCount],
    full: bool,
    status: str,
    error_type: str | None,
    attempts: list[Attempt],
    escalated: bool,
    latency_s: float,
    first_chunk_s: float | None,
    usage: Usage | None,
    cost_usd: float | None,
    finish_reason: str | None,
) -> None:
    values = (
        id, time, env, request, route, split, shadow_of, deployment, counts,
        body_of(request) if full else None,
        status, error_type, attempts, escalated, latency_s, first_chunk_s, usage, cost_usd,
        finish_reason,
    )  # fmt: skip
    assert line_of(*values) == reference_call_line(*values)


@given(
    id=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    time=numbers,
    route=names,
    candidate=names,
    primary_deployment=maybe_names,
    primary_ok=st.booleans(),
    primary_latency_s=numbers,
    primary_cost_usd=maybe_numbers,
    ok=st.booleans(),
    error_type=maybe_names,
    latency_s=numbers,
    cost_usd=maybe_numbers,
    same_content=st.none() | st.booleans(),
)
def test_every_shadow_line_is_the_references(
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
) -> None:
    values = (
        id, time, route, candidate, primary_deployment, primary_ok, primary_latency_s,
        primary_cost_usd, ok, error_type, latency_s, cost_usd, same_content,
    )  # fmt: skip
    assert shadow_line(*values) == reference_shadow_line(*values)
